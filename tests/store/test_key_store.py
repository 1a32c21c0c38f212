"""The client-key store on a real `redis-server`, and the replica's follower: writes are
compare-and-set, a change reaches the in-memory snapshot through its notice or, if
the notice and the counter were both missed, through the periodic resync; with
Redis gone the last snapshot stays."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Callable
from dataclasses import replace

import msgspec

from gateway.config.loader import RedisConfig
from gateway.store.key_follower import KeyFollower
from gateway.store.keys import KeyRecord, KeySnapshot, encode_record
from gateway.store.keys_redis import RedisKeyStore
from gateway.store.memory import MemoryStore
from gateway.store.redis import RedisStore
from tests.redis_fixtures import RedisServer


def record(name: str, token: str, **fields: object) -> KeyRecord:
    digest = hashlib.sha256(token.encode()).hexdigest()
    return msgspec.structs.replace(KeyRecord(name=name, sha256=digest), **fields)


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def until(check: Callable[[], bool], within_s: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not check():
        assert loop.time() < deadline, "not reached in time"
        await asyncio.sleep(0.02)


async def test_writes_are_compare_and_set_in_both_stores(redis_store: RedisStore) -> None:
    for store in (redis_store.client_keys(), MemoryStore().client_keys()):
        first = record("a", "t1")
        assert await store.save(first, None)
        assert not await store.save(first, None)  # the name is taken
        second = msgspec.structs.replace(first, team="x", revision=1)
        assert await store.save(second, 0)
        assert not await store.save(msgspec.structs.replace(first, revision=1), 0)  # stale
        assert await store.get("a") == second
        assert await store.all() == {"a": second}


async def test_the_snapshot_holds_live_tokens_only() -> None:
    snapshot = KeySnapshot()
    snapshot.swap(
        {
            "live": record("live", "new", previous_sha256=digest("old").hex(), previous_until=2e9),
            "past": record("past", "p2", previous_sha256=digest("p1").hex(), previous_until=1.0),
            "gone": record("gone", "g", revoked_at=1.0),
        }
    )
    assert set(snapshot.by_digest) == {digest("new"), digest("old"), digest("p2")}
    assert snapshot.by_digest[digest("old")].expires_at == 2e9  # the grace's end
    assert snapshot.by_digest[digest("new")].source == "store"


async def test_the_follower_resyncs_and_keeps_its_snapshot_without_redis(
    redis_server: RedisServer, redis_config: RedisConfig
) -> None:
    cfg = replace(redis_config, resync_interval_s=0.3)
    store = RedisStore.from_config(cfg)
    keys = store.client_keys()
    assert isinstance(keys, RedisKeyStore)
    follower = KeyFollower(keys, KeySnapshot())
    task = asyncio.create_task(follower.follow())
    try:
        assert await keys.save(record("a", "ta"), None)
        await until(lambda: digest("ta") in follower.snapshot.by_digest)  # the notice
        # Written behind the store's back: no notice, no counter; the resync finds it.
        raw = encode_record(record("b", "tb"))
        redis_server.command("HSET", keys.records_key, "b", raw.decode())
        await until(lambda: digest("tb") in follower.snapshot.by_digest)
        redis_server.stop()
        synced_at = follower.snapshot.loaded_at
        await until(lambda: not follower.up)
        await asyncio.sleep(0)  # one more turn of the loop: still the same snapshot
        assert follower.snapshot.loaded_at == synced_at
        assert {digest("ta"), digest("tb")} <= set(follower.snapshot.by_digest)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await store.close()
