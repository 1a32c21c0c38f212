"""Runs of a dataset on a prompt version, as the gateway made and judged them: the
run's numbers (`RunSummary`) and each case's outcome. Only the gateway writes them
(gateway.evaluation.test_runs); no admin route takes a result from outside.

This module has the types, the `DatasetRuns` protocol and the embedded store's
implementation; the Redis one is in gateway.store.datasets_redis."""

from __future__ import annotations

from typing import Any, Literal, Protocol

import msgspec

RUNS_KEPT = 500  # per prompt, newest first; older runs are dropped
Verdict = Literal["pass", "fail"]


class CaseOutcome(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    passed: bool
    failures: list[str]
    status: int  # the gateway's answer to the case (0: none)
    error: str = ""
    latency_ms: float
    ttft_ms: float | None = None
    cost_usd: float | None = None
    provider: str = ""
    model: str = ""


class RunSummary(msgspec.Struct, frozen=True, kw_only=True):
    """A run without its cases' outcomes."""

    id: str
    prompt: str
    version: str
    version_hash: str
    dataset: str
    dataset_revision: int
    total: int
    passed: int
    failed: int
    pass_rate: float
    min_pass_rate: float  # the prompt's, when the run was made
    verdict: Verdict  # pass: pass_rate >= min_pass_rate
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    cost_usd: float | None  # the priced cases' total; None when none was priced
    stream: bool
    by: str
    started_at: str  # ISO 8601 UTC
    finished_at: str

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = msgspec.to_builtins(self)
        return data

    def summary(self) -> RunSummary:
        fields = {f: getattr(self, f) for f in RunSummary.__struct_fields__}
        return RunSummary(**fields)


class DatasetRun(RunSummary, frozen=True, kw_only=True):
    cases: list[CaseOutcome]


def encode_run(run: DatasetRun) -> bytes:
    return msgspec.json.encode(run)


def decode_run(raw: bytes | str) -> DatasetRun:
    return msgspec.json.decode(raw, type=DatasetRun)


def decode_summary(raw: bytes | str) -> RunSummary:
    return msgspec.json.decode(raw, type=RunSummary)


class DatasetRuns(Protocol):
    async def add(self, run: DatasetRun) -> None: ...

    async def summaries(self, prompt: str) -> list[RunSummary]:
        """The prompt's runs, newest first (the last `RUNS_KEPT`)."""
        ...

    async def get(self, prompt: str, run_id: str) -> DatasetRun | None: ...


class MemoryDatasetRuns:
    def __init__(self) -> None:
        self._runs: dict[str, list[DatasetRun]] = {}

    async def add(self, run: DatasetRun) -> None:
        runs = self._runs.setdefault(run.prompt, [])
        runs.insert(0, run)
        del runs[RUNS_KEPT:]

    async def summaries(self, prompt: str) -> list[RunSummary]:
        return [run.summary() for run in self._runs.get(prompt, [])]

    async def get(self, prompt: str, run_id: str) -> DatasetRun | None:
        return next((r for r in self._runs.get(prompt, []) if r.id == run_id), None)
