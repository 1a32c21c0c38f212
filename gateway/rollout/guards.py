"""Canary analysis as a pure function: what the canary and the baseline did over a
step's window in, a decision (promote, hold or breach) with the numbers behind it out.

Each guard compares the canary with the baseline once both have `min_requests`:
error ratio and negative-feedback ratio by absolute increase, p95 latency, p95 TTFT
and cost per request by ratio. A guard with nothing to compare (no streamed requests,
no prices, too little feedback) is skipped and says why."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from gateway.store.rollouts import Guards
from gateway.store.version_counts import VersionCounts, quantile

Decision = Literal["promote", "hold", "breach"]


@dataclass(frozen=True)
class Side:
    """What one side (canary or baseline) did in the window."""

    counts: VersionCounts
    negative_feedback: int = 0
    feedback: int = 0

    def summary(self) -> dict[str, Any]:
        c = self.counts
        p95 = quantile(c.latency, 0.95)
        ttft = quantile(c.ttft, 0.95)
        return {
            "requests": c.requests,
            "errors": c.errors,
            "error_rate": _round(c.errors / c.requests) if c.requests else None,
            "p95_latency_s": _round(p95),
            "p95_ttft_s": _round(ttft),
            "streams": sum(c.ttft),
            "priced": c.priced,
            "cost_per_request_usd": c.cost_usd / c.priced if c.priced else None,
            "feedback": self.feedback,
            "negative_feedback": self.negative_feedback,
            "negative_ratio": (
                _round(self.negative_feedback / self.feedback) if self.feedback else None
            ),
        }


@dataclass(frozen=True)
class Check:
    guard: str
    canary: float
    baseline: float
    value: float  # the increase or the ratio compared with the limit
    limit: float

    @property
    def ok(self) -> bool:
        return self.value <= self.limit

    def to_json(self) -> dict[str, Any]:
        return {
            "guard": self.guard,
            "canary": _round(self.canary),
            "baseline": _round(self.baseline),
            "value": _round(self.value),
            "limit": self.limit,
            "ok": self.ok,
        }

    def describe(self) -> str:
        how = "+" if self.guard.endswith("increase") else "x"
        verb = "<=" if self.ok else ">"
        return (
            f"{self.guard}: canary {self.canary:.4g} vs baseline {self.baseline:.4g} "
            f"({how}{self.value:.3g} {verb} {self.limit:g})"
        )


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    canary: dict[str, Any]
    baseline: dict[str, Any]
    checks: tuple[Check, ...] = ()
    skipped: dict[str, str] | None = None

    @property
    def breached(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def to_json(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "canary": self.canary,
            "baseline": self.baseline,
            "checks": [c.to_json() for c in self.checks],
            "breached": [c.guard for c in self.breached],
            "skipped": self.skipped or {},
        }

    def describe(self) -> str:
        counts = (
            f"canary {self.canary['requests']} requests, "
            f"baseline {self.baseline['requests']} requests"
        )
        if self.decision == "hold":
            return f"too few requests to decide ({counts})"
        if self.decision == "breach":
            return "; ".join(c.describe() for c in self.breached) + f" ({counts})"
        held = "; ".join(c.describe() for c in self.checks)
        return f"all guards held: {held} ({counts})"


def evaluate(canary: Side, baseline: Side, guards: Guards) -> Verdict:
    """Promote when every guard holds, breach when any fires, hold while either side
    has fewer than `min_requests`."""
    c_sum, b_sum = canary.summary(), baseline.summary()
    need = max(guards.min_requests, 1)
    if canary.counts.requests < need or baseline.counts.requests < need:
        return Verdict("hold", c_sum, b_sum)
    checks: list[Check] = []
    skipped: dict[str, str] = {}
    c, b = canary.counts, baseline.counts
    c_err, b_err = c.errors / c.requests, b.errors / b.requests
    increase = c_err - b_err
    checks.append(
        Check("max_error_rate_increase", c_err, b_err, increase, guards.max_error_rate_increase)
    )
    floor = guards.latency_floor_s
    for guard, limit, c_hist, b_hist in (
        ("max_p95_latency_ratio", guards.max_p95_latency_ratio, c.latency, b.latency),
        ("max_p95_ttft_ratio", guards.max_p95_ttft_ratio, c.ttft, b.ttft),
    ):
        c_p95, b_p95 = quantile(c_hist, 0.95), quantile(b_hist, 0.95)
        if c_p95 is None or b_p95 is None:
            skipped[guard] = "no samples on one side"
            continue
        ratio = _ratio(max(c_p95, floor), max(b_p95, floor))
        checks.append(Check(guard, c_p95, b_p95, ratio, limit))
    if c.priced < need or b.priced < need:
        skipped["max_cost_ratio"] = f"fewer than {need} priced requests on one side"
    else:
        c_cost, b_cost = c.cost_usd / c.priced, b.cost_usd / b.priced
        ratio = _ratio(c_cost, b_cost)
        checks.append(Check("max_cost_ratio", c_cost, b_cost, ratio, guards.max_cost_ratio))
    min_feedback = max(guards.min_feedback, 1)
    if canary.feedback < min_feedback or baseline.feedback < min_feedback:
        skipped["max_negative_feedback_increase"] = (
            f"fewer than {min_feedback} feedback on one side"
        )
    else:
        c_neg = canary.negative_feedback / canary.feedback
        b_neg = baseline.negative_feedback / baseline.feedback
        limit = guards.max_negative_feedback_increase
        checks.append(Check("max_negative_feedback_increase", c_neg, b_neg, c_neg - b_neg, limit))
    decision: Decision = "breach" if any(not check.ok for check in checks) else "promote"
    return Verdict(decision, c_sum, b_sum, tuple(checks), skipped)


def _ratio(canary: float, baseline: float) -> float:
    if baseline > 0:
        return canary / baseline
    return 1.0 if canary <= 0 else float("inf")


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)
