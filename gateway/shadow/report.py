"""What shadow traffic showed: each shadow outcome kept next to its primary in a bounded
in-memory log (per replica), and the side-by-side report the admin API and the CLI
show: requests, error rate, latency and TTFT percentiles, tokens and cost per request,
and how often the two answers agree."""

from __future__ import annotations

import math
import re
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from aiohttp import web

from gateway.appkeys import PROMPTS, RUNTIME, SHADOW_LOG
from gateway.errors import ApiError
from gateway.telemetry.recorder import RequestRecord

Kind = Literal["prompt", "model"]  # a prompt's shadow versions, a route's shadow targets
MAX_PAIRS = 10_000  # per prompt or route: the newest pairs are kept
MAX_TEXT = 1_000  # characters of each answer kept in memory (when capture is on)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_WORD = re.compile(r"\w+")


@dataclass(frozen=True, slots=True)
class Side:
    """One request of a pair, as the report needs it."""

    status: int
    latency_s: float
    ttft_s: float | None
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None
    error: str = ""

    @classmethod
    def of(cls, outcome: RequestRecord) -> Side:
        usage = outcome.usage
        return cls(
            status=outcome.status,
            latency_s=outcome.latency_s,
            ttft_s=outcome.ttft_s,
            input_tokens=None if usage is None else usage.input_tokens,
            output_tokens=None if usage is None else usage.output_tokens,
            cost_usd=outcome.cost_usd,
            error=outcome.error,
        )


@dataclass(frozen=True, slots=True)
class Pair:
    at: float  # wall clock, when the shadow finished
    request_id: str  # the primary's
    primary_label: str  # the primary's version (prompts) or provider/model (routes)
    shadow_label: str  # the shadow's version or provider/model
    primary: Side
    shadow: Side
    exact: bool | None  # None: one side has no answer text to compare
    similarity: float | None
    primary_text: str | None = None  # kept only when capture is on
    shadow_text: str | None = None


def similarity(a: str, b: str) -> float:
    """Token Jaccard: shared words over all words, case-folded. Cheap (linear), so it
    can run on the event loop next to live traffic."""
    left, right = set(_WORD.findall(a.casefold())), set(_WORD.findall(b.casefold()))
    if not left and not right:
        return 1.0
    return len(left & right) / len(left | right)


def clip(text: str | None) -> str | None:
    return None if text is None else text[:MAX_TEXT]


class ShadowLog:
    """The newest pairs per (kind, name), and drops; lost on restart."""

    def __init__(self, max_pairs: int = MAX_PAIRS) -> None:
        self.max_pairs = max_pairs
        self._pairs: dict[tuple[Kind, str], deque[Pair]] = {}
        self._drops: dict[tuple[Kind, str], deque[tuple[float, str, str]]] = {}

    def add(self, kind: Kind, name: str, pair: Pair) -> None:
        found = self._pairs.get((kind, name))
        if found is None:
            found = self._pairs[(kind, name)] = deque(maxlen=self.max_pairs)
        found.append(pair)

    def dropped(self, kind: Kind, name: str, primary_label: str, shadow_label: str) -> None:
        found = self._drops.get((kind, name))
        if found is None:
            found = self._drops[(kind, name)] = deque(maxlen=self.max_pairs)
        found.append((time.time(), primary_label, shadow_label))

    def has(self, kind: Kind, name: str) -> bool:
        return (kind, name) in self._pairs or (kind, name) in self._drops

    def report(self, kind: Kind, name: str, since_s: float) -> dict[str, Any]:
        after = time.time() - since_s
        groups: dict[tuple[str, str], list[Pair]] = {}
        for pair in self._pairs.get((kind, name), ()):
            if pair.at >= after:
                groups.setdefault((pair.primary_label, pair.shadow_label), []).append(pair)
        drops: dict[tuple[str, str], int] = {}
        for at, primary, shadow in self._drops.get((kind, name), ()):
            if at >= after:
                drops[(primary, shadow)] = drops.get((primary, shadow), 0) + 1
        rows = []
        for labels in sorted(groups.keys() | drops.keys()):
            pairs = groups.get(labels, [])
            rows.append(
                {
                    "primary": {"label": labels[0], **_stats(p.primary for p in pairs)},
                    "shadow": {"label": labels[1], **_stats(p.shadow for p in pairs)},
                    "agreement": _agreement(pairs),
                    "dropped": drops.get(labels, 0),
                }
            )
        return {"kind": kind, "name": name, "since_s": since_s, "comparisons": rows}


def _stats(sides: Iterable[Side]) -> dict[str, Any]:
    listed = list(sides)
    n = len(listed)
    errors = sum(1 for s in listed if s.status != 200)
    latencies = sorted(s.latency_s for s in listed)
    ttfts = sorted(s.ttft_s for s in listed if s.ttft_s is not None)
    inputs = [s.input_tokens for s in listed if s.input_tokens is not None]
    outputs = [s.output_tokens for s in listed if s.output_tokens is not None]
    costs = [s.cost_usd for s in listed if s.cost_usd is not None]
    return {
        "requests": n,
        "errors": errors,
        "error_rate": errors / n if n else None,
        "latency_ms": {"p50": _ms(latencies, 0.5), "p95": _ms(latencies, 0.95)},
        "ttft_ms": {"p50": _ms(ttfts, 0.5), "p95": _ms(ttfts, 0.95)},
        "input_tokens_per_request": _mean(inputs),
        "output_tokens_per_request": _mean(outputs),
        "cost_usd_per_request": _mean(costs),
    }


def _agreement(pairs: list[Pair]) -> dict[str, Any]:
    compared = [p for p in pairs if p.exact is not None and p.similarity is not None]
    return {
        "compared": len(compared),
        "exact_match_rate": _mean([1.0 if p.exact else 0.0 for p in compared]),
        "similarity": _mean([p.similarity for p in compared if p.similarity is not None]),
    }


def _ms(ordered: list[float], q: float) -> float | None:
    """Nearest-rank percentile of sorted seconds, in milliseconds."""
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return round(ordered[index] * 1000, 2)


def _mean(values: list[float] | list[int]) -> float | None:
    return sum(values) / len(values) if values else None


def parse_duration(text: str) -> float:
    """Seconds from `3600`, `90s`, `30m`, `1h`, `7d`; ValueError otherwise."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"not a duration: {text!r} (e.g. 3600, 30m, 1h, 7d)")
    return float(match.group(1)) * _UNIT_S[match.group(2)]


# --- /admin routes -----------------------------------------------------------------


def _since(request: web.Request) -> float:
    try:
        return parse_duration(request.query.get("since", "3600"))
    except ValueError as exc:
        raise ApiError(400, str(exc), param="since") from None


def _answer(report: dict[str, Any]) -> web.Response:
    return web.Response(body=orjson.dumps(report), content_type="application/json")


async def prompt_shadow(request: web.Request) -> web.Response:
    """`GET /admin/prompts/{name}/shadow?since=3600`: the prompt's shadow versions."""
    name, log = request.match_info["name"], request.config_dict[SHADOW_LOG]
    if name not in request.config_dict[PROMPTS].current.prompts and not log.has("prompt", name):
        raise ApiError(404, f"Unknown prompt `{name}`.", code="prompt_not_found")
    return _answer(log.report("prompt", name, _since(request)))


async def model_shadow(request: web.Request) -> web.Response:
    """`GET /admin/models/{alias}/shadow?since=3600`: the route's shadow targets."""
    alias, log = request.match_info["alias"], request.config_dict[SHADOW_LOG]
    if alias not in request.config_dict[RUNTIME].current.config.models and not log.has(
        "model", alias
    ):
        raise ApiError(404, f"Unknown route `{alias}`.", code="model_not_found")
    return _answer(log.report("model", alias, _since(request)))


def add_report_routes(admin: web.Application) -> None:
    admin.router.add_get("/prompts/{name}/shadow", prompt_shadow)
    admin.router.add_get("/models/{alias}/shadow", model_shadow)
