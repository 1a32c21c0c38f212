"""Client keys in Redis, on the store's client and prefix.

- `{prefix}{keys}:all`: HASH, key name -> the record as JSON (gateway.store.keys).
  Written only by compare-and-set on the record's `revision` (a Lua script), which
  also counts the change.
- `{prefix}{keys}:epoch`: STRING, INCR on every write.
- `{prefix}{keys}:changes`: pub/sub channel, the changed key's name.

The `{keys}` hash tag puts the hash and its counter in one Cluster slot. Replicas
follow the channel and the counter, with a periodic full resync, exactly as they
follow prompts (gateway.store.redis_watch), on their own channel: a key change never
reloads the prompts."""

from __future__ import annotations

import contextlib

from gateway.config.loader import RedisConfig
from gateway.store.keys import KeyRecord, OnChange, decode_record, encode_record
from gateway.store.redis_connect import RedisClient, unavailable_on_error
from gateway.store.redis_keys import Keys, text
from gateway.store.redis_watch import follow_changes

_SAVE_IF_REVISION = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
local revision = -1
if current then revision = cjson.decode(current)['revision'] end
if revision ~= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('INCR', KEYS[2])
return 1
"""


class RedisKeyStore:
    kind = "redis"

    def __init__(self, client: RedisClient, cfg: RedisConfig) -> None:
        self._client = client
        self._cfg = cfg
        # The watch reads `epoch` and `changes` under this prefix.
        self.keys = Keys(f"{cfg.prefix}{{keys}}:")
        self.records_key = f"{self.keys.prefix}all"
        self._save = client.register_script(_SAVE_IF_REVISION)

    async def all(self) -> dict[str, KeyRecord]:
        with unavailable_on_error():
            raw = await self._client.hgetall(self.records_key)
        return {text(name): decode_record(value) for name, value in raw.items()}

    async def get(self, name: str) -> KeyRecord | None:
        with unavailable_on_error():
            raw = await self._client.hget(self.records_key, name)
        return decode_record(raw) if raw else None

    async def save(self, record: KeyRecord, expected_revision: int | None) -> bool:
        expected = -1 if expected_revision is None else expected_revision
        args: list[str | bytes | int] = [record.name, expected, encode_record(record)]
        with unavailable_on_error():
            saved = await self._save(keys=[self.records_key, self.keys.epoch], args=args)
        if saved:
            # Written and counted: a lost notice only delays the others to their next
            # poll of the counter, so a failure here is no failure of the write.
            with contextlib.suppress(Exception):
                await self._client.publish(self.keys.changes, record.name)
        return bool(saved)

    async def watch(self, on_change: OnChange) -> None:
        await follow_changes(self._client, self.keys, self._cfg, on_change)
