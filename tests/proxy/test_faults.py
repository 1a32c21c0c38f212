"""The fault matrix, end to end: client → gateway → fake providers on loopback.

One test per row: what the provider does wrong, what the client sees, and how the
retry, failover and provider error counters on GET /metrics move."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDictProxy
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam
from prometheus_client.parser import text_string_to_metric_families

from gateway.providers.mock import reply_text
from tests.conftest import CLIENT_TOKEN, Gateway, Upstream

GatewayFactory = Callable[[str], Awaitable[Gateway]]
UpstreamFactory = Callable[..., Awaitable[Upstream]]
AiohttpServer = Callable[..., Awaitable[TestServer]]
MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "Is the gateway resilient?"}
]
ANSWER = reply_text(MESSAGES)
ANTHROPIC_FIXTURES = Path(__file__).parents[1] / "fixtures" / "anthropic"
# Retries in these tests wait milliseconds, not the default tenths of a second.
FAST_RETRY = {"backoff_initial_s": 0.01, "backoff_max_s": 0.02}


# --- config -----------------------------------------------------------------------


def provider(name: str, url: str, *, type_: str = "openai", **settings: float) -> str:
    lines = [
        f"[providers.{name}]",
        f'type = "{type_}"',
        f'base_url = "{url}"',
        f'api_key = "sk-{name}-secret"',
        *(f"{key} = {value}" for key, value in settings.items()),
    ]
    return "\n".join(lines)


def route(name: str, *targets: tuple[str, str], **settings: float) -> str:
    listed = ", ".join(f'{{ provider = "{p}", model = "{m}" }}' for p, m in targets)
    settings = {**FAST_RETRY, **settings}
    lines = [
        f"[models.{name}]",
        f"targets = [{listed}]",
        *(f"{key} = {value}" for key, value in settings.items()),
    ]
    return "\n".join(lines)


def config(*sections: str, request_timeout_s: float = 10) -> str:
    key = '[[keys]]\nname = "test-app"\nsha256 = "{key_sha256}"'
    return "\n\n".join([f"[server]\nrequest_timeout_s = {request_timeout_s}", *sections, key])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- metrics ----------------------------------------------------------------------

Samples = list[tuple[str, dict[str, str], float]]


async def scrape(gw: Gateway) -> Samples:
    async with aiohttp.ClientSession() as session, session.get(gw.url("/metrics")) as r:
        text = await r.text()
    return [
        (s.name, s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def metric(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`; 0 when none."""
    return sum(
        value
        for n, have, value in samples
        if n == name and all(have.get(k) == v for k, v in labels.items())
    )


def retries(samples: Samples, **labels: str) -> float:
    return metric(samples, "gateway_retries_total", **labels)


def failovers(samples: Samples, **labels: str) -> float:
    return metric(samples, "gateway_failovers_total", **labels)


def provider_errors(samples: Samples, **labels: str) -> float:
    return metric(samples, "gateway_provider_errors_total", **labels)


# --- client side ------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)

    def events(self) -> list[bytes]:
        """The `data:` payloads of an SSE body, in order."""
        return [e.removeprefix(b"data: ") for e in self.body.split(b"\n\n") if e.strip()]


async def post(gw: Gateway, stream: bool = False, model: str = "chat", **body: Any) -> Answer:
    """A raw POST /v1/chat/completions, for the bytes and headers the SDK hides."""
    payload = {"model": model, "messages": MESSAGES, "stream": stream, **body}
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            gw.url("/v1/chat/completions"),
            json=payload,
            headers={"Authorization": f"Bearer {CLIENT_TOKEN}"},
        ) as r,
    ):
        return Answer(r.status, r.headers, await r.read())


async def ask(gw: Gateway, stream: bool, model: str = "chat") -> tuple[str, dict[str, str]]:
    """Through the official SDK: the answer text and the response headers."""
    async with gw.client() as client:
        if not stream:
            raw = await client.chat.completions.with_raw_response.create(
                model=model, messages=MESSAGES
            )
            return raw.parse().choices[0].message.content or "", dict(raw.headers)
        async with client.chat.completions.with_streaming_response.create(
            model=model, messages=MESSAGES, stream=True
        ) as response:
            text = "".join(
                [
                    c.choices[0].delta.content or ""
                    async for c in await response.parse()
                    if c.choices
                ]
            )
            return text, dict(response.headers)


# --- fake providers ---------------------------------------------------------------

Handler = Callable[[web.Request, int], Awaitable[web.StreamResponse]]


@dataclass
class Fake:
    """A hand-written provider: `handler(request, n)` answers the n-th request (from 0)."""

    server: TestServer
    bodies: list[Any] = field(default_factory=list)
    headers: list[CIMultiDictProxy[str]] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)

    @property
    def calls(self) -> int:
        return len(self.bodies)

    @property
    def url(self) -> str:
        return str(self.server.make_url("/v1"))

    @property
    def root_url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")


FakeFactory = Callable[..., Awaitable[Fake]]


@pytest.fixture
def fake_factory(aiohttp_server: AiohttpServer) -> FakeFactory:
    async def start(handler: Handler, path: str = "/v1/chat/completions") -> Fake:
        fake: Fake | None = None

        async def handle(request: web.Request) -> web.StreamResponse:
            assert fake is not None
            fake.arrivals.append(time.monotonic())
            fake.headers.append(request.headers)
            fake.bodies.append(await request.json())
            return await handler(request, fake.calls - 1)

        app = web.Application()
        app.router.add_post(path, handle)
        fake = Fake(await aiohttp_server(app))
        return fake

    return start


def chunk(delta: dict[str, Any], id_: str = "chatcmpl-fake", finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    payload = {
        "id": id_,
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "fake",
        "choices": [choice],
    }
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def completion(text: str) -> web.Response:
    body = {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1,
        "model": "fake",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    }
    return web.json_response(body)


async def sse(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    return response


# --- 1. connection refused --------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_connection_refused_next_target_serves(
    gateway_factory: GatewayFactory, upstream: Upstream, stream: bool
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens
    gw = await gateway_factory(
        config(
            provider("dead", dead),
            provider("live", upstream.base_url),
            route("chat", ("dead", "m"), ("live", "mock-gpt"), retries_per_target=1),
        )
    )
    text, headers = await ask(gw, stream)
    assert text == ANSWER
    assert headers["x-gateway-provider"] == "live"
    assert headers["x-gateway-attempts"] == "3"  # dead, dead again, live
    m = await scrape(gw)
    assert provider_errors(m, provider="dead", reason="connect") == 2
    assert retries(m, provider="dead") == 1
    assert failovers(m, from_provider="dead", to_provider="live") == 1
    assert provider_errors(m, provider="live") == 0
    assert upstream.stats.total == 1


# --- 2. a 500 answer --------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_server_error_is_retried_then_failed_over(
    gateway_factory: GatewayFactory, upstream_factory: UpstreamFactory, stream: bool
) -> None:
    broken, good = await upstream_factory(), await upstream_factory()
    gw = await gateway_factory(
        config(
            provider("a", broken.base_url),
            provider("b", good.base_url),
            route("chat", ("a", "error=500"), ("b", "mock-gpt"), retries_per_target=2),
        )
    )
    text, headers = await ask(gw, stream)
    assert text == ANSWER
    assert (headers["x-gateway-provider"], headers["x-gateway-attempts"]) == ("b", "4")
    assert (broken.stats.total, good.stats.total) == (3, 1)
    m = await scrape(gw)
    assert retries(m, route="chat", provider="a", model="error=500") == 2
    assert failovers(m, route="chat", from_provider="a", to_provider="b") == 1
    assert provider_errors(m, provider="a", reason="server_error") == 3
    assert metric(m, "gateway_requests_total", provider="b", status="200") == 1


async def test_retry_budget_stops_retries_from_multiplying_an_outage(
    gateway_factory: GatewayFactory, upstream: Upstream
) -> None:
    gw = await gateway_factory(
        config(
            provider("a", upstream.base_url, breaker_consecutive_failures=1000),
            route("chat", ("a", "error=500"), retries_per_target=5, retry_budget_ratio=0),
        )
    )
    statuses = [(await post(gw)).status for _ in range(4)]
    assert statuses == [502] * 4
    # The budget's reserve (10 retries) is spent by the first two requests; with no
    # share earned per request, the next ones get one attempt each.
    assert upstream.stats.total == 6 + 6 + 1 + 1
    m = await scrape(gw)
    assert retries(m, provider="a") == 10
    assert provider_errors(m, provider="a", reason="server_error") == 14


# --- 3. 429 with Retry-After: 1 ---------------------------------------------------


async def test_rate_limit_with_short_retry_after_is_retried_on_the_same_target(
    gateway_factory: GatewayFactory, fake_factory: FakeFactory, upstream: Upstream
) -> None:
    async def limited_once(request: web.Request, n: int) -> web.StreamResponse:
        if n == 0:
            body = {"error": {"message": "slow down", "type": "rate_limit_error"}}
            return web.json_response(body, status=429, headers={"Retry-After": "1"})
        return completion("after the wait")

    fake = await fake_factory(limited_once)
    gw = await gateway_factory(
        config(
            provider("a", fake.url),
            provider("b", upstream.base_url),
            route("chat", ("a", "m"), ("b", "mock-gpt"), retry_after_max_s=2),
        )
    )
    text, headers = await ask(gw, stream=False)
    # Retry-After (1 s) is within the route's cap (2 s): wait, then the same target.
    assert text == "after the wait"
    assert (headers["x-gateway-provider"], headers["x-gateway-attempts"]) == ("a", "2")
    assert fake.calls == 2
    assert fake.arrivals[1] - fake.arrivals[0] >= 0.95  # the wait was honoured
    assert upstream.stats.total == 0
    m = await scrape(gw)
    assert provider_errors(m, provider="a", reason="rate_limited") == 1
    assert retries(m, provider="a") == 1
    assert failovers(m) == 0


# --- 4. 429 with a huge Retry-After -----------------------------------------------


async def test_rate_limit_with_huge_retry_after_fails_over_at_once(
    gateway_factory: GatewayFactory, upstream_factory: UpstreamFactory
) -> None:
    limited, good = await upstream_factory(), await upstream_factory()
    gw = await gateway_factory(
        config(
            provider("a", limited.base_url),
            provider("b", good.base_url),
            route("chat", ("a", "ratelimit=3600"), ("b", "mock-gpt"), retries_per_target=3),
            route("all_limited", ("a", "ratelimit=3600"), ("b", "ratelimit=1800")),
        )
    )
    began = time.monotonic()
    text, headers = await ask(gw, stream=True)
    assert time.monotonic() - began < 2  # no waiting on the hour
    assert (text, headers["x-gateway-provider"]) == (ANSWER, "b")
    assert (limited.stats.total, good.stats.total) == (1, 1)  # not retried
    m = await scrape(gw)
    assert provider_errors(m, provider="a", reason="rate_limited") == 1
    assert retries(m) == 0
    assert failovers(m, route="chat", from_provider="a", to_provider="b") == 1

    # Every target rate limited: the client gets a 429 and when to come back.
    answer = await post(gw, model="all_limited")
    assert answer.status == 429
    assert answer.headers["Retry-After"] == "1800"
    error = answer.json()["error"]
    assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limited")
    assert [a["reason"] for a in error["attempts"]] == ["rate_limited", "rate_limited"]
    async with gw.client() as client:
        with pytest.raises(openai.RateLimitError):
            await client.chat.completions.create(model="all_limited", messages=MESSAGES)
    m = await scrape(gw)
    assert provider_errors(m, model="ratelimit=1800", reason="rate_limited") == 2
    assert metric(m, "gateway_requests_total", route="all_limited", status="429") == 2
    assert retries(m) == 0


# --- 5. 400 from the provider -----------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_client_error_is_passed_back_as_it_came(
    gateway_factory: GatewayFactory, fake_factory: FakeFactory, upstream: Upstream, stream: bool
) -> None:
    error_json = (
        b'{"error": {"message": "This model\'s maximum context length is 8192 tokens.",'
        b' "type": "invalid_request_error", "param": "messages",'
        b' "code": "context_length_exceeded"}}'
    )

    async def refuse(request: web.Request, n: int) -> web.StreamResponse:
        return web.Response(status=400, body=error_json, content_type="application/json")

    fake = await fake_factory(refuse)
    gw = await gateway_factory(
        config(
            provider("a", fake.url),
            provider("b", upstream.base_url),
            route("chat", ("a", "m"), ("b", "mock-gpt")),
        )
    )
    answer = await post(gw, stream=stream)
    assert answer.status == 400
    assert answer.body == error_json  # byte for byte
    assert answer.headers["X-Gateway-Provider"] == "a"
    async with gw.client() as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(model="chat", messages=MESSAGES, stream=stream)
    assert caught.value.code == "context_length_exceeded"
    assert (fake.calls, upstream.stats.total) == (2, 0)  # no retry, no failover
    m = await scrape(gw)
    assert retries(m) == failovers(m) == provider_errors(m) == 0
    assert metric(m, "gateway_requests_total", provider="a", status="400") == 2
    assert metric(m, "gateway_circuit_state", provider="a") == 0


@pytest.mark.parametrize("status", [404, 307])
async def test_target_config_errors_fail_over(
    gateway_factory: GatewayFactory, upstream_factory: UpstreamFactory, status: int
) -> None:
    """An unknown model or deployment (404) or a redirect (a wrong base URL) is the
    target's fault, not the client's: the next target serves."""
    wrong, good = await upstream_factory(), await upstream_factory()
    gw = await gateway_factory(
        config(
            provider("a", wrong.base_url),
            provider("b", good.base_url),
            route("chat", ("a", f"error={status}"), ("b", "mock-gpt"), retries_per_target=0),
        )
    )
    text, headers = await ask(gw, stream=False)
    assert (text, headers["x-gateway-provider"]) == (ANSWER, "b")
    m = await scrape(gw)
    assert provider_errors(m, provider="a", reason="bad_response") == 1
    assert failovers(m, from_provider="a", to_provider="b") == 1


# --- 6. 401 from a provider -------------------------------------------------------


async def test_auth_error_cools_the_target_down_and_the_next_serves(
    gateway_factory: GatewayFactory, fake_factory: FakeFactory, upstream: Upstream
) -> None:
    async def wrong_key(request: web.Request, n: int) -> web.StreamResponse:
        detail = "Incorrect API key provided: sk-a-s***************cret."
        body = {"error": {"message": detail, "type": "invalid_request_error"}}
        return web.json_response(body, status=401)

    fake = await fake_factory(wrong_key)
    gw = await gateway_factory(
        config(
            provider("a", fake.url),
            provider("b", upstream.base_url),
            route("chat", ("a", "m"), ("b", "mock-gpt"), retries_per_target=2),
            route("only_a", ("a", "m")),
        )
    )
    text, headers = await ask(gw, stream=False)
    assert (text, headers["x-gateway-provider"]) == (ANSWER, "b")
    assert fake.calls == 1  # not retried: the key will not get better in 10 ms
    m = await scrape(gw)
    assert provider_errors(m, provider="a", reason="auth_error") == 1
    assert retries(m) == 0
    assert failovers(m, from_provider="a", to_provider="b") == 1
    assert metric(m, "gateway_circuit_state", provider="a", model="m") == 2

    # The breaker is open: the next requests skip `a` without calling it.
    text, headers = await ask(gw, stream=True)
    assert (text, headers["x-gateway-provider"], headers["x-gateway-attempts"]) == (
        ANSWER,
        "b",
        "1",
    )
    assert fake.calls == 1
    assert upstream.stats.total == 2
    m = await scrape(gw)
    assert provider_errors(m, provider="a", reason="circuit_open") == 1
    assert failovers(m, from_provider="a", to_provider="b") == 2

    # With no other target: 503, and the provider's words about our key stay inside.
    answer = await post(gw, model="only_a")
    assert answer.status == 503
    assert b"sk-a-s" not in answer.body
    assert fake.calls == 1


async def test_auth_error_detail_never_reaches_the_client(
    gateway_factory: GatewayFactory, fake_factory: FakeFactory
) -> None:
    async def wrong_key(request: web.Request, n: int) -> web.StreamResponse:
        detail = "Incorrect API key provided: sk-a-secret."
        return web.json_response({"error": {"message": detail, "type": "x"}}, status=401)

    fake = await fake_factory(wrong_key)
    gw = await gateway_factory(config(provider("a", fake.url), route("chat", ("a", "m"))))
    answer = await post(gw)
    assert answer.status == 502
    assert b"sk-a-secret" not in answer.body
    assert answer.json()["error"]["attempts"][0]["reason"] == "auth_error"


# --- 7. no first byte within the TTFT timeout -------------------------------------


async def test_no_first_token_in_time_next_target_serves_and_nothing_leaks(
    gateway_factory: GatewayFactory, fake_factory: FakeFactory, upstream: Upstream
) -> None:
    hung_up = asyncio.Event()

    async def headers_then_silence(request: web.Request, n: int) -> web.StreamResponse:
        response = await sse(request)
        # A role chunk is no token: it must not reach the client from this target.
        await response.write(chunk({"role": "assistant", "content": ""}, id_="chatcmpl-slow"))
        try:
            await asyncio.Event().wait()  # never set: the first token never comes
        finally:
            hung_up.set()  # the gateway dropped the connection (handler cancelled)
        return response

    fake = await fake_factory(headers_then_silence)
    gw = await gateway_factory(
        config(
            provider("slow", fake.url, first_token_timeout_s=0.3),
            provider("b", upstream.base_url),
            route("chat", ("slow", "m"), ("b", "mock-gpt"), retries_per_target=0),
        )
    )
    began = time.monotonic()
    answer = await post(gw, stream=True)
    assert 0.3 <= time.monotonic() - began < 5
    assert answer.status == 200
    assert answer.headers["X-Gateway-Provider"] == "b"
    assert b"chatcmpl-slow" not in answer.body
    assert answer.events()[-1] == b"[DONE]"
    text = "".join(
        orjson.loads(e)["choices"][0]["delta"].get("content") or "" for e in answer.events()[:-1]
    )
    assert text == ANSWER
    await asyncio.wait_for(hung_up.wait(), 5)  # the slow attempt was abandoned
    m = await scrape(gw)
    assert provider_errors(m, provider="slow", reason="timeout") == 1
    assert failovers(m, from_provider="slow", to_provider="b") == 1
    assert retries(m) == 0


# --- 8. stream stalls mid-way -----------------------------------------------------


async def test_stream_stall_after_first_byte_ends_with_error_event(
    gateway_factory: GatewayFactory, upstream: Upstream
) -> None:
    gw = await gateway_factory(
        config(
            provider("a", upstream.base_url, idle_timeout_s=0.3),
            route("chat", ("a", "stall+words=10"), ("a", "mock-gpt")),
        )
    )
    began = time.monotonic()
    answer = await post(gw, stream=True)
    assert 0.3 <= time.monotonic() - began < 5
    assert answer.status == 200
    events = answer.events()
    assert b"[DONE]" not in answer.body
    assert any(b'"content":"' in e for e in events[:-1])  # the first half came through
    error = orjson.loads(events[-1])["error"]
    assert (error["type"], error["code"]) == ("upstream_error", "timeout")
    assert upstream.stats.total == 1  # no failover after the first byte
    m = await scrape(gw)
    assert provider_errors(m, provider="a", reason="timeout") == 1
    assert retries(m) == failovers(m) == 0
    assert metric(m, "gateway_requests_total", route="chat", status="502") == 1


async def test_target_total_timeout(
    gateway_factory: GatewayFactory, upstream_factory: UpstreamFactory
) -> None:
    """A target's total time: before the answer it is a failover, mid-stream (each chunk
    in time, the whole too slow) an error event."""
    slow, spare = await upstream_factory(), await upstream_factory()
    gw = await gateway_factory(
        config(
            provider("a", slow.base_url, total_timeout_s=0.4, idle_timeout_s=5),
            provider("b", spare.base_url),
            route("chat", ("a", "slow=3000"), ("b", "mock-gpt"), retries_per_target=0),
            route("long", ("a", "chunk_delay=50+words=100"), ("b", "mock-gpt")),
        )
    )
    text, headers = await ask(gw, stream=False)
    assert (text, headers["x-gateway-provider"]) == (ANSWER, "b")

    began = time.monotonic()
    answer = await post(gw, stream=True, model="long")
    assert 0.4 <= time.monotonic() - began < 3
    assert answer.status == 200
    assert b"[DONE]" not in answer.body
    error = orjson.loads(answer.events()[-1])["error"]
    assert error["code"] == "timeout"
    assert "total timeout" in error["message"]
    assert spare.stats.total == 1  # only the first request failed over
    m = await scrape(gw)
    assert provider_errors(m, provider="a", model="slow=3000", reason="timeout") == 1
    assert provider_errors(m, provider="a", model="chunk_delay=50+words=100", reason="timeout") == 1
    assert failovers(m, route="chat") == 1
    assert failovers(m, route="long") == 0


# --- 9. stream cut mid-way --------------------------------------------------------


async def test_stream_cut_after_first_byte_ends_with_error_event(
    gateway_factory: GatewayFactory, upstream: Upstream
) -> None:
    gw = await gateway_factory(
        config(
            provider("a", upstream.base_url),
            route("chat", ("a", "cut+words=10"), ("a", "mock-gpt")),
        )
    )
    answer = await post(gw, stream=True)
    assert answer.status == 200
    assert b"[DONE]" not in answer.body
    error = orjson.loads(answer.events()[-1])["error"]
    assert error["code"] == "stream_cut"
    assert upstream.stats.total == 1
    m = await scrape(gw)
    assert provider_errors(m, provider="a", reason="stream_cut") == 1
    assert retries(m) == failovers(m) == 0
    assert metric(m, "gateway_requests_total", route="chat", status="502") == 1


# --- 10. malformed SSE chunk ------------------------------------------------------


async def test_malformed_chunk_before_the_first_byte_fails_over(
    gateway_factory: GatewayFactory, fake_factory: FakeFactory, upstream: Upstream
) -> None:
    async def garbage(request: web.Request, n: int) -> web.StreamResponse:
        response = await sse(request)
        await response.write(chunk({"role": "assistant", "content": ""}, id_="chatcmpl-bad"))
        await response.write(b'data: {"id": "chatcmpl-bad", "choices": [{"delta": {"con\n\n')
        return response

    fake = await fake_factory(garbage)
    gw = await gateway_factory(
        config(
            provider("a", fake.url),
            provider("b", upstream.base_url),
            route("chat", ("a", "m"), ("b", "mock-gpt"), retries_per_target=1),
        )
    )
    answer = await post(gw, stream=True)
    assert answer.status == 200
    assert answer.headers["X-Gateway-Provider"] == "b"
    assert b"chatcmpl-bad" not in answer.body
    assert answer.events()[-1] == b"[DONE]"
    assert fake.calls == 2  # retried once, then failed over
    m = await scrape(gw)
    assert provider_errors(m, provider="a", reason="bad_response") == 2
    assert retries(m, provider="a") == 1
    assert failovers(m, from_provider="a", to_provider="b") == 1


async def test_malformed_chunk_after_the_first_byte_ends_with_error_event(
    gateway_factory: GatewayFactory, fake_factory: FakeFactory, upstream: Upstream
) -> None:
    client_has_first_token = asyncio.Event()

    async def garbage_later(request: web.Request, n: int) -> web.StreamResponse:
        response = await sse(request)
        await response.write(chunk({"role": "assistant", "content": "Hello"}))
        await client_has_first_token.wait()
        await response.write(b"data: {this is not json}\n\n")
        await response.write(chunk({}, finish="stop") + b"data: [DONE]\n\n")
        return response

    fake = await fake_factory(garbage_later)
    gw = await gateway_factory(
        config(
            provider("a", fake.url),
            provider("b", upstream.base_url),
            route("chat", ("a", "m"), ("b", "mock-gpt")),
        )
    )
    payload = {"model": "chat", "messages": MESSAGES, "stream": True}
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            gw.url("/v1/chat/completions"),
            json=payload,
            headers={"Authorization": f"Bearer {CLIENT_TOKEN}"},
        ) as r,
    ):
        assert r.status == 200
        first = await r.content.readuntil(b"\n\n")
        assert b'"Hello"' in first
        client_has_first_token.set()  # only now does the provider go wrong
        rest = await r.read()
    assert b"[DONE]" not in rest
    events = Answer(r.status, r.headers, rest).events()
    error = orjson.loads(events[-1])["error"]
    assert error["code"] == "bad_response"
    assert (fake.calls, upstream.stats.total) == (1, 0)  # no failover after the first byte
    m = await scrape(gw)
    assert provider_errors(m, provider="a", reason="bad_response") == 1
    assert retries(m) == failovers(m) == 0
    assert metric(m, "gateway_requests_total", route="chat", status="502") == 1


# --- 11. every target open --------------------------------------------------------


async def test_every_target_open_gets_a_fast_503(
    gateway_factory: GatewayFactory, upstream_factory: UpstreamFactory
) -> None:
    first, second = await upstream_factory(), await upstream_factory()
    gw = await gateway_factory(
        config(
            provider("a", first.base_url, breaker_consecutive_failures=1, breaker_cooldown_s=30),
            provider("b", second.base_url, breaker_consecutive_failures=1, breaker_cooldown_s=30),
            route("chat", ("a", "error=500"), ("b", "error=503"), retries_per_target=1),
        )
    )
    answer = await post(gw)
    assert answer.status == 502
    assert answer.json()["error"]["code"] == "upstream_failed"
    assert (first.stats.total, second.stats.total) == (1, 1)  # open after one: no retry
    m = await scrape(gw)
    assert metric(m, "gateway_circuit_state", provider="a") == 2
    assert metric(m, "gateway_circuit_state", provider="b") == 2

    for stream in (False, True):
        began = time.monotonic()
        answer = await post(gw, stream=stream)
        assert time.monotonic() - began < 1  # fast, never a hang
        assert answer.status == 503
        assert 25 <= int(answer.headers["Retry-After"]) <= 30
        error = answer.json()["error"]
        assert error["code"] == "circuit_open"
        assert [a["reason"] for a in error["attempts"]] == ["circuit_open", "circuit_open"]
    assert (first.stats.total, second.stats.total) == (1, 1)  # nobody was called
    m = await scrape(gw)
    assert provider_errors(m, provider="a", reason="circuit_open") == 2
    assert provider_errors(m, provider="b", reason="circuit_open") == 2
    assert provider_errors(m, reason="server_error") == 2
    assert retries(m) == 0
    assert metric(m, "gateway_requests_total", route="chat", status="503") == 2


# --- 12. half-open recovery -------------------------------------------------------


async def test_half_open_lets_one_probe_through_and_success_closes(
    gateway_factory: GatewayFactory, fake_factory: FakeFactory
) -> None:
    probe_arrived, release_probe = asyncio.Event(), asyncio.Event()

    async def down_then_up(request: web.Request, n: int) -> web.StreamResponse:
        if n == 0:
            return web.json_response({"error": {"message": "down", "type": "x"}}, status=500)
        if n == 1:
            probe_arrived.set()
            await release_probe.wait()
        return completion("back")

    fake = await fake_factory(down_then_up)
    gw = await gateway_factory(
        config(
            provider("a", fake.url, breaker_consecutive_failures=1, breaker_cooldown_s=0.2),
            route("chat", ("a", "m"), retries_per_target=0),
        )
    )
    assert (await post(gw)).status == 502
    assert (await post(gw)).status == 503  # open: not called
    assert fake.calls == 1
    m = await scrape(gw)
    assert metric(m, "gateway_circuit_state", provider="a", model="m") == 2

    async def knock_until_let_through() -> Answer:
        # Turned away at once (503) until the cool-down is over; the first request let
        # through is the probe, and it waits at the provider until the test releases it.
        while (answer := await post(gw)).status == 503:  # noqa: ASYNC110 - time is the event
            await asyncio.sleep(0.02)
        return answer

    probe = asyncio.create_task(knock_until_let_through())
    await asyncio.wait_for(probe_arrived.wait(), 5)
    assert fake.arrivals[1] - fake.arrivals[0] >= 0.19  # not before the cool-down
    m = await scrape(gw)
    assert metric(m, "gateway_circuit_state", provider="a", model="m") == 1
    # While the probe is out, everyone else is turned away at once.
    answer = await post(gw)
    assert answer.status == 503
    assert answer.headers["Retry-After"] == "1"
    assert fake.calls == 2
    release_probe.set()
    answer = await probe
    assert answer.status == 200
    assert answer.json()["choices"][0]["message"]["content"] == "back"

    m = await scrape(gw)
    assert metric(m, "gateway_circuit_state", provider="a", model="m") == 0
    assert (await post(gw)).status == 200  # closed: traffic flows again
    assert fake.calls == 3
    m = await scrape(gw)
    assert provider_errors(m, provider="a", reason="server_error") == 1
    assert provider_errors(m, provider="a", reason="circuit_open") >= 2
    assert retries(m) == failovers(m) == 0


# --- 13. OpenAI → Anthropic failover, with tool calls -----------------------------

WEATHER_TOOL: ChatCompletionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a place",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}, "unit": {"type": "string"}},
            "required": ["location"],
        },
    },
}


async def anthropic_tool_use(request: web.Request, n: int) -> web.StreamResponse:
    """Anthropic's documented tool_use answers (tests/fixtures/anthropic)."""
    body = await request.json()
    if not body.get("stream"):
        raw = (ANTHROPIC_FIXTURES / "message_tool_use.json").read_bytes()
        return web.Response(body=raw, content_type="application/json")
    response = await sse(request)
    raw = (ANTHROPIC_FIXTURES / "stream_tool_use.sse").read_bytes()
    for i in range(0, len(raw), 200):  # in pieces that cut events in half
        await response.write(raw[i : i + 200])
    return response


@pytest.mark.parametrize("stream", [False, True])
async def test_failover_from_openai_to_anthropic_with_tool_calls(
    gateway_factory: GatewayFactory,
    fake_factory: FakeFactory,
    upstream: Upstream,
    stream: bool,
) -> None:
    anthropic = await fake_factory(anthropic_tool_use, path="/v1/messages")
    gw = await gateway_factory(
        config(
            provider("openai", upstream.base_url),
            provider("anthropic", anthropic.root_url, type_="anthropic"),
            route(
                "chat",
                ("openai", "error=502"),
                ("anthropic", "claude-sonnet-4-5"),
                retries_per_target=0,
            ),
        )
    )
    async with gw.client() as client:
        if not stream:
            raw = await client.chat.completions.with_raw_response.create(
                model="chat", messages=MESSAGES, tools=[WEATHER_TOOL]
            )
            choice = raw.parse().choices[0]
            headers = raw.headers
            assert choice.message.content == (
                "I'll check the current weather in San Francisco for you."
            )
            calls = [
                (c.id, c.function.name, orjson.loads(c.function.arguments))
                for c in choice.message.tool_calls or []
                if c.type == "function"
            ]
            assert calls == [
                (
                    "toolu_01A09q90qw90lq917835lq9",
                    "get_weather",
                    {"location": "San Francisco, CA", "unit": "celsius"},
                )
            ]
            assert choice.finish_reason == "tool_calls"
        else:
            async with client.chat.completions.with_streaming_response.create(
                model="chat",
                messages=MESSAGES,
                tools=[WEATHER_TOOL],
                stream=True,
                stream_options={"include_usage": True},
            ) as response:
                headers = response.headers
                chunks = [c async for c in await response.parse()]
            assert all(c.object == "chat.completion.chunk" for c in chunks)
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            assert text == "Okay, let's check the weather."
            calls_by_index: dict[int, list[str]] = {}
            names: dict[int, str] = {}
            for c in chunks:
                for call in (c.choices[0].delta.tool_calls or []) if c.choices else []:
                    if call.function and call.function.name:
                        names[call.index] = call.function.name
                    piece = call.function.arguments if call.function else None
                    calls_by_index.setdefault(call.index, []).append(piece or "")
            assert names == {0: "get_weather", 1: "get_time"}
            assert orjson.loads("".join(calls_by_index[0])) == {
                "location": "San Francisco, CA",
                "unit": "fahrenheit",
            }
            assert orjson.loads("".join(calls_by_index[1])) == {"timezone": "America/Los_Angeles"}
            finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
            assert finishes[-1] == "tool_calls"
            assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 89
    assert headers["X-Gateway-Provider"] == "anthropic"
    assert headers["X-Gateway-Attempts"] == "2"
    # What Anthropic got was its own wire format, with our key for it.
    (sent,) = anthropic.bodies
    assert sent["tools"][0]["name"] == "get_weather"
    assert sent["tools"][0]["input_schema"] == WEATHER_TOOL["function"].get("parameters")
    assert sent["model"] == "claude-sonnet-4-5"
    assert anthropic.headers[0]["x-api-key"] == "sk-anthropic-secret"
    assert "authorization" not in anthropic.headers[0]
    m = await scrape(gw)
    assert provider_errors(m, provider="openai", reason="server_error") == 1
    assert failovers(m, from_provider="openai", to_provider="anthropic") == 1
    assert provider_errors(m, provider="anthropic") == 0


# --- 14. overall deadline ---------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_deadline_passed_is_a_504(
    gateway_factory: GatewayFactory, upstream_factory: UpstreamFactory, stream: bool
) -> None:
    slow, spare = await upstream_factory(), await upstream_factory()
    gw = await gateway_factory(
        config(
            provider("a", slow.base_url),
            provider("b", spare.base_url),
            # A per-try limit past the deadline: the first attempt may use all of it.
            route(
                "chat",
                ("a", "slow=5000"),
                ("b", "mock-gpt"),
                retries_per_target=2,
                per_try_timeout_s=10,
            ),
            request_timeout_s=0.5,
        )
    )
    began = time.monotonic()
    answer = await post(gw, stream=stream)
    assert 0.5 <= time.monotonic() - began < 3
    assert answer.status == 504
    error = answer.json()["error"]
    assert (error["type"], error["code"]) == ("timeout_error", "deadline_exceeded")
    assert [a["reason"] for a in error["attempts"]] == ["timeout"]
    assert (slow.stats.total, spare.stats.total) == (1, 0)  # no time left for anyone
    m = await scrape(gw)
    assert provider_errors(m, provider="a", reason="timeout") == 1
    assert retries(m) == failovers(m) == 0
    assert metric(m, "gateway_requests_total", route="chat", status="504") == 1


async def test_leftover_time_running_out_does_not_count_against_a_target(
    gateway_factory: GatewayFactory, upstream_factory: UpstreamFactory
) -> None:
    """The first target eats most of the deadline; the second, given what is left, is
    not blamed for the deadline passing (its breaker stays closed)."""
    first, second = await upstream_factory(), await upstream_factory()
    gw = await gateway_factory(
        config(
            provider("a", first.base_url),
            provider("b", second.base_url, breaker_consecutive_failures=1),
            route(
                "chat",
                ("a", "slow=400+error=500"),
                ("b", "slow=5000"),
                retries_per_target=0,
                per_try_timeout_s=10,  # no share: the first may eat most of the deadline
            ),
            request_timeout_s=0.6,
        )
    )
    answer = await post(gw)
    assert answer.status == 504
    assert [a["reason"] for a in answer.json()["error"]["attempts"]] == [
        "server_error",
        "timeout",
    ]
    assert second.stats.total == 1
    m = await scrape(gw)
    assert provider_errors(m, provider="b", reason="timeout") == 1
    assert failovers(m, from_provider="a", to_provider="b") == 1
    assert metric(m, "gateway_circuit_state", provider="b") == 0
