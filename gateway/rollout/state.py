"""Starting a gradual rollout: the admin body that asks for one, and the weights of
each step. The rollout as stored is gateway.store.rollouts."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, Literal

from gateway.errors import ApiError, Conflict, NotFound
from gateway.rollout.guards import parse_guards
from gateway.store.rollouts import Guards, Rollout, RolloutEvent

DEFAULT_STEPS = (5, 25, 50, 100)
DEFAULT_INTERVAL_S = 600.0


@dataclass(frozen=True)
class RolloutRequest:
    """The body of `POST /admin/prompts/{name}/rollout`."""

    version: str
    steps: tuple[int, ...] = DEFAULT_STEPS
    interval_s: float = DEFAULT_INTERVAL_S
    on_breach: Literal["rollback", "pause"] = "rollback"
    guards: Guards = field(default_factory=Guards)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RolloutRequest:
        unknown = set(data) - {"version", "steps", "interval_s", "on_breach", "guards", "by"}
        if unknown:
            raise ApiError(400, f"Unknown fields: {', '.join(sorted(unknown))}.")
        version = data.get("version")
        if not isinstance(version, str) or not version:
            raise ApiError(400, "'version' must be a version id such as v2.", param="version")
        steps = data.get("steps", list(DEFAULT_STEPS))
        if (
            not isinstance(steps, list)
            or not steps
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in steps)
            or any(not 0 < s <= 100 for s in steps)
            or any(a >= b for a, b in pairwise(steps))
            or steps[-1] != 100
        ):
            raise ApiError(
                400,
                "'steps' must be increasing percents from 1 to 100, ending at 100.",
                param="steps",
            )
        interval = data.get("interval_s", DEFAULT_INTERVAL_S)
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or interval <= 0:
            raise ApiError(400, "'interval_s' must be a number of seconds > 0.", param="interval_s")
        on_breach = data.get("on_breach", "rollback")
        if on_breach not in ("rollback", "pause"):
            raise ApiError(400, "'on_breach' must be 'rollback' or 'pause'.", param="on_breach")
        guards = parse_guards(data.get("guards"))
        return cls(version, tuple(steps), float(interval), on_breach, guards)

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
