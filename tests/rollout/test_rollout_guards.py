"""The canary analysis as a pure function, the histogram it estimates p95s from, the
weights of each step, and the checks on a rollout request."""

from __future__ import annotations

import random

import pytest

from gateway.decoding import decode
from gateway.errors import DomainError, api_error
from gateway.rollout.guards import Side, evaluate
from gateway.rollout.state import RolloutRequest, step_weights
from gateway.store.rollouts import Guards
from gateway.store.version_counts import HISTOGRAM_BOUNDS, VersionCounts, quantile, slot_of


def counts(
    n: int,
    errors: int = 0,
    latency_s: float = 0.2,
    ttft_s: float | None = None,
    cost: float | None = None,
) -> VersionCounts:
    c = VersionCounts()
    for i in range(n):
        c.observe(latency_s, ttft_s, i < errors, cost)
    return c


def test_too_few_requests_on_either_side_hold() -> None:
    guards = Guards(min_requests=50)
    verdict = evaluate(Side(counts(49)), Side(counts(500)), guards)
    assert verdict.decision == "hold" and verdict.checks == ()
    assert (verdict.canary["requests"], verdict.baseline["requests"]) == (49, 500)
    assert evaluate(Side(counts(500)), Side(counts(10)), guards).decision == "hold"
    assert "too few requests" in verdict.describe()


def test_a_canary_like_its_baseline_is_promoted() -> None:
    verdict = evaluate(Side(counts(100, errors=1)), Side(counts(400, errors=4)), Guards())
    assert verdict.decision == "promote" and verdict.breached == []
    assert [c.guard for c in verdict.checks] == ["max_error_rate_increase", "max_p95_latency_ratio"]
    # Nothing to compare: skipped, and saying why.
    assert set(verdict.skipped or {}) == {
        "max_p95_ttft_ratio",
        "max_cost_ratio",
        "max_negative_feedback_increase",
    }


def test_the_error_ratio_guard_fires_on_an_absolute_increase() -> None:
    guards = Guards(max_error_rate_increase=0.02)
    ok = evaluate(Side(counts(100, errors=3)), Side(counts(100, errors=2)), guards)
    assert ok.decision == "promote"  # +0.01
    bad = evaluate(Side(counts(100, errors=5)), Side(counts(100, errors=2)), guards)
    assert bad.decision == "breach"
    (check,) = bad.breached
    assert check.guard == "max_error_rate_increase"
    assert check.value == pytest.approx(0.03) and check.limit == 0.02
    assert bad.to_json()["breached"] == ["max_error_rate_increase"]
    assert "canary 0.05 vs baseline 0.02" in bad.describe()


def test_latency_and_ttft_compare_p95s_by_ratio_above_a_floor() -> None:
    guards = Guards(max_p95_latency_ratio=1.5, max_p95_ttft_ratio=1.5)
    slow = evaluate(Side(counts(100, latency_s=0.9)), Side(counts(100, latency_s=0.3)), guards)
    assert [c.guard for c in slow.breached] == ["max_p95_latency_ratio"]
    assert slow.breached[0].value == pytest.approx(3.0, rel=0.15)
    # 3 ms against 1 ms is three times slower, and noise: both count as the 50 ms floor.
    fast = evaluate(Side(counts(100, latency_s=0.003)), Side(counts(100, latency_s=0.001)), guards)
    assert fast.decision == "promote"
    late = evaluate(
        Side(counts(100, latency_s=1, ttft_s=0.8)),
        Side(counts(100, latency_s=1, ttft_s=0.2)),
        guards,
    )
    assert [c.guard for c in late.breached] == ["max_p95_ttft_ratio"]


def test_cost_per_request_by_ratio_when_both_sides_are_priced() -> None:
    guards = Guards(min_requests=10, max_cost_ratio=1.3)
    dear = evaluate(Side(counts(20, cost=0.002)), Side(counts(20, cost=0.001)), guards)
    assert [c.guard for c in dear.breached] == ["max_cost_ratio"]
    assert dear.breached[0].value == pytest.approx(2.0)
    unpriced = evaluate(Side(counts(20, cost=0.002)), Side(counts(20)), guards)
    assert unpriced.decision == "promote" and "max_cost_ratio" in (unpriced.skipped or {})


def test_negative_feedback_by_absolute_increase_with_enough_feedback() -> None:
    guards = Guards(min_requests=10, min_feedback=10, max_negative_feedback_increase=0.1)
    worse = evaluate(Side(counts(20), 6, 20), Side(counts(80), 8, 80), guards)
    assert [c.guard for c in worse.breached] == ["max_negative_feedback_increase"]
    assert worse.breached[0].value == pytest.approx(0.2)
    assert worse.canary["negative_ratio"] == 0.3
    little = evaluate(Side(counts(20), 5, 5), Side(counts(80), 0, 80), guards)
    assert little.decision == "promote"  # 5 feedback items are too few to judge


def test_every_fired_guard_is_reported() -> None:
    verdict = evaluate(
        Side(counts(100, errors=50, latency_s=2.0)), Side(counts(100, latency_s=0.2)), Guards()
    )
    assert [c.guard for c in verdict.breached] == [
        "max_error_rate_increase",
        "max_p95_latency_ratio",
    ]


def test_p95_estimated_from_merged_histograms_is_close() -> None:
    rng = random.Random(7)
    samples = [rng.lognormvariate(-1.0, 0.8) for _ in range(4000)]
    replicas = [VersionCounts(), VersionCounts()]
    for i, s in enumerate(samples):
        replicas[i % 2].observe(s, None, False, None)
    merged = VersionCounts()
    for r in replicas:
        merged.merge(r)
    true_p95 = sorted(samples)[int(0.95 * len(samples))]
    assert quantile(merged.latency, 0.95) == pytest.approx(true_p95, rel=0.1)
    assert quantile(VersionCounts().latency, 0.95) is None
    assert slot_of(10_000) == len(HISTOGRAM_BOUNDS)  # past the top: the overflow slot


def test_counts_survive_their_flat_field_form() -> None:
    original = counts(30, errors=4, latency_s=0.4, ttft_s=0.1, cost=0.25)
    restored = VersionCounts()
    for name, value in original.fields().items():
        restored.add_field(name, str(value))
    assert restored == original


def test_step_weights_scale_the_baseline_and_always_sum_to_100() -> None:
    assert step_weights({"v1": 100}, "v2", 5) == {"v1": 95, "v2": 5}
    assert step_weights({"v1": 100, "v2": 0}, "v2", 100) == {"v1": 0, "v2": 100}
    split = step_weights({"v1": 50, "v2": 50}, "v3", 25)
    assert split == {"v1": 38, "v2": 37, "v3": 25}
    for percent in range(1, 101):
        weights = step_weights({"v1": 33, "v2": 33, "v3": 34}, "v4", percent)
        assert sum(weights.values()) == 100 and weights["v4"] == percent


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"version": "v2", "steps": [50, 25, 100]},
        {"version": "v2", "steps": [25, 50]},
        {"version": "v2", "steps": [0, 100]},
        {"version": "v2", "interval_s": 0},
        {"version": "v2", "on_breach": "panic"},
        {"version": "v2", "guards": {"max_cost_ratio": "high"}},
        {"version": "v2", "guards": {"min_requests": 1.5}},
        {"version": "v2", "guards": {"unknown": 1}},
        {"version": "v2", "color": "blue"},
    ],
)
def test_a_bad_rollout_request_is_a_400(body: dict[str, object]) -> None:
    with pytest.raises(DomainError) as caught:
        decode(body, RolloutRequest)
    assert api_error(caught.value).status == 400


def test_a_rollout_request_keeps_the_defaults_it_is_not_given() -> None:
    request = decode({"version": "v2", "guards": {"min_requests": 5}}, RolloutRequest)
    assert request.steps == (5, 25, 50, 100) and request.on_breach == "rollback"
    assert request.guards == Guards(min_requests=5)
