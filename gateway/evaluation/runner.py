"""A test run: every case of a dataset revision sent through the gateway's own
pipeline to a pinned prompt version (`call_pinned` under the `TEST` policy: role
"test" in the metrics, never captured, never in rollout statistics or feedback),
judged by the case's checks, and summed up as a `DatasetRun`.

The gateway makes and judges the run itself: a result is never taken from a client."""

from __future__ import annotations

import asyncio
import math
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass

from aiohttp import web

from gateway.errors import Invalid
from gateway.evaluation.suites import Case, SuiteError, judge, parse_case
from gateway.prompts.versions import iso
from gateway.proxy.call import TEST
from gateway.proxy.own_calls import call_pinned
from gateway.store.dataset_runs import CaseOutcome, DatasetRun
from gateway.store.datasets import DatasetRevision

MAX_CASES = 1000  # per dataset: a run answers when it is over
MAX_CONCURRENCY = 32
DEFAULT_CONCURRENCY = 4


@dataclass(frozen=True)
class RunPlan:
    """What to run, decided (and checked to exist) by the admin route."""

    prompt: str
    version: str
    version_hash: str
    dataset: DatasetRevision
    by: str
    min_pass_rate: float = 1.0
    concurrency: int = DEFAULT_CONCURRENCY
    stream: bool = False


def dataset_cases(dataset: DatasetRevision) -> list[Case]:
    """A stored revision's cases, read with today's rules (the checks are those a
    suite file may have)."""
    cases = []
    for i, data in enumerate(dataset.cases):
        try:
            cases.append(parse_case(data, f"cases[{i}]", i + 1, unnamed="case"))
        except SuiteError as exc:
            raise Invalid(
                f"Dataset '{dataset.name}' revision {dataset.revision}: {exc}",
                param=f"cases[{i}]",
                code="invalid_case",
            ) from None
    return cases


async def run_dataset(app: web.Application, plan: RunPlan) -> DatasetRun:
    """Run every case, at most `plan.concurrency` at once, and judge each."""
    cases = dataset_cases(plan.dataset)
    started = time.time()
    run_id = "run-" + secrets.token_hex(6)
    limit = asyncio.Semaphore(max(1, min(plan.concurrency, MAX_CONCURRENCY)))

    async def one(case: Case) -> CaseOutcome:
        async with limit:
            body = {**case.body(), "stream": plan.stream}
            record = await call_pinned(app, plan.prompt, plan.version, body, TEST, run_id=run_id)
        failures = judge(case, record)
        return CaseOutcome(
            name=case.name,
            passed=not failures,
            failures=failures,
            status=record.status,
            error=record.error,
            latency_ms=round(record.latency_s * 1000, 3),
            ttft_ms=None if record.ttft_s is None else round(record.ttft_s * 1000, 3),
            cost_usd=record.cost_usd,
            provider=record.provider,
            model=record.model,
        )

    outcomes = list(await asyncio.gather(*(one(case) for case in cases)))
    return summarize(plan, outcomes, started, time.time(), run_id)


def summarize(
    plan: RunPlan,
    outcomes: list[CaseOutcome],
    started: float,
    finished: float,
    run_id: str = "",
) -> DatasetRun:
    passed = sum(o.passed for o in outcomes)
    rate = passed / len(outcomes) if outcomes else 0.0
    latencies = sorted(o.latency_ms for o in outcomes)
    costs = [o.cost_usd for o in outcomes if o.cost_usd is not None]
    return DatasetRun(
        id=run_id or "run-" + secrets.token_hex(6),
        prompt=plan.prompt,
        version=plan.version,
        version_hash=plan.version_hash,
        dataset=plan.dataset.name,
        dataset_revision=plan.dataset.revision,
        total=len(outcomes),
        passed=passed,
        failed=len(outcomes) - passed,
        pass_rate=round(rate, 6),
        min_pass_rate=plan.min_pass_rate,
        verdict="pass" if outcomes and rate >= plan.min_pass_rate else "fail",
        latency_p50_ms=percentile(latencies, 0.5),
        latency_p95_ms=percentile(latencies, 0.95),
        cost_usd=round(sum(costs), 9) if costs else None,
        stream=plan.stream,
        by=plan.by,
        started_at=iso(started),
        finished_at=iso(finished),
        cases=outcomes,
    )


def percentile(ordered: Sequence[float], q: float) -> float | None:
    """Nearest rank: the smallest value with at least `q` of the values at or below."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]
