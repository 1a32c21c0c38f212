"""Writes to the Redis store: optimistic transactions on one prompt's keys, and the
notice to the other replicas after each."""

from __future__ import annotations

import asyncio
import logging
import random
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.exceptions import RedisError, WatchError

from gateway.errors import Conflict
from gateway.store.redis_connect import RedisClient
from gateway.store.redis_keys import Keys

log = logging.getLogger("gateway.store")

MAX_ATTEMPTS = 50  # transaction attempts before a write gives up as a conflict
T = TypeVar("T")
Writes = Callable[[Any], None]  # queues the write commands on a MULTI pipeline
Plan = Callable[[], Awaitable[tuple[T, Writes | None]]]


class Writer:
    def __init__(self, client: RedisClient, keys: Keys) -> None:
        self._client, self.keys = client, keys
        # Held only while in use: a lock nobody waits on goes with its last user.
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    async def transact(self, name: str, watched: list[str], plan: Plan[T]) -> T:
        """Run `plan` (reads and checks) with `watched` under WATCH, then its writes in
        MULTI/EXEC; from the start if another writer got there first. The reads go
        through the client: any change after WATCH still fails the EXEC. One write per
        prompt at a time in this process: WATCH settles races between replicas, and a
        burst of writes never opens a connection each."""
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            for attempt in range(MAX_ATTEMPTS):
                async with self._client.pipeline(transaction=True) as pipe:
                    await pipe.watch(*watched)
                    result, writes = await plan()
                    if writes is None:
                        return result
                    pipe.multi()  # type: ignore[no-untyped-call]
                    writes(pipe)
                    try:
                        await pipe.execute()
                    except WatchError:
                        await asyncio.sleep(random.uniform(0, min(0.05, 0.001 * 2**attempt)))
                        continue
                await self.notify(name)
                return result
        raise Conflict(
            f"Prompt '{name}' is being changed by others right now; try again.",
            code="concurrent_change",
        )

    async def notify(self, name: str) -> None:
        """Tell the replicas. The write is done: a failure here only delays them
        until their next poll or resync."""
        try:
            await self._client.incr(self.keys.epoch)
            await self._client.publish(self.keys.changes, name)
        except (RedisError, OSError) as exc:
            log.warning("change notice for prompt %s not sent: %s", name, exc)

    # -- following changes ---------------------------------------------------------
