"""Backtesting: captured production requests sent again through a candidate prompt
version (pinned, `prompt:NAME@vN`), and compared with what production answered, or with
a baseline version sent alongside. The numbers: error rate, latency and time to first
token percentiles, tokens and cost per request, and how far the answers agree (exact,
and a word-level similarity from 0 to 1), with the cases that differ most.

Replays stream (so time to first token is measured) and carry
`X-Gateway-No-Capture: 1` (so they are never captured themselves). Captured text was
redacted: a replay sends `[REDACTED]` where production had the original."""

from __future__ import annotations

import difflib
import math
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, TextIO

from gateway.evaluation.chat_client import ChatResult

Send = Callable[[Mapping[str, Any]], ChatResult]
_NOT_REPLAYED = ("stream", "stream_options", "prompt_variables", "model", "messages")
DIFFERENCES_SHOWN = 10


@dataclass
class Sample:
    """One side's answer to one captured request."""

    ok: bool
    status: int
    text: str | None
    latency_ms: float
    ttft_ms: float | None
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None
    error: str | None = None

    @classmethod
    def from_capture(cls, record: Mapping[str, Any]) -> Sample:
        usage = record.get("usage") or {}
        status = int(record.get("status") or 0)
        return cls(
            ok=status == 200 and not record.get("error"),
            status=status,
            text=record.get("answer"),
            latency_ms=float(record.get("latency_ms") or 0.0),
            ttft_ms=record.get("ttft_ms"),
            input_tokens=usage.get("input_tokens"),
            output_tokens=usage.get("output_tokens"),
            cost_usd=record.get("cost_usd"),
            error=record.get("error"),
        )

    @classmethod
    def from_result(cls, result: ChatResult) -> Sample:
        usage = result.usage
        return cls(
            ok=result.ok,
            status=result.status,
            text=result.text,
            latency_ms=result.latency_ms,
            ttft_ms=result.ttft_ms,
            input_tokens=None if usage is None else usage.input_tokens,
            output_tokens=None if usage is None else usage.output_tokens,
            cost_usd=result.cost_usd,
            error=result.error,
        )


@dataclass
class Pair:
    request_id: str
    request: Mapping[str, Any]
    reference: Sample  # production, or the baseline version
    candidate: Sample

    @property
    def compared(self) -> bool:
        return self.reference.ok and self.candidate.ok

    @property
    def exact(self) -> bool:
        return self.compared and self.reference.text == self.candidate.text

    @property
    def similarity(self) -> float | None:
        if not self.compared:
            return None
        return similarity(self.reference.text or "", self.candidate.text or "")


def similarity(a: str, b: str) -> float:
    """Word-level: 1 for the same words in the same order, 0 for nothing in common."""
    if a == b:
        return 1.0
    return difflib.SequenceMatcher(None, a.split(), b.split(), autojunk=False).ratio()


def replay_body(record: Mapping[str, Any], model: str) -> dict[str, Any]:
    """The captured client request, aimed at `model` (a pinned prompt version)."""
    request = record.get("request") or {}
    params = {k: v for k, v in (request.get("params") or {}).items() if k not in _NOT_REPLAYED}
    return {
        **params,
        "model": model,
        "messages": list(request.get("messages") or []),
        "prompt_variables": dict(request.get("variables") or {}),
    }


class Progress:
    """`replay [#####.....] 120/200  errors 1  12.3s` on stderr, redrawn in place."""

    def __init__(self, total: int, label: str = "replay", out: TextIO | None = None) -> None:
        self.total, self.label, self.out = total, label, out or sys.stderr
        self.done = self.errors = 0
        self._began = time.monotonic()
        self._lock = threading.Lock()
        self._shown = -1

    def step(self, failed: bool) -> None:
        with self._lock:
            self.done += 1
            self.errors += failed
            percent = self.done * 100 // max(self.total, 1)
            if percent != self._shown or self.done == self.total:
                self._shown = percent
                filled = percent // 5
                self.out.write(
                    f"\r{self.label} [{'#' * filled}{'.' * (20 - filled)}] "
                    f"{self.done}/{self.total}  errors {self.errors}  "
                    f"{time.monotonic() - self._began:.1f}s"
                )
                self.out.flush()

    def close(self) -> None:
        self.out.write("\n")
        self.out.flush()


def run_replay(
    records: Sequence[Mapping[str, Any]],
    send: Send,
    candidate_model: str,
    baseline_model: str | None,
    concurrency: int,
    progress: Progress | None = None,
) -> list[Pair]:
    """Every record through the candidate (and the baseline), `concurrency` at once."""

    def one(record: Mapping[str, Any]) -> Pair:
        if baseline_model is None:
            reference = Sample.from_capture(record)
        else:
            reference = Sample.from_result(send(replay_body(record, baseline_model)))
        candidate = Sample.from_result(send(replay_body(record, candidate_model)))
        if progress is not None:
            progress.step(not candidate.ok)
        request = record.get("request") or {}
        return Pair(str(record.get("request_id")), request, reference, candidate)

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        pairs = list(pool.map(one, records))
    if progress is not None:
        progress.close()
    return pairs


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear between the closest ranks (as numpy's default); None with no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _distribution(values: Sequence[float]) -> dict[str, float | None]:
    return {
        "n": len(values),
        "mean": _mean(values),
        **{f"p{q}": percentile(values, q) for q in (50, 90, 95, 99)},
        "max": max(values) if values else None,
    }


def side_stats(samples: Sequence[Sample]) -> dict[str, Any]:
    answered = [s for s in samples if s.ok]
    priced = [s.cost_usd for s in answered if s.cost_usd is not None]
    errors = len(samples) - len(answered)
    return {
        "requests": len(samples),
        "errors": errors,
        "error_rate": errors / len(samples) if samples else None,
        "latency_ms": _distribution([s.latency_ms for s in answered]),
        "ttft_ms": _distribution([s.ttft_ms for s in answered if s.ttft_ms is not None]),
        "input_tokens": _mean([s.input_tokens for s in answered if s.input_tokens is not None]),
        "output_tokens": _mean([s.output_tokens for s in answered if s.output_tokens is not None]),
        "cost_usd": _mean(priced),
        "cost_usd_total": sum(priced),
        "unpriced": len(answered) - len(priced),
    }


def summarize(pairs: Sequence[Pair], meta: Mapping[str, Any]) -> dict[str, Any]:
    """The report's data (also embedded as JSON in the HTML page)."""
    compared = [p for p in pairs if p.compared]
    scores = [p.similarity or 0.0 for p in compared]
    ranked = sorted(compared, key=lambda p: p.similarity or 0.0)
    failed = [p for p in pairs if not p.candidate.ok and p.reference.ok]
    differing = [p for p in [*failed, *ranked] if p.similarity is None or p.similarity < 1.0]
    differences = [
        {
            "request_id": p.request_id,
            "similarity": p.similarity,
            "reference": p.reference.text,
            "candidate": p.candidate.text if p.candidate.ok else f"error: {p.candidate.error}",
            "input": _last_user(p.request),
        }
        for p in differing[:DIFFERENCES_SHOWN]
    ]
    return {
        "meta": dict(meta),
        "reference": side_stats([p.reference for p in pairs]),
        "candidate": side_stats([p.candidate for p in pairs]),
        "agreement": {
            "compared": len(compared),
            "exact": sum(p.exact for p in compared),
            "exact_rate": sum(p.exact for p in compared) / len(compared) if compared else None,
            "similarity_mean": _mean(scores),
            "similarity_p10": percentile(scores, 10),
            "histogram": [sum(1 for s in scores if min(int(s * 10), 9) == i) for i in range(10)],
        },
        "differences": differences,
        "samples": [
            {
                "request_id": p.request_id,
                "reference": asdict(p.reference) | {"text": None},
                "candidate": asdict(p.candidate) | {"text": None},
                "similarity": p.similarity,
            }
            for p in pairs
        ],
    }


def _last_user(request: Mapping[str, Any]) -> str:
    for message in reversed(list(request.get("messages") or [])):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            return content if isinstance(content, str) else str(content)
    variables = request.get("variables")
    return str(variables) if variables else ""
