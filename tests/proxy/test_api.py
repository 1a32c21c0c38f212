"""The OpenAI-compatible API end to end: the official SDK → gateway → fake provider."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

import aiohttp
import openai
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.providers.mock import reply_text
from tests.conftest import CLIENT_TOKEN, Gateway, Upstream, basic_config

GatewayFactory = Callable[[str], Awaitable[Gateway]]
MESSAGES = [{"role": "user", "content": "What does a gateway do?"}]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_chat_completion_through_the_sdk(
    gateway_factory: GatewayFactory, upstream: Upstream
) -> None:
    gw = await gateway_factory(basic_config(upstream.base_url))
    async with gw.client() as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="chat", messages=MESSAGES, extra_headers={"X-Request-Id": "req-123"}
        )
        completion = raw.parse()
    assert completion.choices[0].message.content == reply_text(MESSAGES)
    assert completion.usage is not None and completion.usage.prompt_tokens == 5
    assert raw.headers["X-Request-Id"] == "req-123"
    assert raw.headers["X-Gateway-Route"] == "chat"
    assert raw.headers["X-Gateway-Provider"] == "fake"
    assert raw.headers["X-Gateway-Model"] == "mock-gpt"
    assert raw.headers["X-Gateway-Attempts"] == "1"
    # The upstream got our provider key, never the client's.
    assert upstream.stats.last_headers["Authorization"] == "Bearer sk-upstream-secret"
    assert upstream.stats.last_body["model"] == "mock-gpt"


async def test_insane_request_id_is_replaced(
    gateway_factory: GatewayFactory, upstream: Upstream
) -> None:
    gw = await gateway_factory(basic_config(upstream.base_url))
    async with gw.client() as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="chat", messages=MESSAGES, extra_headers={"X-Request-Id": "bad id <script>" * 20}
        )
    assert "<" not in raw.headers["X-Request-Id"]
    assert len(raw.headers["X-Request-Id"]) == 22  # 12 hex of process prefix, 10 of counter


async def test_a_streamed_answer_carries_its_request_id(
    gateway_factory: GatewayFactory, upstream: Upstream
) -> None:
    """So that feedback can name a streamed answer too."""
    gw = await gateway_factory(basic_config(upstream.base_url))
    async with gw.client() as client:
        given = await client.chat.completions.with_raw_response.create(
            model="chat", messages=MESSAGES, stream=True, extra_headers={"X-Request-Id": "s-1"}
        )
        made = await client.chat.completions.with_raw_response.create(
            model="chat", messages=MESSAGES, stream=True
        )
        for raw in (given, made):
            async for _ in raw.parse():
                pass
    assert given.headers["X-Request-Id"] == "s-1"
    assert len(made.headers["X-Request-Id"]) == 22
    assert given.headers["X-Gateway-Route"] == "chat"


async def test_stream_hides_usage_chunk_the_client_did_not_ask_for(
    gateway_factory: GatewayFactory, upstream: Upstream
) -> None:
    gw = await gateway_factory(basic_config(upstream.base_url))
    async with gw.client() as client:
        stream = await client.chat.completions.create(model="chat", messages=MESSAGES, stream=True)
        chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == reply_text(MESSAGES)
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)
    # The gateway asked for usage on the client's behalf, and counted it.
    assert upstream.stats.last_body["stream_options"] == {"include_usage": True}
    page = await _metrics(gw)
    assert 'gateway_tokens_total{key="test-app",model="mock-gpt"' in page


async def test_stream_with_include_usage_passes_the_usage_chunk(
    gateway_factory: GatewayFactory, upstream: Upstream
) -> None:
    gw = await gateway_factory(basic_config(upstream.base_url))
    async with gw.client() as client:
        stream = await client.chat.completions.create(
            model="chat", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        chunks = [chunk async for chunk in stream]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == 5
    assert chunks[-1].usage.completion_tokens == len(reply_text(MESSAGES).split())


async def test_stream_is_relayed_as_it_arrives(
    gateway_factory: GatewayFactory, aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> None:
    """The client gets the first token while the provider holds back the rest: nothing
    waits for the whole answer."""
    release_rest = asyncio.Event()

    async def held_stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(_chunk({"role": "assistant", "content": ""}))
        await response.write(_chunk({"content": "first"}))
        await release_rest.wait()  # set by the test once it has the first token
        await response.write(_chunk({"content": " second"}) + b"data: [DONE]\n\n")
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", held_stream)
    server = await aiohttp_server(app)
    gw = await gateway_factory(basic_config(str(server.make_url("/v1"))))
    async with gw.client() as client:
        stream = await client.chat.completions.create(model="chat", messages=MESSAGES, stream=True)
        texts = []
        async for chunk in stream:
            texts.append(chunk.choices[0].delta.content)
            if texts[-1] == "first":
                release_rest.set()
    assert texts == ["", "first", " second"]


async def test_cookies_a_provider_sets_are_not_kept(
    gateway_factory: GatewayFactory, aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> None:
    """A cookie a provider (or its load balancer) sets on one client's answer must not
    ride along with the next client's request."""
    seen: list[str | None] = []

    async def completion(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Cookie"))
        response = web.json_response(
            {
                "id": "c1",
                "object": "chat.completion",
                "created": 1,
                "model": "m",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "hi"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        )
        response.set_cookie("lb_affinity", "first-client")
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completion)
    server = await aiohttp_server(app)
    # A host name, not an IP: cookie jars keep no cookies from bare IP addresses.
    gw = await gateway_factory(basic_config(f"http://localhost:{server.port}/v1"))
    async with gw.client() as client:
        for _ in range(2):
            answer = await client.chat.completions.create(model="chat", messages=MESSAGES)
            assert answer.choices[0].message.content == "hi"
    assert seen == [None, None]


def _chunk(delta: dict[str, object]) -> bytes:
    payload = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
    }
    return b"data: " + orjson.dumps(payload) + b"\n\n"


async def test_embeddings(gateway_factory: GatewayFactory, upstream: Upstream) -> None:
    gw = await gateway_factory(basic_config(upstream.base_url))
    async with gw.client() as client:
        result = await client.embeddings.create(model="embed", input=["a b", "c"])
    assert len(result.data) == 2
    assert result.usage.prompt_tokens == 3
    assert upstream.stats.last_path == "/v1/embeddings"


async def test_models_lists_routes(gateway_factory: GatewayFactory, upstream: Upstream) -> None:
    gw = await gateway_factory(basic_config(upstream.base_url))
    async with gw.client() as client:
        models = [m.id async for m in client.models.list()]
    assert models == ["chat", "embed"]


async def test_one_model_is_shown_or_is_a_404(
    gateway_factory: GatewayFactory, upstream: Upstream
) -> None:
    gw = await gateway_factory(basic_config(upstream.base_url))
    async with gw.client() as client:
        model = await client.models.retrieve("chat")
        with pytest.raises(openai.NotFoundError) as missing:
            await client.models.retrieve("nope")
    assert (model.id, model.object, model.owned_by) == ("chat", "model", "gateway")
    assert missing.value.code == "model_not_found"


async def test_failover_to_the_second_target(
    gateway_factory: GatewayFactory, upstream: Upstream
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens: connection refused
    gw = await gateway_factory(f"""
        [providers.dead]
        type = "openai"
        base_url = "{dead}"
        [providers.fake]
        type = "openai"
        base_url = "{upstream.base_url}"
        [models.chat]
        retries_per_target = 0
        targets = [
          {{ provider = "dead", model = "m" }},
          {{ provider = "fake", model = "mock-gpt" }},
        ]
        [[keys]]
        name = "k"
        sha256 = "{{key_sha256}}"
    """)
    async with gw.client() as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="chat", messages=MESSAGES
        )
    assert raw.parse().choices[0].message.content == reply_text(MESSAGES)
    assert raw.headers["X-Gateway-Provider"] == "fake"
    assert raw.headers["X-Gateway-Attempts"] == "2"
    page = await _metrics(gw)
    assert (
        'gateway_failovers_total{from_provider="dead",route="chat",to_provider="fake"} 1.0' in page
    )
    assert 'gateway_provider_errors_total{model="m",provider="dead",reason="connect"} 1.0' in page


async def test_client_error_from_provider_is_not_failed_over(
    gateway_factory: GatewayFactory, upstream: Upstream
) -> None:
    gw = await gateway_factory(f"""
        [providers.fake]
        type = "openai"
        base_url = "{upstream.base_url}"
        [models.chat]
        targets = [{{ provider = "fake", model = "error=400" }},
                   {{ provider = "fake", model = "mock-gpt" }}]
        [[keys]]
        name = "k"
        sha256 = "{{key_sha256}}"
    """)
    async with gw.client() as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(model="chat", messages=MESSAGES)
    assert caught.value.status_code == 400
    assert "mock error 400" in caught.value.message
    assert upstream.stats.total == 1  # the second target was never asked


async def test_stream_cut_after_first_byte_ends_with_error_event_and_no_done(
    gateway_factory: GatewayFactory, upstream: Upstream
) -> None:
    gw = await gateway_factory(f"""
        [providers.fake]
        type = "openai"
        base_url = "{upstream.base_url}"
        [models.chat]
        targets = [{{ provider = "fake", model = "cut+words=10" }},
                   {{ provider = "fake", model = "mock-gpt" }}]
        [[keys]]
        name = "k"
        sha256 = "{{key_sha256}}"
    """)
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            gw.url("/v1/chat/completions"),
            headers={"Authorization": f"Bearer {CLIENT_TOKEN}"},
            json={"model": "chat", "messages": MESSAGES, "stream": True},
        ) as response,
    ):
        assert response.status == 200
        body = await response.read()
    events = [e for e in body.split(b"\n\n") if e]
    assert b"[DONE]" not in body
    last = orjson.loads(events[-1].removeprefix(b"data: "))
    assert last["error"]["code"] == "stream_cut"
    assert any(b'"content"' in e for e in events[:-1])  # content came before the cut
    assert upstream.stats.total == 1  # no failover after the first byte
    page = await _metrics(gw)
    assert 'reason="stream_cut"} 1.0' in page
    assert 'route="chat",status="502"' in page

    # The SDK surfaces the error event as an exception.
    async with gw.client() as client:
        stream = await client.chat.completions.create(model="chat", messages=MESSAGES, stream=True)
        with pytest.raises(openai.APIError):
            async for _ in stream:
                pass


async def test_client_disconnect_cancels_the_upstream_request(
    gateway_factory: GatewayFactory, aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> None:
    upstream_gone = asyncio.Event()
    first_sent = asyncio.Event()

    async def endless_stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        chunk = (
            b'data: {"id":"x","object":"chat.completion.chunk","choices":[{"index":0,'
            b'"delta":{"content":"word "}}]}\n\n'
        )
        try:
            while True:
                await response.write(chunk)
                first_sent.set()
                await asyncio.sleep(0.02)
        except (ConnectionResetError, asyncio.CancelledError):
            upstream_gone.set()
            raise
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", endless_stream)
    server = await aiohttp_server(app)
    gw = await gateway_factory(basic_config(str(server.make_url("/v1"))))
    async with aiohttp.ClientSession() as session:
        response = await session.post(
            gw.url("/v1/chat/completions"),
            headers={"Authorization": f"Bearer {CLIENT_TOKEN}"},
            json={"model": "chat", "messages": MESSAGES, "stream": True},
        )
        await response.content.readany()
        response.close()  # the client hangs up mid-stream
    await asyncio.wait_for(upstream_gone.wait(), timeout=5)


@pytest.mark.parametrize(
    ("headers", "body", "status", "code"),
    [
        ({"Authorization": f"Bearer {CLIENT_TOKEN}"}, b"{not json", 400, "invalid_json"),
        ({"Authorization": f"Bearer {CLIENT_TOKEN}"}, b"[1, 2]", 400, "invalid_json"),
        (
            {"Authorization": f"Bearer {CLIENT_TOKEN}"},
            b'{"model": "chat"}',
            400,
            "missing_required_parameter",
        ),
        (
            {"Authorization": f"Bearer {CLIENT_TOKEN}"},
            b'{"model": "chat", "messages": []}',
            400,
            "invalid_value",
        ),
        (
            {"Authorization": f"Bearer {CLIENT_TOKEN}"},
            b'{"model": "chat", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}',
            400,
            "invalid_type",
        ),
        (
            {"Authorization": "Bearer sk-wrong"},
            b'{"model": "chat", "messages": []}',
            401,
            "invalid_api_key",
        ),
        ({}, b'{"model": "chat", "messages": []}', 401, "invalid_api_key"),
        (
            {"Authorization": f"Bearer {CLIENT_TOKEN}"},
            b'{"model": "nope", "messages": [{"role": "user", "content": "x"}]}',
            404,
            "model_not_found",
        ),
    ],
)
async def test_bad_requests_get_openai_shaped_errors(
    gateway_factory: GatewayFactory,
    upstream: Upstream,
    headers: dict[str, str],
    body: bytes,
    status: int,
    code: str,
) -> None:
    gw = await gateway_factory(basic_config(upstream.base_url))
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            gw.url("/v1/chat/completions"),
            data=body,
            headers={**headers, "Content-Type": "application/json"},
        ) as response,
    ):
        assert response.status == status
        error = (await response.json())["error"]
    assert error["code"] == code
    assert set(error) >= {"message", "type", "param", "code"}
    assert upstream.stats.total == 0


async def test_unknown_model_through_the_sdk(
    gateway_factory: GatewayFactory, upstream: Upstream
) -> None:
    gw = await gateway_factory(basic_config(upstream.base_url))
    async with gw.client() as client:
        with pytest.raises(openai.NotFoundError):
            await client.chat.completions.create(model="gpt-9", messages=MESSAGES)
    async with gw.client(api_key="sk-wrong") as client:
        with pytest.raises(openai.AuthenticationError):
            await client.chat.completions.create(model="chat", messages=MESSAGES)


async def test_oversized_body_is_413_before_any_upstream_call(
    gateway_factory: GatewayFactory, upstream: Upstream
) -> None:
    gw = await gateway_factory(
        basic_config(upstream.base_url).replace(
            "request_timeout_s = 30", "request_timeout_s = 30\nmax_body_bytes = 1000"
        )
    )
    big = [{"role": "user", "content": "x" * 2000}]
    async with gw.client() as client:
        with pytest.raises(openai.APIStatusError) as caught:
            await client.chat.completions.create(model="chat", messages=big)
    assert caught.value.status_code == 413

    # Chunked upload with no Content-Length is cut off too.
    async def chunks() -> object:
        for _ in range(5):
            yield b" " * 400

    async with (
        aiohttp.ClientSession() as session,
        session.post(
            gw.url("/v1/chat/completions"),
            data=chunks(),
            headers={"Authorization": f"Bearer {CLIENT_TOKEN}"},
        ) as response,
    ):
        assert response.status == 413
    assert upstream.stats.total == 0


async def test_key_limited_to_routes_gets_403(
    gateway_factory: GatewayFactory, upstream: Upstream
) -> None:
    gw = await gateway_factory(basic_config(upstream.base_url, 'routes = ["embed"]'))
    async with gw.client() as client:
        with pytest.raises(openai.PermissionDeniedError):
            await client.chat.completions.create(model="chat", messages=MESSAGES)
        assert [m.id async for m in client.models.list()] == ["embed"]
    assert upstream.stats.total == 0


async def test_unknown_v1_path_is_404_in_openai_shape(
    gateway_factory: GatewayFactory, upstream: Upstream
) -> None:
    gw = await gateway_factory(basic_config(upstream.base_url))
    async with aiohttp.ClientSession() as session, session.get(gw.url("/v1/assistants")) as r:
        assert r.status == 404
        assert (await r.json())["error"]["code"] == "unknown_url"


async def test_health_endpoints(gateway_factory: GatewayFactory, upstream: Upstream) -> None:
    gw = await gateway_factory(basic_config(upstream.base_url))
    async with aiohttp.ClientSession() as session:
        async with session.get(gw.url("/healthz")) as r:
            assert r.status == 200
        async with session.get(gw.url("/readyz")) as r:
            assert r.status == 200
            assert (await r.json())["store"]["kind"] == "embedded"


async def _metrics(gw: Gateway) -> str:
    async with aiohttp.ClientSession() as session, session.get(gw.url("/metrics")) as r:
        return await r.text()
