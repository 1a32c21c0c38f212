"""The review queue in Redis, on the store's client and prefix, shared by every replica.

- `{prefix}{reviews}:items`: HASH, item id -> the item as JSON.
- `{prefix}{reviews}:order`: ZSET, item id by `created_at` (newest read first); trimmed
  to `ITEMS_KEPT`, the trimmed items dropped from the hash.
- `{prefix}{reviews}:pending`: ZSET, pending item id by `expires_at` (+inf: no timeout).

A decision is one script that writes only if the stored item is still pending, so two
replicas sweeping the same timeouts (or two reviewers) decide an item once.
`{reviews}` is a Cluster hash tag: the three keys share a slot."""

from __future__ import annotations

from typing import Any

from gateway.store.redis_connect import RedisClient, unavailable_on_error
from gateway.store.reviews import (
    ReviewItem,
    already_decided,
    decode_item,
    encode,
    matches,
    not_found,
)

ITEMS_KEPT = 20_000
_SCAN = 2_000  # newest items read for one list

# KEYS: items, order, pending. ARGV: id, item, created_at, expires_at (or inf), kept.
_ADD = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
local extra = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[5])
if extra > 0 then
  local old = redis.call('ZRANGE', KEYS[2], 0, extra - 1)
  for _, id in ipairs(old) do
    redis.call('HDEL', KEYS[1], id)
    redis.call('ZREM', KEYS[3], id)
  end
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, extra - 1)
end
return 1
"""
# KEYS: items, pending. ARGV: id, the decided item. Returns 1 when written, 0 when no
# such item, else the stored item (decided already).
_DECIDE = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
if cjson.decode(raw)['state'] ~= 'pending' then return raw end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
"""


class RedisReviews:
    def __init__(self, client: RedisClient, prefix: str, kept: int = ITEMS_KEPT) -> None:
        self._client = client
        self.kept = kept
        self.items_key = f"{prefix}{{reviews}}:items"
        self.order_key = f"{prefix}{{reviews}}:order"
        self.pending_key = f"{prefix}{{reviews}}:pending"
        self._add = client.register_script(_ADD)
        self._decide = client.register_script(_DECIDE)

    async def add(self, item: ReviewItem) -> None:
        expires = "inf" if item.expires_at is None else repr(item.expires_at)
        keys = [self.items_key, self.order_key, self.pending_key]
        with unavailable_on_error():
            await self._add(
                keys=keys, args=[item.id, encode(item), repr(item.created_at), expires, self.kept]
            )

    async def get(self, item_id: str) -> ReviewItem | None:
        with unavailable_on_error():
            raw = await self._client.hget(self.items_key, item_id)
        return decode_item(raw) if raw else None

    async def query(self, state: str | None, prompt: str | None, limit: int) -> list[ReviewItem]:
        with unavailable_on_error():
            ids: Any = await self._client.zrevrange(self.order_key, 0, _SCAN - 1)
            if not ids:
                return []
            raws = await self._client.hmget(self.items_key, ids)
        items = (decode_item(raw) for raw in raws if raw)
        return [i for i in items if matches(i, state, prompt)][:limit]

    async def decide(self, decided: ReviewItem) -> ReviewItem:
        with unavailable_on_error():
            written = await self._decide(
                keys=[self.items_key, self.pending_key], args=[decided.id, encode(decided)]
            )
        if written == 1:
            return decided
        if written == 0:
            raise not_found(decided.id)
        raise already_decided(decode_item(written))

    async def due(self, now: float) -> list[str]:
        with unavailable_on_error():
            ids = await self._client.zrangebyscore(self.pending_key, "-inf", repr(now))
        return [i.decode() if isinstance(i, bytes) else str(i) for i in ids]

    async def pending_count(self) -> int:
        with unavailable_on_error():
            count = await self._client.zcount(self.pending_key, "-inf", "+inf")
        return int(count)
