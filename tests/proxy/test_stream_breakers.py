"""A stream is judged by how it ends: a target that fails half-way through its streams
is a failing target to its circuit breaker, and a half-open probe that fails half-way
opens the circuit again instead of closing it at its first token."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiohttp
import orjson
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.appkeys import METRICS
from tests.conftest import CLIENT_TOKEN, Gateway, Upstream

GatewayFactory = Callable[[str], Awaitable[Gateway]]
AiohttpServer = Callable[..., Awaitable[TestServer]]
MESSAGES = [{"role": "user", "content": "hello"}]


def _chunk(content: str) -> bytes:
    delta = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m"}
    delta["choices"] = [{"index": 0, "delta": {"content": content}, "finish_reason": None}]
    return b"data: " + orjson.dumps(delta) + b"\n\n"


def cutting_provider(cut: Callable[[int], bool]) -> web.Application:
    """An OpenAI-format stream of three words; stream number n (from 1) is cut after
    its first word when `cut(n)`."""
    served = [0]

    async def chat(request: web.Request) -> web.StreamResponse:
        served[0] += 1
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(_chunk("one "))
        if cut(served[0]):
            assert request.transport is not None
            request.transport.close()  # the connection drops mid-stream
            return response
        await response.write(_chunk("two ") + _chunk("three"))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    return app


def config(flaky_url: str, good_url: str, breaker: str = "") -> str:
    return f"""
[providers.flaky]
type = "openai"
base_url = "{flaky_url}"
{breaker}
[providers.good]
type = "openai"
base_url = "{good_url}"
[models.chat]
targets = [{{ provider = "flaky", model = "m" }}, {{ provider = "good", model = "mock-gpt" }}]
[[keys]]
name = "k"
sha256 = "{{key_sha256}}"
"""


async def stream_failed(session: aiohttp.ClientSession, gw: Gateway) -> bool:
    """Whether the client saw the stream fail (an error event, no [DONE])."""
    async with session.post(
        gw.url("/v1/chat/completions"),
        headers={"Authorization": f"Bearer {CLIENT_TOKEN}"},
        json={"model": "chat", "messages": MESSAGES, "stream": True},
    ) as r:
        assert r.status == 200
        return b"[DONE]" not in await r.read()


def circuit(gw: Gateway) -> float | None:
    registry = gw.app[METRICS].registry
    return registry.get_sample_value("gateway_circuit_state", {"provider": "flaky", "model": "m"})


async def test_a_target_that_cuts_half_its_streams_opens_its_circuit(
    gateway_factory: GatewayFactory, aiohttp_server: AiohttpServer, upstream: Upstream
) -> None:
    """Default breaker (50% errors over at least 20 requests). Counted at the first token,
    every stream was a success and the cut ones a failure too: 33% errors, the circuit
    never opened and half of all streams failed. Counted at the end: it opens."""
    flaky = await aiohttp_server(cutting_provider(lambda n: n % 2 == 1))
    gw = await gateway_factory(config(str(flaky.make_url("/v1")), upstream.base_url))
    async with aiohttp.ClientSession() as session:
        failed = [await stream_failed(session, gw) for _ in range(40)]
    # Streams 1, 3, … 21 fail; after the 21st, 11 failures in 21 requests open it.
    assert sum(failed) == 11 and not any(failed[21:])
    assert circuit(gw) == 2  # open
    assert upstream.stats.total == 19  # the rest went to the next target


async def test_a_half_open_probe_that_fails_mid_stream_opens_the_circuit_again(
    gateway_factory: GatewayFactory, aiohttp_server: AiohttpServer, upstream: Upstream
) -> None:
    flaky = await aiohttp_server(cutting_provider(lambda n: True))
    breaker = "breaker_consecutive_failures = 2\nbreaker_cooldown_s = 1.0"
    gw = await gateway_factory(config(str(flaky.make_url("/v1")), upstream.base_url, breaker))
    async with aiohttp.ClientSession() as session:
        assert await stream_failed(session, gw) and await stream_failed(session, gw)
        assert circuit(gw) == 2
        await asyncio.sleep(1.1)  # the breaker's own clock: its cool-down
        assert await stream_failed(session, gw)  # the probe: a first token, then a cut
        assert circuit(gw) == 2  # open again, not closed by the probe's first token
        assert not await stream_failed(session, gw)  # to the next target, at once
    assert upstream.stats.total == 1
