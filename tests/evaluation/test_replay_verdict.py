"""A replay's verdict from its numbers: each threshold given is one check with the value
measured and its limit; what cannot be measured on the reference side passes with a
note, what the candidate gives nothing for fails."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.decoding import decode
from gateway.errors import Invalid
from gateway.evaluation.replay import Pair, Sample, compare
from gateway.evaluation.replay_verdict import FailOn, judge


def sample(ok: bool = True, latency: float = 100.0, ttft: float | None = None, **kw: Any) -> Sample:
    return Sample(
        ok=ok,
        status=200 if ok else 500,
        text=kw.get("text", "the same answer"),
        latency_ms=latency,
        ttft_ms=ttft,
        input_tokens=8,
        output_tokens=7,
        cost_usd=kw.get("cost", 1e-5),
        error=None if ok else "server_error",
    )


def numbers(reference: list[Sample], candidate: list[Sample]) -> dict[str, Any]:
    pairs = [
        Pair(f"r{i}", {}, r, c) for i, (r, c) in enumerate(zip(reference, candidate, strict=True))
    ]
    result: dict[str, Any] = compare(pairs)["numbers"]
    return result


def test_every_threshold_passes_on_an_equal_candidate() -> None:
    same = [sample(ttft=20.0) for _ in range(10)]
    fail_on = FailOn(
        error_rate_increase=0.0,
        p95_latency_ratio=1.0,
        p95_ttft_ratio=1.0,
        cost_ratio=1.0,
        min_similarity=1.0,
    )
    verdict = judge(fail_on, numbers(same, same))
    assert verdict["result"] == "pass" and verdict["failed"] == []
    assert [(c["name"], c["value"], c["passed"]) for c in verdict["checks"]] == [
        ("error_rate_increase", 0.0, True),
        ("p95_latency_ratio", 1.0, True),
        ("p95_ttft_ratio", 1.0, True),
        ("cost_ratio", 1.0, True),
        ("min_similarity", 1.0, True),
    ]


def test_a_slower_dearer_failing_candidate_fails_each_threshold_it_crosses() -> None:
    reference = [sample(latency=100.0) for _ in range(10)]
    candidate = [sample(latency=300.0, cost=3e-5, text="other words") for _ in range(9)]
    candidate.append(sample(ok=False))
    verdict = judge(
        FailOn(error_rate_increase=0.05, p95_latency_ratio=2.0, cost_ratio=4.0, min_similarity=0.5),
        numbers(reference, candidate),
    )
    assert verdict["result"] == "fail"
    assert verdict["failed"] == ["error_rate_increase", "p95_latency_ratio", "min_similarity"]
    checks = {c["name"]: c for c in verdict["checks"]}
    assert checks["error_rate_increase"]["value"] == pytest.approx(0.1)
    assert checks["p95_latency_ratio"]["value"] == pytest.approx(3.0)
    assert checks["cost_ratio"] == {
        "name": "cost_ratio",
        "value": 3.0,
        "limit": 4.0,
        "passed": True,
    }
    assert checks["min_similarity"]["value"] < 0.5


def test_unmeasured_reference_passes_with_a_note_and_a_silent_candidate_fails() -> None:
    production = [sample(ttft=None) for _ in range(4)]  # did not stream
    streamed = [sample(ttft=30.0) for _ in range(4)]
    verdict = judge(FailOn(p95_ttft_ratio=1.5), numbers(production, streamed))
    assert verdict["result"] == "pass"
    assert verdict["checks"][0]["note"] == "nothing measured on the reference side"

    broken = [sample(ok=False) for _ in range(4)]
    verdict = judge(FailOn(p95_latency_ratio=1.5, min_similarity=0.1), numbers(streamed, broken))
    assert verdict["failed"] == ["p95_latency_ratio", "min_similarity"]
    assert [c["note"] for c in verdict["checks"]] == [
        "the candidate answered no request",
        "no answers to compare",
    ]


def test_no_thresholds_is_a_pass_and_unknown_or_negative_ones_are_refused() -> None:
    assert judge(FailOn(), numbers([sample()], [sample(ok=False)])) == {
        "result": "pass",
        "failed": [],
        "checks": [],
    }
    with pytest.raises(Invalid) as unknown:
        decode({"p99_ratio": 2}, FailOn)
    assert unknown.value.param == "p99_ratio"
    with pytest.raises(Invalid):
        decode({"cost_ratio": -1}, FailOn)
    assert decode({"cost_ratio": 2, "min_similarity": 0.8}, FailOn).to_json() == {
        "cost_ratio": 2.0,
        "min_similarity": 0.8,
    }
