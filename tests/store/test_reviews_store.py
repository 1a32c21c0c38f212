"""The review queue on every store (memory, Redis, Redis Cluster): newest first, by
state and prompt; a decision is made once however many deciders race (two replicas
sweeping, two reviewers); items past their time are found; the oldest are trimmed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from gateway.errors import Conflict, NotFound
from gateway.store.base import Store
from gateway.store.memory import MemoryStore
from gateway.store.redis import RedisStore
from gateway.store.reviews import ReviewItem, decided_copy
from gateway.store.reviews_redis import RedisReviews
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
    redis_store = RedisStore.from_config(
        make_redis_config(server.url, cluster=cluster, timeout_s=5.0)
    )
    try:
        yield redis_store
    finally:
        await redis_store.close()


def item(n: int, prompt: str = "support", expires_at: float | None = None) -> ReviewItem:
    return ReviewItem(
        id=f"rev_{n:03d}",
        kind="held",
        prompt=prompt,
        version="v1",
        route="chat",
        key="app",
        guard="g",
        reason="matched",
        answer=f"answer {n}",
        messages=[{"role": "user", "content": f"q{n}"}],
        created_at=1000.0 + n,
        expires_at=expires_at,
    )


async def test_items_list_newest_first_by_state_and_prompt(store: Store) -> None:
    reviews = store.reviews()
    for n in range(3):
        await reviews.add(item(n))
    await reviews.add(item(3, prompt="other"))
    assert [i.id for i in await reviews.query(None, None, 10)] == [
        "rev_003",
        "rev_002",
        "rev_001",
        "rev_000",
    ]
    assert [i.id for i in await reviews.query("pending", "support", 2)] == ["rev_002", "rev_001"]
    stored = await reviews.get("rev_001")
    assert stored is not None and stored.messages == [{"role": "user", "content": "q1"}]
    await reviews.decide(decided_copy(stored, "rejected", "rita", "no"))
    assert [i.id for i in await reviews.query("rejected", None, 10)] == ["rev_001"]
    assert await reviews.pending_count() == 3
    assert await reviews.get("rev_404") is None
    with pytest.raises(NotFound):
        await reviews.decide(decided_copy(item(404), "approved", "rita", ""))


async def test_racing_decisions_make_one(store: Store) -> None:
    reviews, other = store.reviews(), store.reviews()
    await reviews.add(item(1))
    pending = await reviews.get("rev_001")
    assert pending is not None
    outcomes = await asyncio.gather(
        reviews.decide(decided_copy(pending, "approved", "rita", "yes")),
        other.decide(decided_copy(pending, "expired", "timeout", "late", timed_out=True)),
        return_exceptions=True,
    )
    won = [o for o in outcomes if isinstance(o, ReviewItem)]
    lost = [o for o in outcomes if isinstance(o, Conflict)]
    assert len(won) == 1 and len(lost) == 1
    stored = await reviews.get("rev_001")
    assert stored is not None and stored.state == won[0].state
    assert await reviews.pending_count() == 0


async def test_items_past_their_time_are_due(store: Store) -> None:
    reviews = store.reviews()
    await reviews.add(item(1, expires_at=50.0))
    await reviews.add(item(2, expires_at=150.0))
    await reviews.add(item(3))  # no timeout: never due
    assert await reviews.due(100.0) == ["rev_001"]
    assert sorted(await reviews.due(200.0)) == ["rev_001", "rev_002"]


async def test_redis_keeps_the_newest_items(redis_server: RedisServer) -> None:
    store = RedisStore.from_config(make_redis_config(redis_server.url, timeout_s=5.0))
    try:
        reviews = RedisReviews(store.client, "trim:", kept=3)
        for n in range(5):
            await reviews.add(item(n, expires_at=10.0))
        assert [i.id for i in await reviews.query(None, None, 10)] == [
            "rev_004",
            "rev_003",
            "rev_002",
        ]
        assert await reviews.get("rev_000") is None
        assert await store.client.hlen(reviews.items_key) == 3
        assert sorted(await reviews.due(20.0)) == ["rev_002", "rev_003", "rev_004"]
    finally:
        await store.close()
