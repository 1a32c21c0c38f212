"""The `Store` protocol both stores implement, and the rules they share. A store
hands each feature its back end, so no feature asks which store it runs on."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from gateway.config.loader import PromptConfig, RouteConfig
from gateway.config.prompts import resolved_targets
from gateway.errors import Conflict, NotFound
from gateway.prompts.approval import ONE_APPROVAL, ApprovalRules
from gateway.prompts.history import HistoryEntry, Kind
from gateway.prompts.versions import (
    PromptContent,
    PromptState,
    PromptVersion,
    Routing,
)
from gateway.store.annotations import Annotations
from gateway.store.captures import CaptureLog, Settings
from gateway.store.dataset_runs import DatasetRuns
from gateway.store.datasets import Datasets
from gateway.store.records import Records
from gateway.store.replays import ReplayStore
from gateway.store.responses import ResponseStore
from gateway.store.responses import Settings as ResponsesSettings
from gateway.store.reviews import ReviewStore
from gateway.store.rollouts import RolloutStore
from gateway.store.version_counts import StatsSink

OnChange = Callable[[], Awaitable[None]]
RESTORED_BY = "gateway"
RESTORED_REASON = "restored from a replica's snapshot: the store had lost its data"


@dataclass(frozen=True)
class Loaded:
    """Everything the store holds, with the id of its data set read around it: None
    when the id is gone, which only happens when the store has lost its data."""

    states: dict[str, PromptState]
    dataset: str | None


class Store(Protocol):
    kind: str  # "embedded" or "redis"

    async def load_all(self) -> dict[str, PromptState]: ...

    async def all_prompts(self) -> dict[str, PromptState]:
        """`load_all` for an admin answer: `StoreUnavailable` when unreachable."""
        ...

    async def load_marked(self) -> Loaded: ...

    async def mark_dataset(self) -> str:
        """Give the store's data set an id unless it has one (the first writer wins);
        the id it now has."""
        ...

    async def restore_prompt(self, state: PromptState) -> bool:
        """Write back a prompt the store has lost (its versions, their ids and routing),
        in one atomic step; False when the store already has the prompt."""
        ...

    async def get_prompt(self, name: str) -> PromptState | None: ...

    async def push_version(
        self, name: str, content: PromptContent, by: str, note: str = ""
    ) -> tuple[PromptVersion, bool]:
        """The version for this content: the existing one (False) or a new draft (True),
        with a `pushed` history entry."""
        ...

    async def approve(
        self, name: str, version: str, by: str, note: str, rules: ApprovalRules = ONE_APPROVAL
    ) -> PromptVersion:
        """One more approval, under `rules` (four eyes), with an `approved` entry."""
        ...

    async def set_routing(
        self, name: str, routing: Routing, by: str, reason: str, kind: Kind = "routing"
    ) -> HistoryEntry:
        """Checked against the versions and written in one atomic step, with history."""
        ...

    async def rollback(
        self, name: str, by: str, to: str | None = None, reason: str = ""
    ) -> HistoryEntry:
        """The routing before the last routing change, or right after entry `to`."""
        ...

    async def set_label(
        self, name: str, label: str, version: str | None, by: str, allow_draft: bool
    ) -> HistoryEntry:
        """Point `label` at `version` (None: remove it); an approved version unless
        `allow_draft`."""
        ...

    async def set_docs(self, name: str, docs: Mapping[str, str], by: str) -> HistoryEntry | None:
        """Change the prompt's documentation fields given; None when nothing changed."""
        ...

    async def add_history(self, name: str, entry: HistoryEntry) -> None:
        """An event that changes no state here (drift, a test run, a replay)."""
        ...

    async def history(self, name: str, limit: int = 100) -> list[HistoryEntry]: ...

    async def watch(self, on_change: OnChange) -> None:
        """Run until cancelled, calling `on_change` when another replica changed
        something (the embedded store has no other replica and returns at once)."""
        ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...

    # Each feature's back end, on the same store (one each, asked for by the wiring).

    def capture_log(self, settings: Settings) -> CaptureLog:
        """Captured requests; `settings` is read again as the config reloads."""
        ...

    def records(self) -> Records:
        """The request index: which version and target served a request."""
        ...

    def annotations(self) -> Annotations:
        """Feedback on requests, and labels on captured ones."""
        ...

    def rollouts(self) -> RolloutStore: ...

    def responses(self, settings: ResponsesSettings) -> ResponseStore:
        """Answers of `/v1/responses` kept for `previous_response_id`."""

    def replays(self) -> ReplayStore:
        """Replay results the gateway ran, per prompt."""
        ...

    def version_stats(self) -> StatsSink:
        """Per prompt-version request counts, for the rollout guards."""
        ...

    def datasets(self) -> Datasets:
        """Named, revisioned lists of test cases."""
        ...

    def dataset_runs(self) -> DatasetRuns:
        """The runs the gateway made of datasets on prompt versions."""
        ...

    def reviews(self) -> ReviewStore:
        """Flagged and held answers waiting for a reviewer."""
        ...


HISTORY_LIMIT = 1000  # entries kept per prompt


def new_version(number: int, content: PromptContent, by: str, note: str) -> PromptVersion:
    return PromptVersion(
        id=f"v{number}",
        hash=content.hash,
        content=content,
        created_at=time.time(),
        created_by=by,
        note=note,
    )


def pushed_entry(version: PromptVersion) -> HistoryEntry:
    return HistoryEntry(
        "pushed",
        version.created_at,
        version.created_by,
        version.note,
        version=version.id,
        after={"hash": version.hash, "model": version.content.model},
    )


def approved_entry(version: PromptVersion, by: str, note: str) -> HistoryEntry:
    return HistoryEntry(
        "approved",
        time.time(),
        by,
        note,
        before="draft",
        after=version.status,
        version=version.id,
        detail={
            "approvals": len(version.approvals),
            "targets": [t.label for t in version.approved_targets],
        },
    )


def label_entry(label: str, before: str | None, after: str | None, by: str) -> HistoryEntry:
    what = f"{label} → {after}" if after else f"{label} removed"
    return HistoryEntry(
        "label", time.time(), by, what, before, after, after or before or "", {"label": label}
    )


def check_label(
    name: str, label: str, versions: Mapping[str, PromptVersion], version: str, allow_draft: bool
) -> None:
    if version not in versions:
        raise version_not_found(name, version)
    if not allow_draft and versions[version].status != "approved":
        raise Conflict(
            f"Label '{label}' points only at approved versions; {version} is a draft.",
            code="draft_version",
        )


def docs_entry(before: Mapping[str, str], after: Mapping[str, str], by: str) -> HistoryEntry:
    changed = sorted(k for k in after if before.get(k, "") != after[k])
    return HistoryEntry(
        "docs",
        time.time(),
        by,
        "changed " + ", ".join(changed),
        {k: before.get(k, "") for k in changed},
        {k: after[k] for k in changed},
    )


def not_found_label(name: str, label: str) -> NotFound:
    return NotFound(f"Prompt '{name}' has no label '{label}'.", code="label_not_found")


def not_found(name: str) -> NotFound:
    return NotFound(f"Unknown prompt '{name}'.", code="prompt_not_found")


def version_not_found(name: str, version: str) -> NotFound:
    return NotFound(f"Prompt '{name}' has no version '{version}'.", code="version_not_found")


async def seed_prompts(
    store: Store, prompts: Mapping[str, PromptConfig], models: Mapping[str, RouteConfig]
) -> None:
    """Push the config file's prompts (their documentation too). A prompt with no
    routing yet gets its version approved with weight 100 (on the targets its route
    has in `models`); later changes in the file arrive as drafts."""
    for name, prompt in prompts.items():
        content = prompt.content()
        version, _ = await store.push_version(name, content, by="config", note=prompt.note)
        docs = {k: v for k, v in prompt.docs.to_json().items() if v}  # the API's stay
        if docs:
            await store.set_docs(name, docs, by="config")
        state = await store.get_prompt(name)
        if state is not None and state.routing is None:
            rules = ApprovalRules(targets=resolved_targets(content, models))
            await store.approve(name, version.id, "config", "first version from config", rules)
            await store.set_routing(
                name,
                Routing(weights={version.id: 100}),
                by="config",
                reason="first version from the config file",
            )
