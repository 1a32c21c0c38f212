"""The embedded store: one process, in memory, seeded from the config file."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from gateway.prompts.approval import ONE_APPROVAL, ApprovalRules, approve_once_more
from gateway.prompts.history import HistoryEntry, Kind, rollback_target, routing_entry
from gateway.prompts.versions import (
    PromptContent,
    PromptState,
    PromptVersion,
    Routing,
    check_routing,
)
from gateway.store.annotations import Annotations, memory_annotations
from gateway.store.base import (
    HISTORY_LIMIT,
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
from gateway.store.captures import CaptureLog, FileCaptureLog, MemoryCaptureLog, Settings
from gateway.store.dataset_runs import DatasetRuns, MemoryDatasetRuns
from gateway.store.datasets import Datasets, MemoryDatasets
from gateway.store.records import MemoryRecords, Records
from gateway.store.replays import MemoryReplays, ReplayStore
from gateway.store.responses import MemoryResponses, ResponseStore
from gateway.store.responses import Settings as ResponsesSettings
from gateway.store.reviews import MemoryReviews, ReviewStore
from gateway.store.rollouts import MemoryRolloutStore, RolloutStore
from gateway.store.version_counts import MemoryStats, StatsSink


class MemoryStore:
    kind = "embedded"

    def __init__(self) -> None:
        self._versions: dict[str, dict[str, PromptVersion]] = {}
        self._routing: dict[str, Routing] = {}
        self._labels: dict[str, dict[str, str]] = {}
        self._docs: dict[str, dict[str, str]] = {}
        self._history: dict[str, list[HistoryEntry]] = {}
        self._lock = asyncio.Lock()
        self._records = MemoryRecords()
        self._annotations = memory_annotations()
        self._rollouts = MemoryRolloutStore()
        self._replays = MemoryReplays()
        self._stats = MemoryStats()
        self._datasets = MemoryDatasets()
        self._dataset_runs = MemoryDatasetRuns()
        self._reviews = MemoryReviews()

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
        return PromptState(
            name,
            dict(self._versions[name]),
            self._routing.get(name),
            dict(self._labels.get(name, {})),
            dict(self._docs.get(name, {})),
        )

    def _require(self, name: str) -> dict[str, PromptVersion]:
        versions = self._versions.get(name)
        if versions is None:
            raise not_found(name)
        return versions

    def _add(self, name: str, entry: HistoryEntry) -> None:
        history = self._history.setdefault(name, [])
        history.insert(0, entry)
        del history[HISTORY_LIMIT:]

    async def get_prompt(self, name: str) -> PromptState | None:
        return self._state(name) if name in self._versions else None

    async def push_version(
        self, name: str, content: PromptContent, by: str, note: str = ""
    ) -> tuple[PromptVersion, bool]:
        async with self._lock:
            versions = self._versions.setdefault(name, {})
            digest = content.hash
            for version in versions.values():
                if version.hash == digest:
                    return version, False
            created = new_version(len(versions) + 1, content, by, note)
            versions[created.id] = created
            self._add(name, pushed_entry(created))
            return created, True

    async def approve(
        self, name: str, version: str, by: str, note: str, rules: ApprovalRules = ONE_APPROVAL
    ) -> PromptVersion:
        async with self._lock:
            versions = self._require(name)
            if version not in versions:
                raise version_not_found(name, version)
            approved = approve_once_more(versions[version], by, note, rules)
            if approved is None:
                return versions[version]
            versions[version] = approved
            self._add(name, approved_entry(approved, by, note))
            return approved

    async def set_routing(
        self, name: str, routing: Routing, by: str, reason: str, kind: Kind = "routing"
    ) -> HistoryEntry:
        async with self._lock:
            check_routing(routing, self._require(name))
            entry = routing_entry(kind, by, self._routing.get(name), routing, reason)
            self._routing[name] = routing
            self._add(name, entry)
            return entry

    async def rollback(
        self, name: str, by: str, to: str | None = None, reason: str = ""
    ) -> HistoryEntry:
        async with self._lock:
            versions = self._require(name)
            restored, why, detail = rollback_target(name, self._history.get(name, []), to)
            why = f"{reason}: {why}" if reason else why
            check_routing(restored, versions)
            entry = routing_entry("rollback", by, self._routing.get(name), restored, why, detail)
            self._routing[name] = restored
            self._add(name, entry)
            return entry

    async def set_label(
        self, name: str, label: str, version: str | None, by: str, allow_draft: bool
    ) -> HistoryEntry:
        async with self._lock:
            versions = self._require(name)
            labels = self._labels.setdefault(name, {})
            before = labels.get(label)
            if version is None:
                if before is None:
                    raise not_found_label(name, label)
                del labels[label]
            else:
                check_label(name, label, versions, version, allow_draft)
                labels[label] = version
            entry = label_entry(label, before, version, by)
            self._add(name, entry)
            return entry

    async def set_docs(self, name: str, docs: Mapping[str, str], by: str) -> HistoryEntry | None:
        async with self._lock:
            self._require(name)
            before = self._docs.setdefault(name, {})
            if all(before.get(k, "") == v for k, v in docs.items()):
                return None
            entry = docs_entry(before, docs, by)
            self._docs[name] = {**before, **docs}
            self._add(name, entry)
            return entry

    async def add_history(self, name: str, entry: HistoryEntry) -> None:
        async with self._lock:
            self._require(name)
            self._add(name, entry)

    async def history(self, name: str, limit: int = 100) -> list[HistoryEntry]:
        self._require(name)
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

    def annotations(self) -> Annotations:
        return self._annotations

    def responses(self, settings: ResponsesSettings) -> ResponseStore:
        return MemoryResponses(settings)

    def rollouts(self) -> RolloutStore:
        return self._rollouts

    def replays(self) -> ReplayStore:
        return self._replays

    def version_stats(self) -> StatsSink:
        return self._stats

    def datasets(self) -> Datasets:
        return self._datasets

    def dataset_runs(self) -> DatasetRuns:
        return self._dataset_runs

    def reviews(self) -> ReviewStore:
        return self._reviews
