"""Client keys across replicas, for real: three `gateway serve` processes on one
`redis-server`. A key made on one replica serves on all; a revocation made on one
is refused by every replica within a second of its answer; with Redis stopped the
replicas keep serving the keys they know. No token or digest appears in any admin
answer, metrics page or log line along the way."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.redis_fixtures import RedisServer
from tests.served_gateway import Served, serve, wait_until

ADMIN = {"Authorization": "Bearer break-glass"}
CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
REVOCATION_WITHIN_S = 1.0
CONFIG = """
[server]
port = {port}
admin_token = "break-glass"
[redis]
url = "%s"
prefix = "keys:"
connect_timeout_s = 5
socket_timeout_s = 5
[providers.mock]
type = "mock"
[models.chat]
targets = [{ provider = "mock", model = "demo" }]
"""


@pytest.fixture
async def replicas(redis_server: RedisServer, tmp_path: Path) -> AsyncIterator[list[Served]]:
    text = CONFIG % redis_server.url
    started = await asyncio.gather(
        *(serve(tmp_path / f"replica{i}.toml", text) for i in range(3)), return_exceptions=True
    )
    served = [s for s in started if isinstance(s, Served)]
    try:
        for outcome in started:
            if isinstance(outcome, BaseException):
                raise outcome
        yield served
    finally:
        for replica in served:
            await replica.stop()


async def chat(session: aiohttp.ClientSession, replica: Served, token: str) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    async with session.post(replica.url("/v1/chat/completions"), json=CHAT, headers=headers) as r:
        await r.read()
        return r.status


async def admin(
    session: aiohttp.ClientSession, replica: Served, method: str, path: str, body: Any = None
) -> Any:
    async with session.request(method, replica.url("/admin" + path), json=body, headers=ADMIN) as r:
        assert r.status in (200, 201), await r.text()
        return await r.json()


async def first_refusal(session: aiohttp.ClientSession, replica: Served, token: str) -> float:
    """Seconds until `replica` refuses `token`, asking again and again."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while (status := await chat(session, replica, token)) == 200:
        assert loop.time() - started < 10, "never refused"
    assert status == 401
    return loop.time() - started


async def test_keys_reach_every_replica_and_a_revocation_within_a_second(
    replicas: list[Served], redis_server: RedisServer
) -> None:
    async with aiohttp.ClientSession() as session:
        revoked = (await admin(session, replicas[0], "POST", "/keys", {"name": "a"}))["token"]
        kept = (await admin(session, replicas[2], "POST", "/keys", {"name": "b"}))["token"]

        async def everywhere(token: str) -> bool:
            statuses = [await chat(session, r, token) for r in replicas]
            return statuses == [200, 200, 200]

        await wait_until(lambda: everywhere(revoked))
        await wait_until(lambda: everywhere(kept))

        await admin(session, replicas[1], "DELETE", "/keys/a")
        # From the DELETE's answer to each replica's first refusal.
        took = await asyncio.gather(*(first_refusal(session, r, revoked) for r in replicas))
        print(f"revocation refused after {[f'{t * 1000:.0f} ms' for t in took]}")
        assert max(took) < REVOCATION_WITHIN_S, took

        pages = [await admin(session, r, "GET", "/keys") for r in replicas]
        for replica in replicas:
            async with session.get(replica.url("/metrics")) as r:
                pages.append(await r.text())
        assert [k["revoked"] for k in pages[0]["keys"]] == [True, False]

        redis_server.stop()

        async def store_down() -> bool:
            ups = []
            for replica in replicas:
                async with session.get(replica.url("/readyz")) as r:
                    ups.append((await r.json())["store"]["up"])
            return not any(ups)

        await wait_until(store_down)  # every replica has found Redis gone
        for replica in replicas:
            assert await chat(session, replica, kept) == 200
            assert await chat(session, replica, revoked) == 401

    for replica in replicas:
        await replica.stop()  # so that its output is complete
    text = str(pages) + "".join(line for r in replicas for line in r.output)
    assert '"request_id"' in text  # the access log was read
    for token in (revoked, kept):
        assert token not in text
        assert hashlib.sha256(token.encode()).hexdigest() not in text
