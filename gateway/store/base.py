"""The `Store` protocol both stores implement, and the rules they share. A store
hands each feature its back end, so no feature asks which store it runs on."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from gateway.config.loader import PromptConfig
from gateway.errors import Conflict, NotFound
from gateway.prompts.versions import (
    PromptContent,
    PromptState,
    PromptVersion,
    Routing,
    RoutingChange,
)
from gateway.store.captures import CaptureLog, Settings
from gateway.store.records import Records
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
        self, name: str, content: PromptContent, by: str
    ) -> tuple[PromptVersion, bool]:
        """The version for this content: the existing one (False) or a new draft (True)."""
        ...

    async def approve(self, name: str, version: str, by: str, note: str) -> PromptVersion: ...

    async def set_routing(self, name: str, routing: Routing, by: str, reason: str) -> RoutingChange:
        """Checked against the versions and written in one atomic step, with history."""
        ...

    async def rollback(self, name: str, by: str) -> RoutingChange: ...

    async def history(self, name: str, limit: int = 100) -> list[RoutingChange]: ...

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
        """The request index, feedback and suite results."""
        ...

    def rollouts(self) -> RolloutStore: ...

    def version_stats(self) -> StatsSink:
        """Per prompt-version request counts, for the rollout guards."""
        ...


def new_version(number: int, content: PromptContent, by: str) -> PromptVersion:
    return PromptVersion(
        id=f"v{number}", hash=content.hash, content=content, created_at=time.time(), created_by=by
    )


def not_found(name: str) -> NotFound:
    return NotFound(f"Unknown prompt '{name}'.", code="prompt_not_found")


def version_not_found(name: str, version: str) -> NotFound:
    return NotFound(f"Prompt '{name}' has no version '{version}'.", code="version_not_found")


def rollback_change(
    name: str, history: list[RoutingChange], current: Routing | None, by: str
) -> tuple[Routing, RoutingChange]:
    if not history or history[0].before is None or current is None:
        raise Conflict(
            f"Prompt '{name}' has no earlier routing to go back to.",
            code="nothing_to_roll_back",
        )
    restored = history[0].before
    return restored, RoutingChange(
        at=time.time(),
        by=by,
        before=current,
        after=restored,
        reason=f"rollback of the change at {history[0].at:.3f}",
    )


async def seed_prompts(store: Store, prompts: Mapping[str, PromptConfig]) -> None:
    """Push the config file's prompts. A prompt with no routing yet gets its version
    approved with weight 100; later changes in the file arrive as drafts."""
    for name, prompt in prompts.items():
        content = PromptContent(prompt.model, tuple(prompt.messages), dict(prompt.params))
        version, _ = await store.push_version(name, content, by="config")
        state = await store.get_prompt(name)
        if state is not None and state.routing is None:
            await store.approve(name, version.id, by="config", note="first version from config")
            await store.set_routing(
                name,
                Routing(weights={version.id: 100}),
                by="config",
                reason="first version from the config file",
            )
