"""Headers across the gateway: the request id and the client's W3C trace context go to
the provider; the provider's rate limits, Retry-After and request id come back."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.providers.mock import openai_completion
from tests.conftest import CLIENT_TOKEN, Gateway, basic_config

GatewayFactory = Callable[[str], Awaitable[Gateway]]
AiohttpServer = Callable[..., Awaitable[TestServer]]
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
LIMITS = {
    "x-ratelimit-limit-requests": "500",
    "x-ratelimit-remaining-requests": "499",
    "x-ratelimit-reset-tokens": "6ms",
    "x-request-id": "req_provider_123",
    "openai-processing-ms": "12",  # not a rate limit: stays with us
}


def provider(seen: list[Any]) -> web.Application:
    async def chat(request: web.Request) -> web.StreamResponse:
        seen.append(request.headers.copy())
        body = await request.json()
        if body.get("stream"):
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream", **LIMITS})
            await response.prepare(request)
            chunk = b'{"id":"c","object":"chat.completion.chunk","created":0,"model":"m",'
            chunk += b'"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}'
            await response.write(b"data: " + chunk + b"\n\ndata: [DONE]\n\n")
            await response.write_eof()
            return response
        answer: Any = openai_completion(body["model"], "hi", 1, "chatcmpl-1")
        return web.json_response(answer, headers=LIMITS)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    return app


@pytest.mark.parametrize("stream", [False, True])
async def test_ids_and_trace_context_go_up_and_rate_limits_come_back(
    gateway_factory: GatewayFactory, aiohttp_server: AiohttpServer, stream: bool
) -> None:
    seen: list[Any] = []
    fake = await aiohttp_server(provider(seen))
    gw = await gateway_factory(basic_config(str(fake.make_url("/v1"))))
    headers = {
        "Authorization": f"Bearer {CLIENT_TOKEN}",
        "X-Request-Id": "client-req-1",
        "traceparent": TRACEPARENT,
        "tracestate": "vendor=abc",
    }
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    async with (
        aiohttp.ClientSession() as session,
        session.post(gw.url("/v1/chat/completions"), json=body, headers=headers) as r,
    ):
        assert r.status == 200
        await r.read()
        answered = r.headers
    (sent,) = seen
    assert sent["X-Request-Id"] == "client-req-1"
    assert (sent["traceparent"], sent["tracestate"]) == (TRACEPARENT, "vendor=abc")
    assert sent["Authorization"] == "Bearer sk-upstream-secret"  # ours, not the client's
    assert answered["X-Request-Id"] == "client-req-1"
    assert answered["X-Gateway-Upstream-Request-Id"] == "req_provider_123"
    assert answered["x-ratelimit-remaining-requests"] == "499"
    assert answered["x-ratelimit-reset-tokens"] == "6ms"
    assert "openai-processing-ms" not in answered
