"""A replay's verdict: its numbers (gateway.evaluation.replay.compare) held against the
`fail_on` thresholds it was asked with. Each threshold given is one check, with the
value measured, the limit and whether it passed; the verdict is `fail` when any check
failed, else `pass` (no thresholds: `pass`, nothing was asked).

A threshold nothing can be measured for on the reference side (production did not
stream, so it has no time to first token; nothing was priced) passes with a note: the
replay cannot judge it. One the candidate gives nothing for while the reference does
(every candidate request failed) fails."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import msgspec

Ratio = Annotated[float, msgspec.Meta(ge=0)]
Share = Annotated[float, msgspec.Meta(ge=0, le=1)]


class FailOn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The thresholds, each optional; the candidate fails when it goes past one."""

    error_rate_increase: Share | None = None  # candidate error rate - reference's
    p95_latency_ratio: Ratio | None = None  # candidate p95 / reference p95
    p95_ttft_ratio: Ratio | None = None
    cost_ratio: Ratio | None = None  # cost per answered request
    min_similarity: Share | None = None  # mean word similarity at least

    def to_json(self) -> dict[str, float]:
        return {k: v for k, v in msgspec.structs.asdict(self).items() if v is not None}


def _check(
    name: str, value: float | None, limit: float, passed: bool, note: str = ""
) -> dict[str, Any]:
    check: dict[str, Any] = {"name": name, "value": value, "limit": limit, "passed": passed}
    if note:
        check["note"] = note
    return check


def _ratio(name: str, reference: float | None, candidate: float | None, limit: float) -> Any:
    if reference is None or reference <= 0:
        return _check(name, None, limit, True, "nothing measured on the reference side")
    if candidate is None:
        return _check(name, None, limit, False, "the candidate answered no request")
    value = candidate / reference
    return _check(name, value, limit, value <= limit)


def judge(fail_on: FailOn, numbers: Mapping[str, Any]) -> dict[str, Any]:
    """`{result: pass|fail, failed: [names], checks: [{name, value, limit, passed}]}`."""
    ref, cand, agreement = numbers["reference"], numbers["candidate"], numbers["agreement"]
    checks = []
    if fail_on.error_rate_increase is not None:
        limit = fail_on.error_rate_increase
        increase = (cand["error_rate"] or 0.0) - (ref["error_rate"] or 0.0)
        checks.append(_check("error_rate_increase", increase, limit, increase <= limit))
    for name, key in (("p95_latency_ratio", "latency_ms"), ("p95_ttft_ratio", "ttft_ms")):
        limit_or_none: float | None = getattr(fail_on, name)
        if limit_or_none is not None:
            checks.append(_ratio(name, ref[key]["p95"], cand[key]["p95"], limit_or_none))
    if fail_on.cost_ratio is not None:
        checks.append(_ratio("cost_ratio", ref["cost_usd"], cand["cost_usd"], fail_on.cost_ratio))
    if fail_on.min_similarity is not None:
        limit, mean = fail_on.min_similarity, agreement["similarity_mean"]
        if mean is None:
            checks.append(_check("min_similarity", None, limit, False, "no answers to compare"))
        else:
            checks.append(_check("min_similarity", mean, limit, mean >= limit))
    failed = [c["name"] for c in checks if not c["passed"]]
    return {"result": "fail" if failed else "pass", "failed": failed, "checks": checks}
