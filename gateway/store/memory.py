"""The embedded store: one process, in memory, seeded from the config file."""

from __future__ import annotations

import asyncio
import time

from gateway.prompts.versions import (
    PromptContent,
    PromptState,
    PromptVersion,
    Routing,
    RoutingChange,
    check_routing,
)
from gateway.store.base import (
    Loaded,
    OnChange,
    new_version,
    not_found,
    rollback_change,
    version_not_found,
)
from gateway.store.captures import CaptureLog, FileCaptureLog, MemoryCaptureLog, Settings
from gateway.store.records import MemoryRecords, Records
from gateway.store.rollouts import MemoryRolloutStore, RolloutStore
from gateway.store.version_counts import MemoryStats, StatsSink


class MemoryStore:
    kind = "embedded"

    def __init__(self) -> None:
        self._versions: dict[str, dict[str, PromptVersion]] = {}
        self._routing: dict[str, Routing] = {}
        self._history: dict[str, list[RoutingChange]] = {}
        self._lock = asyncio.Lock()
        self._records = MemoryRecords()
        self._rollouts = MemoryRolloutStore()
        self._stats = MemoryStats()

    async def load_all(self) -> dict[str, PromptState]:
        return {name: self._state(name) for name in self._versions}

    async def all_prompts(self) -> dict[str, PromptState]:
        return await self.load_all()

    async def load_marked(self) -> Loaded:
        return Loaded(await self.load_all(), self.kind)  # it lives and dies with the process

    async def mark_dataset(self) -> str:
        return self.kind

    async def restore_prompt(self, state: PromptState) -> bool:
        return False  # never lost: nothing to restore

    def _state(self, name: str) -> PromptState:
        return PromptState(name, dict(self._versions[name]), self._routing.get(name))

    async def get_prompt(self, name: str) -> PromptState | None:
        return self._state(name) if name in self._versions else None

    async def push_version(
        self, name: str, content: PromptContent, by: str
    ) -> tuple[PromptVersion, bool]:
        async with self._lock:
            versions = self._versions.setdefault(name, {})
            digest = content.hash
            for version in versions.values():
                if version.hash == digest:
                    return version, False
            created = new_version(len(versions) + 1, content, by)
            versions[created.id] = created
            return created, True

    async def approve(self, name: str, version: str, by: str, note: str) -> PromptVersion:
        async with self._lock:
            versions = self._versions.get(name)
            if versions is None:
                raise not_found(name)
            if version not in versions:
                raise version_not_found(name, version)
            if versions[version].status == "approved":
                return versions[version]
            approved = versions[version].approved(by, note)
            versions[version] = approved
            return approved

    async def set_routing(self, name: str, routing: Routing, by: str, reason: str) -> RoutingChange:
        async with self._lock:
            if name not in self._versions:
                raise not_found(name)
            check_routing(routing, self._versions[name])
            change = RoutingChange(
                at=time.time(), by=by, before=self._routing.get(name), after=routing, reason=reason
            )
            self._routing[name] = routing
            self._history.setdefault(name, []).insert(0, change)
            return change

    async def rollback(self, name: str, by: str) -> RoutingChange:
        async with self._lock:
            if name not in self._versions:
                raise not_found(name)
            history = self._history.get(name, [])
            restored, change = rollback_change(name, history, self._routing.get(name), by)
            self._routing[name] = restored
            history.insert(0, change)
            return change

    async def history(self, name: str, limit: int = 100) -> list[RoutingChange]:
        if name not in self._versions:
            raise not_found(name)
        return self._history.get(name, [])[: max(limit, 0)]

    async def watch(self, on_change: OnChange) -> None:
        return None

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None

    def capture_log(self, settings: Settings) -> CaptureLog:
        """The `capture.file` set at start (rotating JSON lines), else in memory."""
        path = settings().file
        return FileCaptureLog(path, settings) if path else MemoryCaptureLog(settings)

    def records(self) -> Records:
        return self._records

    def rollouts(self) -> RolloutStore:
        return self._rollouts

    def version_stats(self) -> StatsSink:
        return self._stats
