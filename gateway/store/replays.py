"""Replay results, as the gateway ran them (gateway.evaluation.replay_runner): each one
whole (its numbers, differing cases, verdict) by id, and a prompt's newest first, the
last `REPLAYS_KEPT`. In memory for the embedded store; in Redis, under the prefix:

- `{prefix}prompt:{{name}}:replays`: HASH of replay id → the result's JSON;
- `{prefix}prompt:{{name}}:replay-ids`: LIST of replay ids, newest first.

The `{name}` hash tag keeps both in the prompt's Cluster slot, next to its versions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import orjson

from gateway.store.redis_connect import RedisClient, unavailable_on_error

REPLAYS_KEPT = 50  # per prompt
Result = dict[str, Any]


class ReplayStore(Protocol):
    async def add(self, prompt: str, result: Mapping[str, Any]) -> None:
        """Keep `result` (JSON, with an `id`); the oldest beyond `REPLAYS_KEPT` go."""
        ...

    async def recent(self, prompt: str, limit: int = REPLAYS_KEPT) -> list[Result]:
        """Newest first."""
        ...

    async def get(self, prompt: str, replay_id: str) -> Result | None: ...


class MemoryReplays:
    def __init__(self) -> None:
        self._kept: dict[str, list[Result]] = {}

    async def add(self, prompt: str, result: Mapping[str, Any]) -> None:
        kept = self._kept.setdefault(prompt, [])
        kept.insert(0, orjson.loads(orjson.dumps(result)))  # a copy, as Redis would keep
        del kept[REPLAYS_KEPT:]

    async def recent(self, prompt: str, limit: int = REPLAYS_KEPT) -> list[Result]:
        return [orjson.loads(orjson.dumps(r)) for r in self._kept.get(prompt, [])[:limit]]

    async def get(self, prompt: str, replay_id: str) -> Result | None:
        for result in self._kept.get(prompt, []):
            if result.get("id") == replay_id:
                copy: Result = orjson.loads(orjson.dumps(result))
                return copy
        return None


# One step, so that replicas adding at once never leave a result the list has dropped.
_ADD_AND_TRIM = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('LPUSH', KEYS[2], ARGV[1])
local dropped = redis.call('LRANGE', KEYS[2], tonumber(ARGV[3]), -1)
if #dropped > 0 then
  redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[3]) - 1)
  redis.call('HDEL', KEYS[1], unpack(dropped))
end
return #dropped
"""


class RedisReplays:
    def __init__(self, client: RedisClient, prefix: str) -> None:
        self._client = client
        self.prefix = prefix
        self._add = client.register_script(_ADD_AND_TRIM)

    def results_key(self, prompt: str) -> str:
        return f"{self.prefix}prompt:{{{prompt}}}:replays"

    def ids_key(self, prompt: str) -> str:
        return f"{self.prefix}prompt:{{{prompt}}}:replay-ids"

    async def add(self, prompt: str, result: Mapping[str, Any]) -> None:
        keys = [self.results_key(prompt), self.ids_key(prompt)]
        args: list[str | bytes | int] = [str(result["id"]), orjson.dumps(result), REPLAYS_KEPT]
        with unavailable_on_error():
            await self._add(keys=keys, args=args)

    async def recent(self, prompt: str, limit: int = REPLAYS_KEPT) -> list[Result]:
        with unavailable_on_error():
            ids = [_text(i) for i in await self._client.lrange(self.ids_key(prompt), 0, limit - 1)]
            raws = await self._client.hmget(self.results_key(prompt), ids) if ids else []
        return [orjson.loads(raw) for raw in raws if raw]

    async def get(self, prompt: str, replay_id: str) -> Result | None:
        with unavailable_on_error():
            raw = await self._client.hget(self.results_key(prompt), replay_id)
        if not raw:
            return None
        result: Result = orjson.loads(raw)
        return result


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw
