"""The Redis store, shared by every replica: the only code that knows key names.

Writes are optimistic transactions on one prompt's keys (WATCH, read, check with the
same rules as the embedded store, MULTI/EXEC; again on a conflict). Each prompt's keys
carry its name as a `{hash tag}`, so they share one Cluster slot. After a write the
change counter (epoch) goes up and the prompt's name is published; replicas follow
both (see `watch`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.asyncio.client import PubSub
from redis.exceptions import RedisError, WatchError

from gateway.config.loader import RedisConfig
from gateway.errors import Conflict
from gateway.prompts.versions import (
    PromptContent,
    PromptState,
    PromptVersion,
    Routing,
    RoutingChange,
    check_routing,
)
from gateway.store.base import (
    RESTORED_BY,
    RESTORED_REASON,
    Loaded,
    OnChange,
    new_version,
    not_found,
    rollback_change,
    version_not_found,
)
from gateway.store.captures import CaptureLog, RedisCaptureLog, Settings
from gateway.store.errors import StoreUnavailable
from gateway.store.prompt_records import decode_change, decode_routing, decode_version
from gateway.store.records import Records, RedisRecords
from gateway.store.redis_connect import Closer, RedisClient, connect, unavailable_on_error
from gateway.store.redis_keys import Keys, dumps, text
from gateway.store.rollout_redis import RedisRolloutStore, RedisVersionStats
from gateway.store.rollouts import RolloutStore
from gateway.store.version_counts import StatsSink

log = logging.getLogger("gateway.store")

HISTORY_LIMIT = 1000  # routing changes kept per prompt
MAX_ATTEMPTS = 50  # transaction attempts before a write gives up as a conflict
T = TypeVar("T")
Writes = Callable[[Any], None]  # queues the write commands on a MULTI pipeline
Plan = Callable[[], Awaitable[tuple[T, Writes | None]]]


def _raise_if_cancelled() -> None:
    """redis-py's reads with a timeout can swallow a cancellation that lands as the
    timeout expires (seen with pub/sub on Python 3.11): honour it here instead of
    polling on forever."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class RedisStore:
    kind = "redis"

    def __init__(
        self, client: RedisClient, cfg: RedisConfig, closers: list[Closer] | None = None
    ) -> None:
        self._client = client
        self._cfg = cfg
        self._closers = closers or []
        self.keys = Keys(cfg.prefix)
        # Held only while in use: a lock nobody waits on goes with its last user.
        self._write_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    @classmethod
    def from_config(cls, cfg: RedisConfig) -> RedisStore:
        client, closers = connect(cfg)
        return cls(client, cfg, closers)

    @property
    def client(self) -> RedisClient:
        return self._client

    # -- each feature's back end, on this client and prefix ------------------------

    def capture_log(self, settings: Settings) -> CaptureLog:
        return RedisCaptureLog(self._client, self.keys.prefix, settings)

    def records(self) -> Records:
        return RedisRecords(self._client, self.keys.prefix)

    def rollouts(self) -> RolloutStore:
        return RedisRolloutStore(self._client, self.keys.prefix)

    def version_stats(self) -> StatsSink:
        return RedisVersionStats(self._client, self.keys.prefix)

    # -- reads ---------------------------------------------------------------------

    async def load_all(self) -> dict[str, PromptState]:
        """Raises Redis's own errors: the holder keeps its last snapshot."""
        return (await self.load_marked()).states

    async def all_prompts(self) -> dict[str, PromptState]:
        with unavailable_on_error():
            return await self.load_all()

    async def load_marked(self) -> Loaded:
        """Everything, in two round trips, between two reads of the data set's id: the
        same id both times means no loss in between (a restore writes a new one)."""
        for _ in range(MAX_ATTEMPTS):
            pipe = self._client.pipeline(transaction=False)
            pipe.get(self.keys.dataset)
            pipe.smembers(self.keys.prompts)
            before, raw_names = await pipe.execute()
            states, after = await self._read_states(sorted(text(n) for n in raw_names))
            if before is None or after is None:
                return Loaded(states, None)
            if before == after:
                return Loaded(states, text(after))
        raise Conflict("The store's data set changed on every read.", code="concurrent_change")

    async def mark_dataset(self) -> str:
        with unavailable_on_error():
            await self._client.set(self.keys.dataset, uuid.uuid4().hex, nx=True)
            current = await self._client.get(self.keys.dataset)
        if current is None:  # lost again at once: the next refresh notices
            raise StoreUnavailable("the store lost its data while being marked")
        return text(current)

    async def restore_prompt(self, state: PromptState) -> bool:
        keys, name = self.keys, state.name

        async def plan() -> tuple[bool, Writes | None]:
            if not state.versions or await self._client.exists(keys.versions(name)):
                return False, None  # written since the loss: the first writer won

            def writes(pipe: Any) -> None:
                versions = state.versions.values()
                pipe.hset(keys.versions(name), mapping={v.id: dumps(v.to_json()) for v in versions})
                pipe.hset(keys.hashes(name), mapping={v.hash: v.id for v in versions})
                if state.routing is not None:
                    change = RoutingChange(
                        time.time(), RESTORED_BY, None, state.routing, RESTORED_REASON
                    )
                    self._change_writes(name, change)(pipe)

            return True, writes

        with unavailable_on_error():
            await self._client.sadd(keys.prompts, name)  # named first, as in push_version
            watched = [keys.versions(name), keys.hashes(name), keys.routing(name)]
            return await self._transact(name, [*watched, keys.history(name)], plan)

    async def _read_states(self, names: list[str]) -> tuple[dict[str, PromptState], bytes | None]:
        """The prompts, and the data set's id read after them."""
        pipe = self._client.pipeline(transaction=False)
        # Routing before versions: a version routing refers to is never removed and
        # never loses its approval, so the versions read after it always cover it.
        for name in names:
            pipe.get(self.keys.routing(name))
            pipe.hgetall(self.keys.versions(name))
        pipe.get(self.keys.dataset)
        *replies, last = await pipe.execute()
        states = {}
        for i, name in enumerate(names):
            raw_routing, raw_versions = replies[2 * i], replies[2 * i + 1]
            if not raw_versions:  # named before its first version was written
                continue
            versions = {text(k): decode_version(v) for k, v in raw_versions.items()}
            routing = decode_routing(raw_routing) if raw_routing else None
            states[name] = PromptState(name, versions, routing)
        return states, last

    async def get_prompt(self, name: str) -> PromptState | None:
        with unavailable_on_error():
            states, _ = await self._read_states([name])
            return states.get(name)

    async def history(self, name: str, limit: int = 100) -> list[RoutingChange]:
        with unavailable_on_error():
            await self._require_prompt(name)
            if limit <= 0:
                return []
            raw = await self._client.lrange(self.keys.history(name), 0, limit - 1)
        return [decode_change(item) for item in raw]

    async def _require_prompt(self, name: str) -> None:
        if not await self._client.exists(self.keys.versions(name)):
            raise not_found(name)

    async def _versions(self, name: str) -> dict[str, PromptVersion]:
        raw = await self._client.hgetall(self.keys.versions(name))
        if not raw:
            raise not_found(name)
        return {text(k): decode_version(v) for k, v in raw.items()}

    async def _routing(self, name: str) -> Routing | None:
        raw = await self._client.get(self.keys.routing(name))
        return decode_routing(raw) if raw else None

    # -- writes --------------------------------------------------------------------

    async def push_version(
        self, name: str, content: PromptContent, by: str
    ) -> tuple[PromptVersion, bool]:
        keys, digest = self.keys, content.hash

        async def plan() -> tuple[tuple[PromptVersion, bool], Writes | None]:
            existing = await self._client.hget(keys.hashes(name), digest)
            if existing is not None:
                raw = await self._client.hget(keys.versions(name), existing)
                if raw is not None:
                    return (decode_version(raw), False), None
            count = await self._client.hlen(keys.versions(name))
            created = new_version(count + 1, content, by)

            def writes(pipe: Any) -> None:
                pipe.hset(keys.versions(name), created.id, dumps(created.to_json()))
                pipe.hset(keys.hashes(name), digest, created.id)

            return (created, True), writes

        with unavailable_on_error():
            # Named first: a name without versions is skipped by readers, a version
            # without its name would be invisible.
            await self._client.sadd(keys.prompts, name)
            return await self._transact(name, [keys.versions(name), keys.hashes(name)], plan)

    async def approve(self, name: str, version: str, by: str, note: str) -> PromptVersion:
        key = self.keys.versions(name)

        async def plan() -> tuple[PromptVersion, Writes | None]:
            await self._require_prompt(name)
            raw = await self._client.hget(key, version)
            if raw is None:
                raise version_not_found(name, version)
            current = decode_version(raw)
            if current.status == "approved":
                return current, None
            approved = current.approved(by, note)
            return approved, lambda pipe: pipe.hset(key, version, dumps(approved.to_json()))

        with unavailable_on_error():
            return await self._transact(name, [key], plan)

    async def set_routing(self, name: str, routing: Routing, by: str, reason: str) -> RoutingChange:
        keys = self.keys

        async def plan() -> tuple[RoutingChange, Writes | None]:
            check_routing(routing, await self._versions(name))
            before = await self._routing(name)
            change = RoutingChange(
                at=time.time(), by=by, before=before, after=routing, reason=reason
            )
            return change, self._change_writes(name, change)

        with unavailable_on_error():
            watched = [keys.versions(name), keys.routing(name), keys.history(name)]
            return await self._transact(name, watched, plan)

    async def rollback(self, name: str, by: str) -> RoutingChange:
        keys = self.keys

        async def plan() -> tuple[RoutingChange, Writes | None]:
            await self._require_prompt(name)
            last = await self._client.lindex(keys.history(name), 0)
            history = [decode_change(last)] if last else []
            _, change = rollback_change(name, history, await self._routing(name), by)
            return change, self._change_writes(name, change)

        with unavailable_on_error():
            return await self._transact(name, [keys.routing(name), keys.history(name)], plan)

    def _change_writes(self, name: str, change: RoutingChange) -> Writes:
        def writes(pipe: Any) -> None:
            pipe.set(self.keys.routing(name), dumps(change.after.to_json()))
            pipe.lpush(self.keys.history(name), dumps(change.to_json()))
            pipe.ltrim(self.keys.history(name), 0, HISTORY_LIMIT - 1)

        return writes

    async def _transact(self, name: str, watched: list[str], plan: Plan[T]) -> T:
        """Run `plan` (reads and checks) with `watched` under WATCH, then its writes in
        MULTI/EXEC; from the start if another writer got there first. The reads go
        through the client: any change after WATCH still fails the EXEC. One write per
        prompt at a time in this process: WATCH settles races between replicas, and a
        burst of writes never opens a connection each."""
        lock = self._write_locks.setdefault(name, asyncio.Lock())
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
                await self._notify(name)
                return result
        raise Conflict(
            f"Prompt '{name}' is being changed by others right now; try again.",
            code="concurrent_change",
        )

    async def _notify(self, name: str) -> None:
        """Tell the replicas. The write is done: a failure here only delays them
        until their next poll or resync."""
        try:
            await self._client.incr(self.keys.epoch)
            await self._client.publish(self.keys.changes, name)
        except (RedisError, OSError) as exc:
            log.warning("change notice for prompt %s not sent: %s", name, exc)

    # -- following changes ---------------------------------------------------------

    async def watch(self, on_change: OnChange) -> None:
        """Call `on_change` on connecting (a full reload), on each pub/sub notice, when
        the epoch moved (a notice can be lost on reconnect), and every resync
        interval. A Redis error ends it: the caller calls it again after a pause."""
        loop = asyncio.get_running_loop()
        pubsub = None if self._cfg.cluster else self._client.pubsub()
        try:
            if pubsub is not None:
                await pubsub.subscribe(self.keys.changes)
            epoch = await self._client.get(self.keys.epoch)
            await on_change()
            synced_at = loop.time()
            while True:
                noticed = await self._next_notice(pubsub)
                _raise_if_cancelled()
                current = await self._client.get(self.keys.epoch)
                due = loop.time() - synced_at >= self._cfg.resync_interval_s
                if noticed or current != epoch or due:
                    epoch, synced_at = current, loop.time()
                    await on_change()
        finally:
            if pubsub is not None:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _next_notice(self, pubsub: PubSub | None) -> bool:
        """Wait up to one poll interval for notices; True if any came."""
        wait = self._cfg.poll_interval_s
        if pubsub is None:
            await asyncio.sleep(wait)
            return False
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=wait)
        if message is None:
            return False
        while await pubsub.get_message(ignore_subscribe_messages=True, timeout=0):
            pass  # one reload covers every notice already queued
        return True

    async def ping(self) -> bool:
        try:
            return bool(await self._client.ping())
        except Exception:  # any failure means "not reachable"
            return False

    async def close(self) -> None:
        await self._client.aclose()
        for closer in self._closers:
            await closer()
