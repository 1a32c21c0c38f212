"""Every Prometheus metric of the contract (SPEC §7), in one registry per app.

Labels are bounded: route, prompt, version, provider, model, status, reason, role and
the configured key *name*; never a user, a secret or a request id."""

from __future__ import annotations

import asyncio
from bisect import bisect_left
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

from gateway import __version__

# LLM calls take from tens of milliseconds to minutes.
LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
# What the gateway itself adds: tens of microseconds to tens of milliseconds.
OVERHEAD_BUCKETS = (
    0.00001,
    0.000025,
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
)

REQUEST_LABELS = ("route", "prompt", "version", "provider", "status", "role")
TIMING_LABELS = ("route", "prompt", "version", "provider", "role")
SPEND_LABELS = ("route", "prompt", "version", "provider", "model", "key", "role")


M = TypeVar("M", Counter, Gauge, Histogram)


class Family(Generic[M]):
    """A labelled metric whose children are looked up once: the request path asks for
    the same few label sets again and again, and label values are bounded."""

    __slots__ = ("_children", "metric")

    def __init__(self, metric: M) -> None:
        self.metric: M = metric
        self._children: dict[tuple[str, ...], M] = {}

    def labels(self, *values: str) -> M:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self.metric.labels(*values)
        return child

    def remove(self, *values: str) -> None:
        self._children.pop(values, None)
        self.metric.remove(*values)


class PendingCount:
    """A counter child's increments, added up until the next flush: a float addition on
    the request path instead of prometheus-client's lock and checks."""

    __slots__ = ("child", "pending")

    def __init__(self, child: Counter) -> None:
        self.child = child
        self.pending = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.pending += amount

    def flush(self) -> None:
        if self.pending:
            amount, self.pending = self.pending, 0.0
            self.child.inc(amount)


class PendingObservations:
    """A histogram child's observations as bucket counts and a sum until the next flush
    (one `bisect` per observation instead of a Python loop over the buckets)."""

    __slots__ = ("bounds", "child", "counts", "total")

    def __init__(self, child: Histogram) -> None:
        self.child = child
        self.bounds: list[float] = list(child._upper_bounds)  # ends with +Inf
        self.counts = [0] * len(self.bounds)
        self.total = 0.0

    def observe(self, amount: float) -> None:
        self.counts[bisect_left(self.bounds, amount)] += 1
        self.total += amount

    def flush(self) -> None:
        if not any(self.counts):
            return
        counts, self.counts = self.counts, [0] * len(self.bounds)
        total, self.total = self.total, 0.0
        # prometheus-client's own fields: one addition per bucket instead of replaying
        # every observation (pinned below 1.0 in pyproject; test_prometheus reads them).
        self.child._sum.inc(total)
        for bucket, count in zip(self.child._buckets, counts, strict=True):
            if count:
                bucket.inc(count)


P = TypeVar("P", PendingCount, PendingObservations)


class Batched(Generic[P]):
    """A counter or histogram family whose updates reach prometheus-client in batches:
    on every read of the registry, and at least once a second (`Metrics.flush`)."""

    __slots__ = ("_children", "_make", "metric")

    def __init__(self, metric: Counter | Histogram, make: Callable[[Any], P]) -> None:
        self.metric = metric
        self._make: Callable[[Any], P] = make
        self._children: dict[tuple[str, ...], P] = {}

    def labels(self, *values: str) -> P:
        child = self._children.get(values)
        if child is None:
            # The series exists (at 0) from its first use, as prometheus-client's would.
            child = self._children[values] = self._make(self.metric.labels(*values))
        return child

    def remove(self, *values: str) -> None:
        self._children.pop(values, None)
        self.metric.remove(*values)

    def flush(self) -> None:
        for child in self._children.values():
            child.flush()


def counter(
    name: str, doc: str, labels: tuple[str, ...], r: CollectorRegistry
) -> Batched[PendingCount]:
    return Batched(Counter(name, doc, labels, registry=r), PendingCount)


def histogram(
    name: str, doc: str, labels: tuple[str, ...], buckets: tuple[float, ...], r: CollectorRegistry
) -> Batched[PendingObservations]:
    metric = Histogram(name, doc, labels, buckets=buckets, registry=r)
    return Batched(metric, PendingObservations)


class _FlushFirst:
    """Registered first in the registry: every read of it (a scrape, a test's
    `get_sample_value`) sees the batched updates."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> list[Any]:
        self.metrics.flush()
        return []


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        r.register(_FlushFirst(self))
        self.in_flight = 0  # requests being served; the gauge is set at each flush
        self.requests = counter("gateway_requests_total", "Requests answered.", REQUEST_LABELS, r)
        self.request_duration = histogram(
            "gateway_request_duration_seconds",
            "End-to-end latency seen by the client.",
            TIMING_LABELS,
            LATENCY_BUCKETS,
            r,
        )
        self.ttft = histogram(
            "gateway_time_to_first_token_seconds",
            "Streaming: time to the first content byte.",
            TIMING_LABELS,
            LATENCY_BUCKETS,
            r,
        )
        self.upstream_duration = histogram(
            "gateway_upstream_duration_seconds",
            "One provider attempt, by outcome.",
            ("provider", "model", "outcome"),
            LATENCY_BUCKETS,
            r,
        )
        self.overhead = histogram(
            "gateway_overhead_seconds",
            "Time the gateway itself added to a request.",
            ("route",),
            OVERHEAD_BUCKETS,
            r,
        )
        self.tokens = counter("gateway_tokens_total", "Tokens by type.", (*SPEND_LABELS, "type"), r)
        self.cost = counter(
            "gateway_cost_usd_total", "Cost in USD from the pricing table.", SPEND_LABELS, r
        )
        self.unpriced = counter(
            "gateway_unpriced_requests_total",
            "Requests whose model has no price: cost unknown.",
            ("provider", "model"),
            r,
        )
        self.provider_errors = counter(
            "gateway_provider_errors_total",
            "Failed provider attempts by reason.",
            ("provider", "model", "reason"),
            r,
        )
        self.retries = counter(
            "gateway_retries_total",
            "Retries of the same target.",
            ("route", "provider", "model"),
            r,
        )
        self.failovers = counter(
            "gateway_failovers_total",
            "Moves to the next target.",
            ("route", "from_provider", "to_provider"),
            r,
        )
        self.circuit_state = Family(
            Gauge(
                "gateway_circuit_state",
                "Circuit per target: 0 closed, 1 half-open, 2 open.",
                ("provider", "model"),
                registry=r,
                multiprocess_mode="max",
            )
        )
        self.shadow_requests = counter(
            "gateway_shadow_requests_total",
            "Shadow requests.",
            ("route", "prompt", "version", "outcome"),
            r,
        )
        self.api_requests = counter(
            "gateway_api_requests_total",
            "Requests to APIs beside chat completions, by how they were served "
            "(native: in the target's own API; translated: through chat).",
            ("api", "route", "mode", "status"),
            r,
        )
        self.feedback = counter(
            "gateway_feedback_total", "User feedback.", ("prompt", "version", "value"), r
        )
        self.feedback_replaced = counter(
            "gateway_feedback_replaced_total",
            "Feedback that replaced a request's earlier one (counted once in feedback_total).",
            ("prompt", "version", "from", "to"),
            r,
        )
        self.prompt_weight = Family(
            Gauge(
                "gateway_prompt_weight",
                "Live weight per prompt version.",
                ("prompt", "version"),
                registry=r,
                multiprocess_mode="max",
            )
        )
        # livemax: the replicas' current view; a dead worker's last value must not
        # hold the alert up (its file is dropped when the supervisor reaps it).
        self.prompt_drift = Family(
            Gauge(
                "gateway_prompt_drift",
                "1 when an approved version serving traffic (weight or label) no longer goes "
                "to the targets it was approved on, else 0.",
                ("prompt", "version"),
                registry=r,
                multiprocess_mode="livemax",
            )
        )
        self.rollout_events = counter(
            "gateway_rollout_events_total", "Rollout decisions.", ("prompt", "event"), r
        )
        self.guard_results = counter(
            "gateway_guard_results_total",
            "Guard checks on answers, by result (pass, fail, error: the webhook could not say).",
            ("guard", "prompt", "version", "result"),
            r,
        )
        self.reviews = counter(
            "gateway_reviews_total",
            "Review decisions, by outcome (approved, rejected, expired, released).",
            ("prompt", "version", "outcome"),
            r,
        )
        # The store's count, shared by the replicas: each reports the same number.
        self.reviews_pending = Gauge(
            "gateway_reviews_pending",
            "Review items waiting for a decision.",
            registry=r,
            multiprocess_mode="max",
        )
        self.config_reloads = counter(
            "gateway_config_reloads_total", "Config reloads.", ("result",), r
        )
        # Exported at 0 from the start: `increase()` cannot see a series that is born at 1,
        # so without this the first failed reload would never raise the alert.
        for result in ("success", "failure"):
            self.config_reloads.labels(result)
        self.store_up = Gauge(
            "gateway_store_up",
            "Redis reachable (1) or not (0).",
            registry=r,
            multiprocess_mode="min",
        )
        # No labels: exported at 0 from the start, so `increase()` sees the first loss.
        self.store_data_loss = Counter(
            "gateway_store_data_loss",
            "Times the store was found without its data (and restored from the snapshot).",
            registry=r,
        )
        self.inflight = Gauge(
            "gateway_inflight_requests",
            "Requests being served.",
            registry=r,
            multiprocess_mode="livesum",
        )
        # A gauge, not an Info: Info does not work in multiprocess mode.
        self.build_info = Gauge(
            "gateway_build_info",
            "Gateway version.",
            ("version",),
            registry=r,
            multiprocess_mode="max",
        )
        self.build_info.labels(__version__).set(1)
        # process_* (CPU, memory, fds, start time) and python_info, in the app's registry.
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        self._batched = [m for m in vars(self).values() if isinstance(m, Batched)]

    def flush(self) -> None:
        """Hand the batched updates to prometheus-client (its files, with workers)."""
        for family in self._batched:
            family.flush()
        self.inflight.set(self.in_flight)

    async def run(self, interval_s: float = 1.0) -> None:
        """Until cancelled: flush every `interval_s`, for the scrapes that other workers
        answer and for the processes that read no registry of their own."""
        while True:
            await asyncio.sleep(interval_s)
            self.flush()
