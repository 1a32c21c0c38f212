"""Kept `/v1/responses` answers: bounded and expiring in memory, expiring in Redis."""

from __future__ import annotations

from gateway.config.responses import ResponsesConfig
from gateway.store.redis import RedisStore
from gateway.store.responses import MemoryResponses, RedisResponses
from tests.redis_fixtures import RedisServer, make_redis_config


async def test_memory_entries_expire_after_ttl() -> None:
    now = [1000.0]
    store = MemoryResponses(lambda: ResponsesConfig(ttl_s=60), clock=lambda: now[0])
    await store.put("resp_a", {"output": [1]})
    assert await store.get("resp_a") == {"output": [1]}
    now[0] += 61
    assert await store.get("resp_a") is None
    await store.put("resp_b", {})
    assert len(store) == 1  # the expired one went as the next came


async def test_memory_keeps_at_most_max_stored() -> None:
    store = MemoryResponses(lambda: ResponsesConfig(max_stored=2))
    for name in ("a", "b", "c"):
        await store.put(name, {"n": name})
    assert await store.get("a") is None
    assert await store.get("c") == {"n": "c"}
    assert len(store) == 2


async def test_redis_entries_carry_the_ttl(redis_server: RedisServer) -> None:
    store = RedisStore.from_config(make_redis_config(redis_server.url))
    try:
        responses = store.responses(lambda: ResponsesConfig(ttl_s=120))
        await responses.put("resp_a", {"input": ["x"]})
        assert await responses.get("resp_a") == {"input": ["x"]}
        assert isinstance(responses, RedisResponses)
        ttl = int(redis_server.command("PTTL", responses.key("resp_a")).strip(b":\r\n"))
        assert 110_000 < ttl <= 120_000
        assert await responses.get("resp_missing") is None
    finally:
        await store.close()
