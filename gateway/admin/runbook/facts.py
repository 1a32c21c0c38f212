"""Everything a runbook is generated from, read once by the handler: the prompt's
state, the config in force, its history, its latest rollout and the shipped dashboard
and alert rules. The sections are pure functions of this."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gateway.admin.runbook.watch import Watch
from gateway.config.loader import GatewayConfig
from gateway.config.prompts import resolved_targets
from gateway.prompts.history import ROUTING_KINDS, HistoryEntry
from gateway.prompts.versions import PromptState, PromptVersion, TargetPin, version_number
from gateway.store.rollouts import Rollout


@dataclass(frozen=True)
class RunbookFacts:
    state: PromptState
    config: GatewayConfig
    history: Sequence[HistoryEntry]  # newest first
    rollout: Rollout | None
    watch: Watch
    admin_url: str  # where the admin API answered, for the commands
    generated_at: float

    @property
    def name(self) -> str:
        return self.state.name

    @property
    def live_weights(self) -> dict[str, int]:
        routing = self.state.routing
        return {v: w for v, w in routing.weights.items() if w > 0} if routing else {}

    @property
    def shadowed(self) -> tuple[str, ...]:
        routing = self.state.routing
        return routing.shadow.versions if routing and routing.shadow.sample_rate > 0 else ()

    def in_use(self) -> list[PromptVersion]:
        """The versions that can serve a request: live weight, a label, a shadow, or
        the canary of a rollout in progress."""
        ids = {*self.live_weights, *self.state.labels.values(), *self.shadowed}
        if self.rollout is not None and self.rollout.active:
            ids.add(self.rollout.version)
        known = [v for v in ids if v in self.state.versions]
        return [self.state.versions[v] for v in sorted(known, key=version_number)]

    def approval_relevant(self) -> list[PromptVersion]:
        """Live and labelled versions: what was approved to serve."""
        ids = {*self.live_weights, *self.state.labels.values()}
        known = [v for v in ids if v in self.state.versions]
        return [self.state.versions[v] for v in sorted(known, key=version_number)]

    def targets_of(self, version: PromptVersion) -> tuple[TargetPin, ...]:
        return resolved_targets(version.content, self.config.models)

    def routes(self) -> list[str]:
        """The route aliases of the versions in use, in version order."""
        seen: list[str] = []
        for version in self.in_use():
            if version.content.model not in seen:
                seen.append(version.content.model)
        return seen

    def routing_entries(self) -> list[HistoryEntry]:
        return [e for e in self.history if e.kind in ROUTING_KINDS and e.routing_after is not None]

    def latest(self, kind: str, count: int) -> list[HistoryEntry]:
        return [e for e in self.history if e.kind == kind][:count]
