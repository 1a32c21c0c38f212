"""A frozen Redis (SIGSTOP) under the closed mode: no request waits on it, what the
capacity in hand does not cover is refused, and the limits come back with Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import aiohttp

from gateway.appkeys import LIMITER
from tests.conftest import CLIENT_TOKEN, Gateway, key_sha256
from tests.redis_fixtures import RedisServer

CONFIG = """
[redis]
url = "{redis}"
connect_timeout_s = 5
[providers.mock]
type = "mock"
[models.chat]
targets = [{{ provider = "mock", model = "words=3" }}]
[[keys]]
name = "app"
sha256 = "{sha}"
limits = {{ rpm = 1000 }}
[limits]
on_store_error = "closed"
lease_fraction = 0.01
sync_interval_s = 0.2
"""


async def chat(s: aiohttp.ClientSession, gw: Gateway) -> tuple[int, float, str | None]:
    began = time.monotonic()
    async with s.post(
        gw.url("/v1/chat/completions"),
        json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {CLIENT_TOKEN}"},
    ) as r:
        await r.read()
        return r.status, time.monotonic() - began, r.headers.get("Retry-After")


async def until(check: Callable[[], bool], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "not within the deadline"
        await asyncio.sleep(0.05)


async def test_closed_mode_refuses_beyond_the_lease_and_recovers(
    gateway_factory: Callable[[str], Awaitable[Gateway]], redis_server: RedisServer
) -> None:
    gw = await gateway_factory(CONFIG.format(redis=redis_server.url, sha=key_sha256()))
    limiter = gw.app[LIMITER]
    async with aiohttp.ClientSession() as s:
        for _ in range(3):
            assert (await chat(s, gw))[0] == 200
        await until(lambda: limiter.meters["key:app:rpm"].granted > 0)
        redis_server.freeze()
        try:
            answers = [await chat(s, gw) for _ in range(40)]
            await until(lambda: not limiter.store_ok)
            held = limiter.meters["key:app:rpm"]
            left = max(held.granted - held.used, 0)
            after = [await chat(s, gw) for _ in range(left + 3)]
        finally:
            redis_server.thaw()
        assert max(seconds for _, seconds, _ in answers + after) < 1.0
        # Closed: what the replica holds is served, the rest refused until Redis is back.
        assert [status for status, _, _ in after] == [200] * left + [429] * 3
        assert after[-1][2] == "1"  # Retry-After: the store may be back in a second
        await until(lambda: limiter.store_ok)
        assert (await chat(s, gw))[0] == 200
