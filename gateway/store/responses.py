"""Answers of `POST /v1/responses` kept for follow-ups (`previous_response_id`): the
conversation's input items and the answer's output items, by response id, each for
`[responses] ttl_s`. In memory for the embedded store (at most `max_stored`, the
oldest go first); in Redis under the configured prefix:

- `{prefix}response:{response_id}`: STRING, the record's JSON, expiring after `ttl_s`.

A record is opaque here: the proxy decides what is in it."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import orjson

from gateway.config.responses import ResponsesConfig
from gateway.store.redis_connect import RedisClient, unavailable_on_error

Settings = Callable[[], ResponsesConfig]  # read again as the config reloads


class ResponseStore(Protocol):
    shared: bool  # seen by every replica (Redis), or this process only

    async def put(self, response_id: str, record: Mapping[str, Any]) -> None:
        """Kept for `ttl_s`; raises `StoreUnavailable` when the store cannot be reached."""
        ...

    async def get(self, response_id: str) -> dict[str, Any] | None:
        """None when unknown or expired; raises `StoreUnavailable`."""
        ...


class MemoryResponses:
    shared = False

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self._settings = settings
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()  # id → (until, JSON)

    def __len__(self) -> int:
        return len(self._entries)

    async def put(self, response_id: str, record: Mapping[str, Any]) -> None:
        cfg = self._settings()
        now = self._clock()
        entries = self._entries
        entries[response_id] = (now + cfg.ttl_s, orjson.dumps(record))
        entries.move_to_end(response_id)
        while len(entries) > cfg.max_stored:
            entries.popitem(last=False)
        # Entries go in the order they came, all with the same TTL: expired ones are first.
        while entries and next(iter(entries.values()))[0] < now:
            entries.popitem(last=False)

    async def get(self, response_id: str) -> dict[str, Any] | None:
        found = self._entries.get(response_id)
        if found is None or found[0] < self._clock():
            return None
        record: dict[str, Any] = orjson.loads(found[1])  # a copy: callers may change it
        return record


class RedisResponses:
    shared = True

    def __init__(self, client: RedisClient, prefix: str, settings: Settings) -> None:
        self._client = client
        self.prefix = prefix
        self._settings = settings

    def key(self, response_id: str) -> str:
        return f"{self.prefix}response:{response_id}"

    async def put(self, response_id: str, record: Mapping[str, Any]) -> None:
        ttl_ms = max(1, int(self._settings().ttl_s * 1000))
        with unavailable_on_error():
            await self._client.set(self.key(response_id), orjson.dumps(record), px=ttl_ms)

    async def get(self, response_id: str) -> dict[str, Any] | None:
        with unavailable_on_error():
            raw = await self._client.get(self.key(response_id))
        if not raw:
            return None
        record = orjson.loads(raw)
        return record if isinstance(record, dict) else None
