"""Every Prometheus metric of the contract (SPEC §7), in one registry per app.

Labels are bounded: route, prompt, version, provider, model, status, reason, role and
the configured key *name*; never a user, a secret or a request id."""

from __future__ import annotations

from typing import Generic, TypeVar

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


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Family(
            Counter("gateway_requests_total", "Requests answered.", REQUEST_LABELS, registry=r)
        )
        self.request_duration = Family(
            Histogram(
                "gateway_request_duration_seconds",
                "End-to-end latency seen by the client.",
                TIMING_LABELS,
                buckets=LATENCY_BUCKETS,
                registry=r,
            )
        )
        self.ttft = Family(
            Histogram(
                "gateway_time_to_first_token_seconds",
                "Streaming: time to the first content byte.",
                TIMING_LABELS,
                buckets=LATENCY_BUCKETS,
                registry=r,
            )
        )
        self.upstream_duration = Family(
            Histogram(
                "gateway_upstream_duration_seconds",
                "One provider attempt, by outcome.",
                ("provider", "model", "outcome"),
                buckets=LATENCY_BUCKETS,
                registry=r,
            )
        )
        self.overhead = Family(
            Histogram(
                "gateway_overhead_seconds",
                "Time the gateway itself added to a request.",
                ("route",),
                buckets=OVERHEAD_BUCKETS,
                registry=r,
            )
        )
        self.tokens = Family(
            Counter("gateway_tokens_total", "Tokens by type.", (*SPEND_LABELS, "type"), registry=r)
        )
        self.cost = Family(
            Counter(
                "gateway_cost_usd_total",
                "Cost in USD from the pricing table.",
                SPEND_LABELS,
                registry=r,
            )
        )
        self.unpriced = Family(
            Counter(
                "gateway_unpriced_requests_total",
                "Requests whose model has no price: cost unknown.",
                ("provider", "model"),
                registry=r,
            )
        )
        self.provider_errors = Family(
            Counter(
                "gateway_provider_errors_total",
                "Failed provider attempts by reason.",
                ("provider", "model", "reason"),
                registry=r,
            )
        )
        self.retries = Family(
            Counter(
                "gateway_retries_total",
                "Retries of the same target.",
                ("route", "provider", "model"),
                registry=r,
            )
        )
        self.failovers = Family(
            Counter(
                "gateway_failovers_total",
                "Moves to the next target.",
                ("route", "from_provider", "to_provider"),
                registry=r,
            )
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
        self.shadow_requests = Family(
            Counter(
                "gateway_shadow_requests_total",
                "Shadow requests.",
                ("route", "prompt", "version", "outcome"),
                registry=r,
            )
        )
        self.feedback = Family(
            Counter(
                "gateway_feedback_total",
                "User feedback.",
                ("prompt", "version", "value"),
                registry=r,
            )
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
        self.rollout_events = Family(
            Counter(
                "gateway_rollout_events_total",
                "Rollout decisions.",
                ("prompt", "event"),
                registry=r,
            )
        )
        self.config_reloads = Family(
            Counter("gateway_config_reloads_total", "Config reloads.", ("result",), registry=r)
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
