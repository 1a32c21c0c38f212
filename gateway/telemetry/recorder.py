"""One `record(request_record)` per request: metrics, tokens and cost, the access log."""

from __future__ import annotations

import itertools
import os
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from gateway.config.loader import GatewayConfig, Pricing
from gateway.providers.base import Usage
from gateway.telemetry.logs import AccessLogWriter
from gateway.telemetry.metrics import Metrics, PendingCount
from gateway.telemetry.spend_tally import SpendTally

if TYPE_CHECKING:
    from gateway.telemetry.tracing import Tracing  # loaded only when tracing is on


@dataclass(slots=True)  # not frozen, not a NamedTuple: both are slower to make
class RequestRecord:
    """What happened to one request, made once when it is over. Telemetry, capture,
    feedback, version counts and shadow reports read it; nothing writes to it."""

    request_id: str
    path: str
    route: str = ""
    prompt: str = ""
    version: str = ""
    key: str = ""
    team: str = ""  # the key's team
    user: str = ""  # the end user (never a metric label)
    role: str = "primary"
    primary_request_id: str = ""  # a shadow request: the request it mirrors
    stream: bool = False
    provider: str = ""
    model: str = ""
    status: int = 0
    error: str = ""
    attempts: int = 0
    latency_s: float = 0.0
    upstream_s: float = 0.0
    ttft_s: float | None = None
    usage: Usage | None = None
    cost_usd: float | None = None  # None: no answer, or a model with no price
    answer: str | None = None  # kept only when an observer asked (shadow, capture)
    method: str = "POST"
    trace_id: str = ""  # the W3C trace it is part of (the client's, or ours with tracing on)
    guards: list[dict[str, str]] | None = None  # each output guard's verdict, in order
    held: bool = False  # the answer waits for a reviewer: only reviewers may see it


def price_of(usage: Usage | None, model: str, config: GatewayConfig) -> float | None:
    """The answer's cost in USD; None without usage or without a price for the model."""
    if usage is None:
        return None
    price = config.pricing.get(model)
    return None if price is None else cost_usd(usage, price)


def cost_usd(usage: Usage, price: Pricing) -> float:
    uncached = max(usage.input_tokens - usage.cached_input_tokens - usage.cache_write_tokens, 0)
    return (
        usage.cache_write_tokens * price.cache_write_per_mtok
        + uncached * price.input_per_mtok
        + usage.cached_input_tokens * price.cached_input_per_mtok
        + usage.output_tokens * price.output_per_mtok
    ) / 1_000_000


class _Series:
    """The metric children of one combination of request labels, found with one dict
    lookup per request instead of one per metric (label values are bounded). Each is
    made on first use, so no series shows before it has something to count."""

    __slots__ = ("_metrics", "duration", "labels", "overhead", "requests", "spend")

    def __init__(self, m: Metrics, labels: tuple[str, ...]) -> None:
        self._metrics, self.labels = m, labels
        self.requests: dict[int, PendingCount] = {}  # by status
        self.spend: dict[str, Any] = {}
        route, prompt, version, provider, _model, _key, role = labels
        # Every request of a route is timed: these two are made with the first one.
        self.duration: Any = None
        self.overhead: Any = None
        if route:
            self.duration = m.request_duration.labels(route, prompt, version, provider, role)
            self.overhead = m.overhead.labels(route)

    def status(self, code: int) -> PendingCount:
        """Made on first use (also `child`): read `requests` and `spend` first."""
        route, prompt, version, provider, _model, _key, role = self.labels
        found = self.requests[code] = self._metrics.requests.labels(
            route, prompt, version, provider, str(code), role
        )
        return found

    def child(self, name: str) -> Any:
        """`ttft`, `cost` or a token type's counter."""
        m, labels = self._metrics, self.labels
        route, prompt, version, provider, _model, _key, role = labels
        found: Any
        if name == "ttft":
            found = m.ttft.labels(route, prompt, version, provider, role)
        elif name == "cost":
            found = m.cost.labels(*labels)
        else:
            found = m.tokens.labels(*labels, name)
        self.spend[name] = found
        return found


class Telemetry:
    def __init__(self, metrics: Metrics, access_log: AccessLogWriter | None = None) -> None:
        self.metrics = metrics
        self.access_log = access_log
        self.tracing: Tracing | None = None  # set while the app runs, when [tracing] is on
        # Request ids: a random per-process prefix and a counter, cheaper than uuid4.
        self._id_prefix = secrets.token_hex(6)
        self._ids = itertools.count(1)
        self._pid = os.getpid()  # a system call each time otherwise
        self._series: dict[tuple[str, ...], _Series] = {}
        self.spend = SpendTally()  # by key, team and end user, for /admin/spend

    def new_request_id(self) -> str:
        return f"{self._id_prefix}{next(self._ids):010x}"

    def record(self, r: RequestRecord, config: GatewayConfig) -> None:
        """`config`: the one the request started with."""
        labels = (
            r.route,
            r.prompt,
            r.version,
            r.provider,
            r.model,
            r.key,
            r.role,
        )
        series = self._series.get(labels)
        if series is None:
            series = self._series[labels] = _Series(self.metrics, labels)
        # A dict read per metric; the child is made on its first use.
        (series.requests.get(r.status) or series.status(r.status)).inc()
        if series.duration is not None:
            series.duration.observe(r.latency_s)
            series.overhead.observe(max(r.latency_s - r.upstream_s, 0.0))
        spend = series.spend
        if r.ttft_s is not None:
            (spend.get("ttft") or series.child("ttft")).observe(r.ttft_s)
        usage = r.usage
        if usage is not None:
            uncached = max(usage.input_tokens - usage.cached_input_tokens, 0)
            if uncached:
                (spend.get("input") or series.child("input")).inc(uncached)
            if usage.cached_input_tokens:
                cached = spend.get("cached_input") or series.child("cached_input")
                cached.inc(usage.cached_input_tokens)
            if usage.output_tokens:
                (spend.get("output") or series.child("output")).inc(usage.output_tokens)
            if r.cost_usd is None:
                self.metrics.unpriced.labels(r.provider, r.model).inc()
            else:
                (spend.get("cost") or series.child("cost")).inc(r.cost_usd)
        if r.role == "primary":
            self.spend.add(r)
        if self.access_log is not None and config.logging.access_log:
            self._log(r)

    def _log(self, o: RequestRecord) -> None:
        line = {
            "ts": int(time.time() * 1000) / 1000,  # int() and /: round() is slow
            "request_id": o.request_id,
            "trace_id": o.trace_id or None,
            "method": o.method,
            "path": o.path,
            "route": o.route,
            "prompt": o.prompt or None,
            "version": o.version or None,
            "key": o.key or None,
            "role": o.role,
            "primary_request_id": o.primary_request_id or None,
            "provider": o.provider or None,
            "model": o.model or None,
            "status": o.status,
            "stream": o.stream,
            "latency_ms": int(o.latency_s * 100_000) / 100,
            "ttft_ms": None if o.ttft_s is None else int(o.ttft_s * 100_000) / 100,
            "upstream_ms": int(o.upstream_s * 100_000) / 100,
            "attempts": o.attempts,
            "error": o.error or None,
            "pid": self._pid,
        }
        if o.team:  # only when known: most lines need neither
            line["team"] = o.team
        if o.user:
            line["user"] = o.user
        if o.usage is not None:
            line["input_tokens"] = o.usage.input_tokens
            line["output_tokens"] = o.usage.output_tokens
            line["cached_input_tokens"] = o.usage.cached_input_tokens
        line["cost_usd"] = o.cost_usd
        if o.guards is not None:  # the verdicts; their reasons may quote the answer
            line["guards"] = [{"guard": g["guard"], "result": g["result"]} for g in o.guards]
        assert self.access_log is not None
        self.access_log.write(orjson.dumps(line) + b"\n")
