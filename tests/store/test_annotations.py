"""Feedback and capture labels on each store (memory, Redis, Redis Cluster): one
feedback per (request, key) with the bucket counts moved on a replacement, the latest
of each read back, events of the previous release still decoding; labels put, read,
found by name and removed."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import orjson
import pytest
import redis.asyncio as aioredis

from gateway.store.base import Store
from gateway.store.feedback import FeedbackEntry, RedisFeedback
from gateway.store.memory import MemoryStore
from gateway.store.redis import RedisStore
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
    config = make_redis_config(server.url, cluster=cluster, timeout_s=5.0)
    redis_store = RedisStore.from_config(config)
    try:
        yield redis_store
    finally:
        await redis_store.close()


def given(request_id: str, score: float, key: str = "app", **extra: object) -> FeedbackEntry:
    value = "positive" if score >= 0.5 else "negative"
    return FeedbackEntry(
        request_id=request_id,
        at=time.time(),
        prompt="support",
        version="v1",
        provider="fake",
        model="mock-gpt",
        score=score,
        value=value,
        key=key,
        **extra,  # type: ignore[arg-type]
    )


async def test_one_feedback_per_request_and_key(store: Store) -> None:
    log = store.annotations().feedback
    assert await log.give(given("r1", 1.0)) is None
    old = await log.give(given("r1", 0.0, comment="changed my mind"))
    assert old is not None and old.value == "positive"
    assert await log.give(given("r1", 1.0, key="other")) is None  # another key: its own
    assert await log.give(given("r2", 0.2, kind="implicit", signal="regenerated")) is None
    counts = await log.counts("support", "v1", 600)
    assert (counts.total, counts.positive, counts.negative) == (3, 1, 2)
    assert counts.score_sum == pytest.approx(1.2)
    assert (await log.counts("support", "v2", 600)).total == 0

    latest = await log.latest(None)
    assert [(e.request_id, e.key, e.value, e.replaced) for e in latest] == [
        ("r2", "app", "negative", False),
        ("r1", "other", "positive", False),
        ("r1", "app", "negative", True),
    ]
    assert latest[0].signal == "regenerated" and latest[2].comment == "changed my mind"
    assert await log.latest(time.time() + 60) == []
    found = await log.of_requests(["r1", "r2", "r3"])
    assert sorted(found) == ["r1", "r2"]
    assert [(e.key, e.value, e.replaced) for e in found["r1"]] == [
        ("app", "negative", True),
        ("other", "positive", False),
    ]


async def test_labels_are_kept_beside_captures(store: Store) -> None:
    labels = store.annotations().labels
    assert await labels.put("r1", "good", "", "rita") is True
    assert await labels.put("r1", "leak", "the key", "rita") is True
    assert await labels.put("r1", "good", "still", "sam") is False  # again: updated
    assert await labels.put("r2", "good", "", "rita") is True
    found = await labels.of_requests(["r1", "r2", "r3"])
    assert [(x.label, x.by, x.note) for x in found["r1"]] == [
        ("good", "sam", "still"),
        ("leak", "rita", "the key"),
    ]
    assert "r3" not in found
    assert await labels.requests_with("good") == {"r1", "r2"}
    assert await labels.remove("r1", "good") is True
    assert await labels.remove("r1", "good") is False
    assert await labels.requests_with("good") == {"r2"}
    assert [x.label for x in (await labels.of_requests(["r1"]))["r1"]] == ["leak"]


async def test_feedback_events_of_the_previous_release_still_decode(
    redis_server: RedisServer,
) -> None:
    store = RedisStore.from_config(make_redis_config(redis_server.url, timeout_s=5.0))
    redis = aioredis.Redis.from_url(redis_server.url)
    try:
        log = store.annotations().feedback
        assert isinstance(log, RedisFeedback)
        before = {  # what the release before wrote
            "at": time.time(),
            "request_id": "old-1",
            "prompt": "support",
            "version": "v1",
            "provider": "fake",
            "model": "mock-gpt",
            "score": 1.0,
            "value": "positive",
            "comment": "",
        }
        await redis.xadd(log.events_key, {"e": orjson.dumps(before)})
        (entry,) = await log.latest(None)
        assert (entry.request_id, entry.kind, entry.key, entry.signal) == (
            "old-1",
            "explicit",
            "",
            None,
        )
    finally:
        await redis.aclose()
        await store.close()
