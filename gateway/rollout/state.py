"""Starting a gradual rollout: the admin body that asks for one, and the weights of
each step. The rollout as stored is gateway.store.rollouts."""

from __future__ import annotations

import time
from collections.abc import Mapping
from itertools import pairwise
from typing import Annotated, Literal

import msgspec

from gateway.decoding import Body
from gateway.errors import Conflict, Invalid, NotFound
from gateway.prompts.history import HistoryEntry
from gateway.store.rollouts import Guards, Rollout, RolloutEvent

DEFAULT_STEPS = (5, 25, 50, 100)
DEFAULT_INTERVAL_S = 600.0
Percent = Annotated[int, msgspec.Meta(gt=0, le=100)]


class RolloutRequest(Body, frozen=True, forbid_unknown_fields=True):
    """The body of `POST /admin/prompts/{name}/rollout`."""

    version: Annotated[str, msgspec.Meta(min_length=1)]
    steps: Annotated[tuple[Percent, ...], msgspec.Meta(min_length=1)] = DEFAULT_STEPS
    interval_s: Annotated[float, msgspec.Meta(gt=0)] = DEFAULT_INTERVAL_S
    on_breach: Literal["rollback", "pause"] = "rollback"
    guards: Guards = msgspec.field(default_factory=Guards)

    def __post_init__(self) -> None:
        if any(a >= b for a, b in pairwise(self.steps)) or self.steps[-1] != 100:
            raise Invalid(
                "'steps' must be increasing percents from 1 to 100, ending at 100.",
                param="steps",
            )

    def rollout(self, prompt: str, baseline: Mapping[str, int], by: str) -> Rollout:
        now = time.time()
        weights = step_weights(baseline, self.version, self.steps[0])
        first = RolloutEvent(
            now,
            "start",
            self.steps[0],
            by,
            f"rollout of {self.version} started at {self.steps[0]}% "
            f"(baseline {format_weights(baseline)})",
            weights,
        )
        return Rollout(
            prompt=prompt,
            version=self.version,
            steps=self.steps,
            interval_s=self.interval_s,
            on_breach=self.on_breach,
            guards=self.guards,
            baseline=dict(baseline),
            step_started_at=now,
            next_check_at=now + self.interval_s,
            weights=weights,
            started_at=now,
            started_by=by,
            events=(first,),
        )


def step_weights(baseline: Mapping[str, int], canary: str, percent: int) -> dict[str, int]:
    """The canary gets `percent`; the baseline versions share the rest in proportion to
    their weights at the start (largest remainder, so the sum is always 100)."""
    live = {v: w for v, w in baseline.items() if w > 0 and v != canary}
    rest = 100 - percent
    total = sum(live.values())
    if not live or total <= 0:
        return {canary: 100}
    exact = {v: rest * w / total for v, w in live.items()}
    weights = {v: int(x) for v, x in exact.items()}
    short = rest - sum(weights.values())
    by_remainder = sorted(live, key=lambda v: (-(exact[v] - weights[v]), v))
    for version in by_remainder[:short]:
        weights[version] += 1
    weights[canary] = percent
    return weights


def format_weights(weights: Mapping[str, int]) -> str:
    return " ".join(f"{v}={w}" for v, w in weights.items()) or "-"


def live(weights: Mapping[str, int]) -> dict[str, int]:
    """The weights that carry traffic (a zero weight and a missing one are the same)."""
    return {v: w for v, w in weights.items() if w > 0}


def already_running(prompt: str, version: str) -> Conflict:
    return Conflict(
        f"Prompt '{prompt}' already has a rollout in progress (of {version}): "
        "wait for it, or abort it first.",
        code="rollout_in_progress",
    )


def no_rollout(prompt: str) -> NotFound:
    return NotFound(f"Prompt '{prompt}' has no rollout.", code="rollout_not_found")


_NOTED = frozenset({"start", "pause", "resume", "complete"})


def history_entry(r: Rollout) -> HistoryEntry | None:
    """The prompt's history entry for the decision just made, if it moves no weights
    (those that do are routing entries of their own)."""
    event = r.events[-1] if r.events else None
    if event is None or event.event not in _NOTED:
        return None
    detail = {"event": event.event, "step": event.step}
    return HistoryEntry(
        "rollout", event.at, event.by, event.reason, version=r.version, detail=detail
    )


def not_in(r: Rollout, wanted: str) -> Conflict:
    return Conflict(
        f"The rollout of {r.version} on '{r.prompt}' is {r.state}, not {wanted}.",
        code="rollout_state",
    )


def routing_reason(r: Rollout) -> str:
    """The reason of the decision that asked for these weights (with its numbers)."""
    for event in reversed(r.events):
        if event.weights is not None:
            return f"rollout {r.version} ({event.event}): {event.reason}"[:2000]
    return f"rollout {r.version}"
