"""Redis coming back empty (FLUSHALL, a restart without persistence) under traffic:
the replicas recognise the loss, keep serving their snapshot, write back what it held
and say so in `/readyz` and `gateway_store_data_loss_total`."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from gateway.config.loader import PromptConfig
from gateway.prompts.versions import PromptState
from gateway.store.base import seed_prompts
from gateway.store.redis import RedisStore
from gateway.store.snapshot import PromptsSnapshot
from tests.redis_fixtures import RedisServer, make_redis_config
from tests.store.test_replicas import ADMIN, AiohttpServer, ask, config, eventually, replica

ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN}"}
MAX_REQUESTS = 5000  # the traffic loop's bound: far more than any run needs
AFTER_RESTORE = 20  # requests still driven once every replica has restored


class Traffic:
    """Requests on the prompt route, one after another, until stopped."""

    def __init__(self, session: aiohttp.ClientSession, server: TestServer) -> None:
        self.session, self.server = session, server
        self.statuses: list[int] = []
        self.stop = asyncio.Event()
        self._answered = asyncio.Condition()

    async def run(self) -> None:
        for i in range(MAX_REQUESTS):
            if self.stop.is_set():
                return
            status, _ = await ask(self.session, self.server, f"user-{i}")
            async with self._answered:
                self.statuses.append(status)
                self._answered.notify_all()

    async def answered(self, count: int) -> None:
        """Until `count` requests have been answered in all."""
        async with asyncio.timeout(10), self._answered:
            await self._answered.wait_for(lambda: len(self.statuses) >= count)


async def admin(
    session: aiohttp.ClientSession, server: TestServer, method: str, path: str, body: Any
) -> Any:
    async with session.request(
        method, server.make_url("/admin" + path), headers=ADMIN_HEADERS, json=body
    ) as r:
        assert r.status in (200, 201), await r.text()
        return await r.json()


async def canary(session: aiohttp.ClientSession, server: TestServer) -> None:
    """A second version with 30% of the traffic: more than the config file knows."""
    v2 = {"model": "chat", "messages": [{"role": "system", "content": "v2 for {{product}}"}]}
    await admin(session, server, "POST", "/prompts/support/versions", v2)
    await admin(session, server, "POST", "/prompts/support/versions/v2/approve", {})
    weights = {"weights": {"v1": 70, "v2": 30}}
    await admin(session, server, "PUT", "/prompts/support/routing", weights)


async def readyz(session: aiohttp.ClientSession, server: TestServer) -> tuple[int, Any]:
    async with session.get(server.make_url("/readyz")) as r:
        return r.status, await r.json()


async def restored(session: aiohttp.ClientSession, server: TestServer) -> bool:
    _, body = await readyz(session, server)
    return body["store"].get("restored_at") is not None


async def in_redis(url: str) -> dict[str, PromptState]:
    store = RedisStore.from_config(replace(make_redis_config(url), prefix="replicas:"))
    try:
        return await store.load_all()
    finally:
        await store.close()


def summary(states: dict[str, PromptState]) -> dict[str, Any]:
    return {
        name: (
            sorted((v.id, v.hash, v.status) for v in state.versions.values()),
            dict(state.routing.weights) if state.routing else None,
        )
        for name, state in states.items()
    }


async def lose_data_under_traffic(
    aiohttp_server: AiohttpServer, tmp_path: Path, redis_server: RedisServer, lose: Any
) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(config(redis_server.url))
    server_a, _ = await replica(aiohttp_server, path)
    server_b, _ = await replica(aiohttp_server, path)
    servers = (server_a, server_b)
    async with aiohttp.ClientSession() as session:
        await canary(session, server_a)
        before = summary(await in_redis(redis_server.url))
        assert before["support"][1] == {"v1": 70, "v2": 30}
        traffic = [Traffic(session, server) for server in servers]
        tasks = [asyncio.create_task(t.run()) for t in traffic]
        try:
            await asyncio.gather(*(t.answered(10) for t in traffic))
            lose()
            for server in servers:
                await eventually(lambda server=server: restored(session, server))
            await asyncio.gather(*(t.answered(len(t.statuses) + AFTER_RESTORE) for t in traffic))
        finally:
            for t in traffic:
                t.stop.set()
            await asyncio.gather(*tasks)
        for t in traffic:
            assert [s for s in t.statuses if s != 200] == [], "a prompt request failed"
        # What the snapshot knew is back in Redis, once, whichever replica wrote it.
        assert summary(await in_redis(redis_server.url)) == before
        details = []
        for server in servers:
            status, body = await readyz(session, server)
            assert status == 200 and body["status"] == "ready"
            details.append(body["store"])
            async with session.get(server.make_url("/metrics")) as r:
                assert "gateway_store_data_loss_total 1.0" in await r.text()
        assert all(d["data_lost_at"] <= d["restored_at"] for d in details)
        assert sum(d["prompts_restored"] for d in details) == 1  # first writer wins
        async with session.get(
            server_b.make_url("/admin/prompts/support/history"), headers=ADMIN_HEADERS
        ) as r:
            changes = (await r.json())["history"]
        assert [c["after"]["weights"] for c in changes] == [{"v1": 70, "v2": 30}]
        assert "lost its data" in changes[0]["reason"]


async def test_flushall_under_traffic_is_recognised_and_restored(
    aiohttp_server: AiohttpServer, tmp_path: Path, redis_server: RedisServer
) -> None:
    def flush() -> None:
        assert redis_server.command("FLUSHALL").startswith(b"+OK")

    await lose_data_under_traffic(aiohttp_server, tmp_path, redis_server, flush)


async def test_redis_restarted_empty_under_traffic_is_recognised_and_restored(
    aiohttp_server: AiohttpServer, tmp_path: Path, redis_server: RedisServer
) -> None:
    def restart_empty() -> None:  # no persistence: the new server starts with nothing
        redis_server.stop()
        redis_server.start()

    await lose_data_under_traffic(aiohttp_server, tmp_path, redis_server, restart_empty)


async def test_replicas_restoring_at_once_write_each_prompt_once(redis_server: RedisServer) -> None:
    """Many writers race on an emptied Redis: one wins each prompt and the data set id,
    the others find them present; what was written is what the snapshot held."""
    stores = [RedisStore.from_config(make_redis_config(redis_server.url)) for _ in range(4)]
    try:
        seed, *_ = stores
        prompt = PromptConfig("p", "chat", ({"role": "user", "content": "hi"},), {})
        await seed_prompts(seed, {"p": prompt}, {})
        snapshot = PromptsSnapshot.from_states(await seed.load_all())
        assert redis_server.command("FLUSHALL").startswith(b"+OK")
        assert (await seed.load_marked()).dataset is None  # the loss shows
        written = await asyncio.gather(*(s.restore_prompt(snapshot.states()["p"]) for s in stores))
        ids = await asyncio.gather(*(s.mark_dataset() for s in stores))
        assert sorted(written) == [False, False, False, True]
        assert len(set(ids)) == 1
        loaded = await seed.load_marked()
        assert loaded.dataset == ids[0]
        assert summary(loaded.states) == summary(snapshot.states())
        assert len(await seed.history("p")) == 1
    finally:
        for store in stores:
            await store.close()
