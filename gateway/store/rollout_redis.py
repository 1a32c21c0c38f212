"""Rollouts and per-version request counts in Redis, on the store's client and prefix.

- `{prefix}rollout:{NAME}:state`: STRING, the rollout as JSON (gateway.store.rollouts).
  Written only by compare-and-set on its `revision` (a Lua script).
- `{prefix}rollout:{NAME}:lease`: STRING, the id of the replica driving the rollout,
  with a TTL (`SET NX PX`); renewed by its holder and released only by it (Lua).
- `{prefix}rollouts`: SET of prompts whose rollout may need a driver.
- `{prefix}rollout:{NAME}:stats:{START_MS}`: HASH, request counts of one time bucket
  (named by its start, unix ms) as `{version}:{field}` (see `VersionCounts.fields`),
  expiring after the stats TTL.

`{NAME}` is the prompt's Cluster hash tag, as for its other keys."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.store.redis_connect import RedisClient
from gateway.store.rollouts import Rollout, decode_rollout
from gateway.store.version_counts import Batch, VersionCounts, bucket_starts_ms

_SAVE_IF_REVISION = """
local current = redis.call('GET', KEYS[1])
local revision = 0
if current then revision = cjson.decode(current)['revision'] end
if revision ~= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return 1
"""
_RENEW_IF_OWNER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE_IF_OWNER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


class RolloutKeys:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def state(self, name: str) -> str:
        return f"{self.prefix}rollout:{{{name}}}:state"

    def lease(self, name: str) -> str:
        return f"{self.prefix}rollout:{{{name}}}:lease"

    def stats(self, name: str, start_ms: int) -> str:
        return f"{self.prefix}rollout:{{{name}}}:stats:{start_ms}"

    @property
    def active(self) -> str:
        return f"{self.prefix}rollouts"


class RedisRolloutStore:
    kind = "redis"

    def __init__(self, client: RedisClient, prefix: str) -> None:
        self._client = client
        self.keys = RolloutKeys(prefix)
        self._save = client.register_script(_SAVE_IF_REVISION)
        self._renew = client.register_script(_RENEW_IF_OWNER)
        self._release = client.register_script(_RELEASE_IF_OWNER)

    async def load(self, prompt: str) -> Rollout | None:
        raw = await self._client.get(self.keys.state(prompt))
        return decode_rollout(raw) if raw else None

    async def save(self, rollout: Rollout, expected_revision: int) -> bool:
        # The name is added before and after the write: a concurrent `forget` (which
        # re-reads after removing) can then never leave an active rollout unlisted.
        needs_driver = rollout.active or rollout.pending
        if needs_driver:
            await self._client.sadd(self.keys.active, rollout.prompt)
        args: list[int | bytes] = [expected_revision, orjson.dumps(rollout.to_json())]
        saved = bool(await self._save(keys=[self.keys.state(rollout.prompt)], args=args))
        if saved and needs_driver:
            await self._client.sadd(self.keys.active, rollout.prompt)
        return saved

    async def active(self) -> list[str]:
        return sorted(_text(n) for n in await self._client.smembers(self.keys.active))

    async def forget(self, prompt: str) -> None:
        await self._client.srem(self.keys.active, prompt)
        again = await self.load(prompt)
        if again is not None and (again.active or again.pending):
            await self._client.sadd(self.keys.active, prompt)

    async def lease(self, prompt: str, owner: str, ttl_s: float) -> bool:
        key, ms = self.keys.lease(prompt), max(int(ttl_s * 1000), 1)
        if await self._client.set(key, owner, nx=True, px=ms):
            return True
        return bool(await self._renew(keys=[key], args=[owner, ms]))

    async def release(self, prompt: str, owner: str) -> None:
        await self._release(keys=[self.keys.lease(prompt)], args=[owner])

    async def lease_holder(self, prompt: str) -> str | None:
        raw = await self._client.get(self.keys.lease(prompt))
        return _text(raw) if raw else None


class RedisVersionStats:
    """The `StatsSink` on Redis: one pipeline per flush, whatever the traffic."""

    def __init__(self, client: RedisClient, prefix: str) -> None:
        self._client = client
        self.keys = RolloutKeys(prefix)

    async def add(self, batch: Batch, ttl_s: float) -> None:
        pipe = self._client.pipeline(transaction=False)
        queued = False
        for prompt, buckets in batch.items():
            for start_ms, versions in buckets.items():
                key = self.keys.stats(prompt, start_ms)
                for version, counts in versions.items():
                    for name, value in counts.fields().items():
                        field = f"{version}:{name}"
                        if isinstance(value, float):
                            pipe.hincrbyfloat(key, field, value)
                        else:
                            pipe.hincrby(key, field, value)
                        queued = True
                pipe.pexpire(key, int(ttl_s * 1000))
        if queued:
            await pipe.execute()

    async def window(
        self, prompt: str, since: float, until: float, bucket_s: float
    ) -> dict[str, VersionCounts]:
        starts = bucket_starts_ms(since, until, bucket_s)
        pipe = self._client.pipeline(transaction=False)
        for start_ms in starts:
            pipe.hgetall(self.keys.stats(prompt, start_ms))
        out: dict[str, VersionCounts] = {}
        replies: list[Any] = await pipe.execute() if starts else []
        for raw in replies:
            for raw_field, raw_value in (raw or {}).items():
                version, _, name = _text(raw_field).partition(":")
                out.setdefault(version, VersionCounts()).add_field(name, _text(raw_value))
        return out
