"""Backtesting's numbers: captured production requests answered again by a candidate
prompt version, compared with what production answered, or with a baseline version
answered alongside. Error rate, latency and time to first token percentiles, tokens
and cost per request, and how far the answers agree (exact, and a word-level
similarity from 0 to 1), with the cases that differ most.

Pure: samples in, numbers out (gateway.evaluation.replay_runner makes the samples).
Captured text was redacted: a replay sends `[REDACTED]` where production had the
original."""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from gateway.telemetry.recorder import RequestRecord

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
    def from_record(cls, record: RequestRecord) -> Sample:
        """What the gateway's own pinned call answered."""
        usage = record.usage
        return cls(
            ok=record.status == 200 and not record.error,
            status=record.status,
            text=record.answer,
            latency_ms=round(record.latency_s * 1000, 3),
            ttft_ms=None if record.ttft_s is None else round(record.ttft_s * 1000, 3),
            input_tokens=None if usage is None else usage.input_tokens,
            output_tokens=None if usage is None else usage.output_tokens,
            cost_usd=record.cost_usd,
            error=record.error or None,
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


def replay_body(record: Mapping[str, Any]) -> dict[str, Any]:
    """The captured client request, streamed (so time to first token is measured); the
    pinned call names the model."""
    request = record.get("request") or {}
    params = {k: v for k, v in (request.get("params") or {}).items() if k not in _NOT_REPLAYED}
    return {
        **params,
        "messages": list(request.get("messages") or []),
        "prompt_variables": dict(request.get("variables") or {}),
        "stream": True,
        "stream_options": {"include_usage": True},
    }


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


def compare(pairs: Sequence[Pair]) -> dict[str, Any]:
    """`numbers` (each side's and their agreement), the `differences` that differ
    most, and per-request `samples` (without text) for the report's charts."""
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
    numbers = {
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
    }
    return {
        "numbers": numbers,
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
