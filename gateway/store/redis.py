"""The Redis store, shared by every replica: the only code that knows key names.

Writes are optimistic transactions on one prompt's keys (WATCH, read, check with the
same rules as the embedded store, MULTI/EXEC; again on a conflict). Each prompt's keys
carry its name as a `{hash tag}`, so they share one Cluster slot. After a write the
change counter (epoch) goes up and the prompt's name is published; replicas follow
both (see `watch`)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import orjson

from gateway.config.loader import RedisConfig
from gateway.errors import Conflict
from gateway.prompts.approval import ONE_APPROVAL, ApprovalRules, approve_once_more
from gateway.prompts.history import HistoryEntry, Kind, rollback_target, routing_entry
from gateway.prompts.versions import (
    PromptContent,
    PromptState,
    PromptVersion,
    Routing,
    check_routing,
)
from gateway.store.base import (
    HISTORY_LIMIT,
    RESTORED_BY,
    RESTORED_REASON,
    Loaded,
    OnChange,
    approved_entry,
    check_label,
    docs_entry,
    label_entry,
    new_version,
    not_found,
    not_found_label,
    pushed_entry,
    version_not_found,
)
from gateway.store.errors import StoreUnavailable
from gateway.store.prompt_records import decode_entry, decode_routing, decode_version, entry_json
from gateway.store.redis_connect import Closer, RedisClient, connect, unavailable_on_error
from gateway.store.redis_features import RedisFeatures
from gateway.store.redis_keys import Keys, dumps, text
from gateway.store.redis_watch import follow_changes
from gateway.store.redis_writer import MAX_ATTEMPTS, Writer, Writes


class RedisStore(RedisFeatures):
    kind = "redis"

    def __init__(
        self, client: RedisClient, cfg: RedisConfig, closers: list[Closer] | None = None
    ) -> None:
        self._client = client
        self._cfg = cfg
        self._closers = closers or []
        self.keys = Keys(cfg.prefix)
        self._writer = Writer(client, self.keys)

    @classmethod
    def from_config(cls, cfg: RedisConfig) -> RedisStore:
        client, closers = connect(cfg)
        return cls(client, cfg, closers)

    @property
    def client(self) -> RedisClient:
        return self._client

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
                if state.labels:
                    pipe.hset(keys.labels(name), mapping=dict(state.labels))
                if state.docs:
                    pipe.set(keys.docs(name), dumps(dict(state.docs)))
                if (routing := state.routing) is not None:
                    entry = routing_entry("restored", RESTORED_BY, None, routing, RESTORED_REASON)
                    self._routing_writes(name, routing, entry)(pipe)

            return True, writes

        with unavailable_on_error():
            await self._client.sadd(keys.prompts, name)  # named first, as in push_version
            watched = [keys.versions(name), keys.hashes(name), keys.routing(name)]
            watched += [keys.history(name), keys.labels(name)]
            return await self._writer.transact(name, watched, plan)

    async def _read_states(self, names: list[str]) -> tuple[dict[str, PromptState], bytes | None]:
        """The prompts, and the data set's id read after them."""
        pipe = self._client.pipeline(transaction=False)
        # Routing before versions: a version routing refers to is never removed and
        # never loses its approval, so the versions read after it always cover it.
        # Labels too: a label points only at versions that exist.
        for name in names:
            pipe.get(self.keys.routing(name))
            pipe.hgetall(self.keys.labels(name))
            pipe.hgetall(self.keys.versions(name))
            pipe.get(self.keys.docs(name))
        pipe.get(self.keys.dataset)
        *replies, last = await pipe.execute()
        states = {}
        for i, name in enumerate(names):
            raw_routing, raw_labels, raw_versions, raw_docs = replies[4 * i : 4 * i + 4]
            if not raw_versions:  # named before its first version was written
                continue
            versions = {text(k): decode_version(v) for k, v in raw_versions.items()}
            routing = decode_routing(raw_routing) if raw_routing else None
            labels = {text(k): text(v) for k, v in (raw_labels or {}).items()}
            docs = orjson.loads(raw_docs) if raw_docs else {}
            states[name] = PromptState(name, versions, routing, labels, docs)
        return states, last

    async def get_prompt(self, name: str) -> PromptState | None:
        with unavailable_on_error():
            states, _ = await self._read_states([name])
            return states.get(name)

    async def history(self, name: str, limit: int = 100) -> list[HistoryEntry]:
        with unavailable_on_error():
            await self._require_prompt(name)
            if limit <= 0:
                return []
            raw = await self._client.lrange(self.keys.history(name), 0, limit - 1)
        return [decode_entry(item) for item in raw]

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
        self, name: str, content: PromptContent, by: str, note: str = ""
    ) -> tuple[PromptVersion, bool]:
        keys, digest = self.keys, content.hash

        async def plan() -> tuple[tuple[PromptVersion, bool], Writes | None]:
            existing = await self._client.hget(keys.hashes(name), digest)
            if existing is not None:
                raw = await self._client.hget(keys.versions(name), existing)
                if raw is not None:
                    return (decode_version(raw), False), None
            count = await self._client.hlen(keys.versions(name))
            created = new_version(count + 1, content, by, note)

            def writes(pipe: Any) -> None:
                pipe.hset(keys.versions(name), created.id, dumps(created.to_json()))
                pipe.hset(keys.hashes(name), digest, created.id)
                self._entry_writes(name, pushed_entry(created))(pipe)

            return (created, True), writes

        with unavailable_on_error():
            # Named first: a name without versions is skipped by readers, a version
            # without its name would be invisible.
            await self._client.sadd(keys.prompts, name)
            watched = [keys.versions(name), keys.hashes(name)]
            return await self._writer.transact(name, watched, plan)

    async def approve(
        self, name: str, version: str, by: str, note: str, rules: ApprovalRules = ONE_APPROVAL
    ) -> PromptVersion:
        key = self.keys.versions(name)

        async def plan() -> tuple[PromptVersion, Writes | None]:
            await self._require_prompt(name)
            raw = await self._client.hget(key, version)
            if raw is None:
                raise version_not_found(name, version)
            current = decode_version(raw)
            approved = approve_once_more(current, by, note, rules)
            if approved is None:
                return current, None

            def writes(pipe: Any) -> None:
                pipe.hset(key, version, dumps(approved.to_json()))
                self._entry_writes(name, approved_entry(approved, by, note))(pipe)

            return approved, writes

        with unavailable_on_error():
            return await self._writer.transact(name, [key], plan)

    async def set_routing(
        self, name: str, routing: Routing, by: str, reason: str, kind: Kind = "routing"
    ) -> HistoryEntry:
        keys = self.keys

        async def plan() -> tuple[HistoryEntry, Writes | None]:
            check_routing(routing, await self._versions(name))
            entry = routing_entry(kind, by, await self._routing(name), routing, reason)
            return entry, self._routing_writes(name, routing, entry)

        with unavailable_on_error():
            watched = [keys.versions(name), keys.routing(name), keys.history(name)]
            return await self._writer.transact(name, watched, plan)

    async def rollback(
        self, name: str, by: str, to: str | None = None, reason: str = ""
    ) -> HistoryEntry:
        keys = self.keys

        async def plan() -> tuple[HistoryEntry, Writes | None]:
            versions = await self._versions(name)
            raw = await self._client.lrange(keys.history(name), 0, -1)
            restored, why, detail = rollback_target(name, [decode_entry(r) for r in raw], to)
            why = f"{reason}: {why}" if reason else why
            check_routing(restored, versions)
            entry = routing_entry("rollback", by, await self._routing(name), restored, why, detail)
            return entry, self._routing_writes(name, restored, entry)

        with unavailable_on_error():
            watched = [keys.versions(name), keys.routing(name), keys.history(name)]
            return await self._writer.transact(name, watched, plan)

    async def set_label(
        self, name: str, label: str, version: str | None, by: str, allow_draft: bool
    ) -> HistoryEntry:
        keys = self.keys

        async def plan() -> tuple[HistoryEntry, Writes | None]:
            versions = await self._versions(name)
            raw = await self._client.hget(keys.labels(name), label)
            before = text(raw) if raw is not None else None
            if version is None and before is None:
                raise not_found_label(name, label)
            if version is not None:
                check_label(name, label, versions, version, allow_draft)
            entry = label_entry(label, before, version, by)

            def writes(pipe: Any) -> None:
                if version is None:
                    pipe.hdel(keys.labels(name), label)
                else:
                    pipe.hset(keys.labels(name), label, version)
                self._entry_writes(name, entry)(pipe)

            return entry, writes

        with unavailable_on_error():
            return await self._writer.transact(name, [keys.versions(name), keys.labels(name)], plan)

    async def set_docs(self, name: str, docs: Mapping[str, str], by: str) -> HistoryEntry | None:
        key = self.keys.docs(name)

        async def plan() -> tuple[HistoryEntry | None, Writes | None]:
            await self._require_prompt(name)
            raw = await self._client.get(key)
            before = orjson.loads(raw) if raw else {}
            if all(before.get(k, "") == v for k, v in docs.items()):
                return None, None
            entry = docs_entry(before, docs, by)

            def writes(pipe: Any) -> None:
                pipe.set(key, dumps({**before, **docs}))
                self._entry_writes(name, entry)(pipe)

            return entry, writes

        with unavailable_on_error():
            return await self._writer.transact(name, [key], plan)

    async def add_history(self, name: str, entry: HistoryEntry) -> None:
        with unavailable_on_error():
            await self._require_prompt(name)
            pipe = self._client.pipeline(transaction=True)
            self._entry_writes(name, entry)(pipe)
            await pipe.execute()

    def _entry_writes(self, name: str, entry: HistoryEntry) -> Writes:
        def writes(pipe: Any) -> None:
            pipe.lpush(self.keys.history(name), dumps(entry_json(entry)))
            pipe.ltrim(self.keys.history(name), 0, HISTORY_LIMIT - 1)

        return writes

    def _routing_writes(self, name: str, routing: Routing, entry: HistoryEntry) -> Writes:
        def writes(pipe: Any) -> None:
            pipe.set(self.keys.routing(name), dumps(routing.to_json()))
            self._entry_writes(name, entry)(pipe)

        return writes

    async def watch(self, on_change: OnChange) -> None:
        """Call `on_change` on connecting (a full reload), on each pub/sub notice, when
        the epoch moved (a notice can be lost on reconnect), and every resync
        interval. A Redis error ends it: the caller calls it again after a pause."""
        await follow_changes(self._client, self.keys, self._cfg, on_change)

    async def ping(self) -> bool:
        try:
            return bool(await self._client.ping())
        except Exception:  # any failure means "not reachable"
            return False

    async def close(self) -> None:
        await self._client.aclose()
        for closer in self._closers:
            await closer()
