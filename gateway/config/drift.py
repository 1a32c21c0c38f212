"""Drift: an approved version that serves (live weight or a label) whose targets under
a config are no longer the ones it was approved on (SPEC §9, "what runs is what was
approved"). Pure: prompt states and routes in, findings out."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gateway.config.prompts import resolved_targets
from gateway.config.routes import RouteConfig
from gateway.prompts.versions import PromptState, PromptVersion, TargetPin


@dataclass(frozen=True)
class TargetCheck:
    """Where a serving approved version was approved and where a config sends it."""

    prompt: str
    version: str
    route: str  # the version's route alias
    pinned: bool  # its own `targets`: no route edit moves it
    approved: tuple[TargetPin, ...]
    now: tuple[TargetPin, ...]

    @property
    def drifted(self) -> bool:
        # Sequences, not sets: the order is the failover order.
        return self.now != self.approved

    @property
    def approved_labels(self) -> list[str]:
        return [t.label for t in self.approved]

    @property
    def now_labels(self) -> list[str]:
        return [t.label for t in self.now]

    def describe(self) -> str:
        """For errors and logs: which version, its route, approved and new targets."""
        via = "its pinned targets" if self.pinned else f"route {self.route!r}"
        return (
            f"prompt {self.prompt!r} {self.version} ({via}): approved on "
            f"{', '.join(self.approved_labels)}, now {', '.join(self.now_labels) or 'nothing'}"
        )


def serving(state: PromptState) -> set[str]:
    """Versions that answer requests: live weight, or a label pointing at them."""
    live = {v for v, w in state.routing.weights.items() if w > 0} if state.routing else set()
    return live | set(state.labels.values())


def watched(version: PromptVersion, serves: bool) -> bool:
    """Whether a version's targets are held to its approval. Versions approved before
    approvals recorded their targets (`approved_targets` empty) have nothing to compare
    with: they are never reported as drift. Drafts never drift: nothing was approved."""
    return serves and version.status == "approved" and bool(version.approved_targets)


def check_prompt(state: PromptState, models: Mapping[str, RouteConfig]) -> list[TargetCheck]:
    """Every watched version of one prompt, drifted or not, in version order."""
    serves = serving(state)
    checks = []
    for version in sorted(state.versions.values(), key=lambda v: v.number):
        if not watched(version, version.id in serves):
            continue
        content = version.content
        checks.append(
            TargetCheck(
                prompt=state.name,
                version=version.id,
                route=content.model,
                pinned=bool(content.targets),
                approved=version.approved_targets,
                now=resolved_targets(content, models),
            )
        )
    return checks


def check_states(
    states: Mapping[str, PromptState], models: Mapping[str, RouteConfig]
) -> list[TargetCheck]:
    """Every watched version of every prompt, by prompt name."""
    return [c for name in sorted(states) for c in check_prompt(states[name], models)]


def drifted(checks: Iterable[TargetCheck]) -> list[TargetCheck]:
    return [c for c in checks if c.drifted]


def new_drift(before: Iterable[TargetCheck], after: Iterable[TargetCheck]) -> list[TargetCheck]:
    """What a config change introduces: drift it causes or moves elsewhere. Drift the
    old config already had, unchanged, is not new (a reload that leaves it is no worse)."""
    known = {(c.prompt, c.version, c.now) for c in before if c.drifted}
    return [c for c in drifted(after) if (c.prompt, c.version, c.now) not in known]
