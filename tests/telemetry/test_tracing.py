"""Tracing end to end: the gateway's spans reach a real OTLP/HTTP receiver, the client's
trace goes on through the gateway to the providers (each attempt the parent of what a
provider does), failover shows as one span per attempt, and a shadow copy, a test run
and a replay each have their place in a trace."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import openai
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.appkeys import SHADOW, TELEMETRY
from gateway.proxy.call import REPLAY, TEST
from gateway.proxy.own_calls import call_pinned
from tests.conftest import Gateway
from tests.telemetry.otlp_receiver import CLIENT, INTERNAL, SERVER, Received, Receiver

GatewayFactory = Callable[[str], Awaitable[Gateway]]
AiohttpServer = Callable[..., Awaitable[TestServer]]
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
COLLECTOR_KEY = "collector-secret-key"


class Provider:
    """An OpenAI-compatible provider on loopback that notes the trace context it gets;
    `failing`: every chat answers 500."""

    def __init__(self, failing: bool = False) -> None:
        self.failing = failing
        self.seen: list[tuple[str, str | None]] = []  # (traceparent, tracestate)

    def app(self) -> web.Application:
        async def chat(request: web.Request) -> web.StreamResponse:
            self.seen.append((request.headers["traceparent"], request.headers.get("tracestate")))
            body = await request.json()
            if self.failing:
                error = {"error": {"message": "boom", "type": "server_error"}}
                return web.json_response(error, status=500)
            model = f"{body['model']}-2025"  # the provider's own name for what answered
            if body.get("stream"):
                response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
                await response.prepare(request)
                for chunk in _chunks(model):
                    await response.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
                await response.write(b"data: [DONE]\n\n")
                await response.write_eof()
                return response
            return web.json_response(_completion(model))

        app = web.Application()
        app.router.add_post("/v1/chat/completions", chat)
        return app


def _completion(model: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "hi there"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9},
    }


def _chunks(model: str) -> list[dict[str, Any]]:
    base = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": model}
    delta = {"index": 0, "delta": {"content": "hi there"}, "finish_reason": None}
    end = {"index": 0, "delta": {}, "finish_reason": "stop"}
    usage = {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}
    return [
        {**base, "choices": [delta]},
        {**base, "choices": [end]},
        {**base, "choices": [], "usage": usage},
    ]


def tracing_config(receiver: str, bad: str, good: str) -> str:
    return f"""
        [server]
        request_timeout_s = 30

        [logging]
        access_log = false

        [tracing]
        otlp_endpoint = "{receiver}/v1/traces"
        service_name = "gw-under-test"
        headers = {{ "x-collector-key" = "{COLLECTOR_KEY}" }}

        [providers.bad]
        type = "openai"
        base_url = "{bad}/v1"
        api_key = "sk-bad-upstream"

        [providers.good]
        type = "openai"
        base_url = "{good}/v1"
        api_key = "sk-good-upstream"

        [providers.mock]
        type = "mock"

        [models.chat]
        targets = [
            {{ provider = "bad", model = "gpt-a" }},
            {{ provider = "good", model = "gpt-b" }},
        ]
        retries_per_target = 0

        [models.mirrored]
        targets = [{{ provider = "good", model = "gpt-b" }}]
        shadow = {{ targets = [{{ provider = "good", model = "gpt-shadow" }}], sample_rate = 1.0 }}

        [models.echo]
        targets = [{{ provider = "mock", model = "echo" }}]

        [prompts.support]
        model = "echo"
        messages = [{{ role = "system", content = "You answer briefly." }}]

        [[keys]]
        name = "test-app"
        sha256 = "{{key_sha256}}"
    """


class Setup:
    def __init__(self, gw: Gateway, receiver: Receiver, bad: Provider, good: Provider) -> None:
        self.gw, self.receiver, self.bad, self.good = gw, receiver, bad, good

    async def stopped(self) -> Receiver:
        """The gateway shut down: what it exported, flushed at the end included."""
        await self.gw.server.close()
        return self.receiver


@pytest.fixture
async def setup(
    gateway_factory: GatewayFactory, aiohttp_server: AiohttpServer
) -> AsyncIterator[Setup]:
    receiver, bad, good = Receiver(), Provider(failing=True), Provider()
    collector = await aiohttp_server(receiver.app())
    bad_server = await aiohttp_server(bad.app())
    good_server = await aiohttp_server(good.app())

    def root(server: TestServer) -> str:
        return str(server.make_url("")).rstrip("/")

    gw = await gateway_factory(tracing_config(root(collector), root(bad_server), root(good_server)))
    yield Setup(gw, receiver, bad, good)


def _parent_of(traceparent: str) -> tuple[str, str]:
    """(trace id, parent span id) of a W3C traceparent."""
    _version, trace_id, span_id, _flags = traceparent.split("-")
    return trace_id, span_id


@pytest.mark.parametrize("stream", [False, True])
async def test_a_failover_is_two_attempt_spans_under_the_clients_trace(
    setup: Setup, stream: bool
) -> None:
    async with setup.gw.client() as client:
        headers = {"traceparent": TRACEPARENT, "tracestate": "vendor=abc"}
        messages: Any = [{"role": "user", "content": "hi"}]
        if stream:
            chunks = await client.chat.completions.create(
                model="chat",
                messages=messages,
                stream=True,
                stream_options={"include_usage": True},
                extra_headers=headers,
            )
            async for _ in chunks:
                pass
        else:
            await client.chat.completions.create(
                model="chat", messages=messages, extra_headers=headers
            )
    received = await setup.stopped()

    server = received.one(lambda s: s.kind == SERVER)
    assert server.name == "POST /v1/chat/completions"
    assert (server.trace_id, server.parent_id) == (CLIENT_TRACE, CLIENT_SPAN)
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["gateway.route"] == "chat"
    assert server.attributes["gateway.key"] == "test-app"
    assert server.resource["service.name"] == "gw-under-test"

    failed, answered = sorted(received.find(lambda s: s.kind == CLIENT), key=_started_first)
    for attempt in (failed, answered):
        assert (attempt.trace_id, attempt.parent_id) == (CLIENT_TRACE, server.span_id)
        assert attempt.attributes["gen_ai.operation.name"] == "chat"
        assert attempt.attributes["gen_ai.provider.name"] == "openai"
        assert attempt.attributes["server.address"] == "127.0.0.1"
    assert failed.name == "chat gpt-a"
    assert failed.attributes["gen_ai.request.model"] == "gpt-a"
    assert failed.attributes["error.type"] == "server_error"
    assert failed.status_code == 2
    assert "gen_ai.usage.input_tokens" not in failed.attributes
    assert answered.attributes["gen_ai.request.model"] == "gpt-b"
    assert answered.attributes["gen_ai.usage.input_tokens"] == 7
    assert answered.attributes["gen_ai.usage.output_tokens"] == 2
    assert "error.type" not in answered.attributes
    if not stream:
        assert answered.attributes["gen_ai.response.model"] == "gpt-b-2025"

    # Each provider's request is a child of its own attempt, in the client's trace.
    ((bad_parent, bad_state),) = setup.bad.seen
    ((good_parent, good_state),) = setup.good.seen
    assert _parent_of(bad_parent) == (CLIENT_TRACE, failed.span_id)
    assert _parent_of(good_parent) == (CLIENT_TRACE, answered.span_id)
    assert bad_state == good_state == "vendor=abc"
    # The collector's key went with every export.
    assert all(h["x-collector-key"] == COLLECTOR_KEY for h in received.headers)


def _started_first(span: Received) -> str:
    return span.attributes["gen_ai.request.model"]  # gpt-a is tried before gpt-b


async def test_a_request_without_a_trace_starts_one(setup: Setup) -> None:
    async with setup.gw.client() as client:
        await client.chat.completions.create(
            model="mirrored", messages=[{"role": "user", "content": "hi"}]
        )
    received = await setup.stopped()
    server = received.one(lambda s: s.kind == SERVER)
    assert server.parent_id == ""
    attempt = received.one(lambda s: s.kind == CLIENT and s.parent_id == server.span_id)
    assert _parent_of(setup.good.seen[0][0]) == (server.trace_id, attempt.span_id)


async def test_a_shadow_copy_is_a_child_of_the_request_it_mirrors(setup: Setup) -> None:
    async with setup.gw.client() as client:
        await client.chat.completions.create(
            model="mirrored",
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"traceparent": TRACEPARENT},
        )
    await setup.gw.app[SHADOW].join()
    received = await setup.stopped()
    server = received.one(lambda s: s.kind == SERVER)
    shadow = received.one(lambda s: s.name == "shadow")
    assert shadow.kind == INTERNAL
    assert (shadow.trace_id, shadow.parent_id) == (CLIENT_TRACE, server.span_id)
    assert shadow.attributes["gateway.role"] == "shadow"
    assert (
        shadow.attributes["gateway.primary_request_id"] == server.attributes["gateway.request_id"]
    )
    copy = received.one(lambda s: s.kind == CLIENT and s.parent_id == shadow.span_id)
    assert copy.attributes["gen_ai.request.model"] == "gpt-shadow"
    # The shadow's provider request is a child of the shadow's own attempt.
    shadow_sent = [p for p, _ in setup.good.seen if _parent_of(p)[1] == copy.span_id]
    assert len(shadow_sent) == 1


@pytest.mark.parametrize(("policy", "role"), [(TEST, "test"), (REPLAY, "replay")])
async def test_test_runs_and_replays_are_traces_of_their_own_naming_the_run(
    setup: Setup, policy: Any, role: str
) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}]}
    app = setup.gw.app
    record = await call_pinned(app, "support", "v1", body, policy, run_id="run-abc")
    assert record.status == 200
    received = await setup.stopped()
    root = received.one(lambda s: s.name == role)
    assert root.parent_id == ""
    assert root.trace_id == record.trace_id
    assert root.attributes["gateway.run.id"] == "run-abc"
    assert root.attributes["gateway.prompt"] == "support"
    attempt = received.one(lambda s: s.kind == CLIENT)
    assert (attempt.trace_id, attempt.parent_id) == (root.trace_id, root.span_id)
    assert attempt.attributes["gen_ai.provider.name"] == "mock"


async def test_a_refused_request_is_a_server_span_with_its_status(setup: Setup) -> None:
    async with setup.gw.client(api_key="sk-wrong") as client:
        with pytest.raises(openai.AuthenticationError):
            await client.chat.completions.create(
                model="chat",
                messages=[{"role": "user", "content": "hi"}],
                extra_headers={"traceparent": TRACEPARENT},
            )
    received = await setup.stopped()
    server = received.one(lambda s: s.kind == SERVER)
    assert server.trace_id == CLIENT_TRACE
    assert server.attributes["http.response.status_code"] == 401
    assert not received.find(lambda s: s.kind == CLIENT)
    assert setup.bad.seen == setup.good.seen == []


async def test_the_tracer_goes_with_the_app(setup: Setup) -> None:
    telemetry = setup.gw.app[TELEMETRY]
    assert telemetry.tracing is not None
    await setup.stopped()
    assert telemetry.tracing is None
