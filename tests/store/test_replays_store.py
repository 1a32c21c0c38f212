"""Kept replay results on every store (memory, Redis, Redis Cluster): newest first, by
id, the last `REPLAYS_KEPT` per prompt, prompts apart."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gateway.store.base import Store
from gateway.store.memory import MemoryStore
from gateway.store.redis import RedisStore
from gateway.store.replays import REPLAYS_KEPT, RedisReplays
from tests.redis_fixtures import RedisServer, make_redis_config


@pytest.fixture(params=["memory", "redis", "redis-cluster"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    cluster = request.param == "redis-cluster"
    server: RedisServer = request.getfixturevalue(
        "redis_cluster_server" if cluster else "redis_server"
    )
    redis_store = RedisStore.from_config(make_redis_config(server.url, cluster=cluster))
    try:
        yield redis_store
    finally:
        await redis_store.close()


async def test_the_newest_results_are_kept_per_prompt_and_found_by_id(store: Store) -> None:
    replays = store.replays()
    for i in range(REPLAYS_KEPT + 2):
        await replays.add("support", {"id": f"rp{i:03d}", "verdict": {"result": "pass"}})
    await replays.add("other", {"id": "rp-other", "numbers": {"n": [1, 2]}})

    recent = await replays.recent("support")
    assert len(recent) == REPLAYS_KEPT
    assert recent[0]["id"] == f"rp{REPLAYS_KEPT + 1:03d}" and recent[-1]["id"] == "rp002"
    assert [r["id"] for r in await replays.recent("support", limit=2)] == ["rp051", "rp050"]
    assert await replays.get("support", "rp001") is None  # dropped with the oldest
    assert await replays.get("support", "rp010") == {"id": "rp010", "verdict": {"result": "pass"}}
    assert await replays.get("support", "rp-other") is None
    assert await replays.get("other", "rp-other") == {"id": "rp-other", "numbers": {"n": [1, 2]}}
    assert await replays.recent("nobody") == []
    if isinstance(replays, RedisReplays):  # the dropped results are gone, not just unlisted
        assert isinstance(store, RedisStore)
        assert await store.client.hlen(replays.results_key("support")) == REPLAYS_KEPT

    kept = await replays.get("other", "rp-other")
    assert kept is not None
    kept["numbers"]["n"].append(3)  # a reader's copy: the kept result is unchanged
    assert await replays.get("other", "rp-other") == {"id": "rp-other", "numbers": {"n": [1, 2]}}
