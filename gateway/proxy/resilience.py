"""When to try again and when to stop trying: backoff with jitter, Retry-After,
a retry budget, and one circuit breaker per target."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from enum import IntEnum

from gateway.config.loader import ProviderConfig, RouteConfig
from gateway.errors import UpstreamError

Clock = Callable[[], float]


class CircuitState(IntEnum):
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitBreaker:
    """Opens on consecutive failures or on an error rate over a sliding window (with a
    minimum of requests); after a cool-down lets exactly one probe through."""

    _SLICES = 10

    def __init__(self, provider: ProviderConfig, clock: Clock = time.monotonic) -> None:
        self._threshold = provider.breaker_consecutive_failures
        self._max_error_rate = provider.breaker_error_rate
        self._min_requests = provider.breaker_min_requests
        self._slice_s = provider.breaker_window_s / self._SLICES
        self._cooldown_s = provider.breaker_cooldown_s
        self._clock = clock
        self.state = CircuitState.CLOSED
        self.shown_state: CircuitState | None = None  # what gateway_circuit_state last showed
        self._consecutive = 0
        self._opened_at = 0.0
        self._cooldown_until = 0.0
        self._probe_in_flight = False
        # Sliding window: per-slice [requests, failures], keyed by slice number.
        self._window: dict[int, list[int]] = {}

    def allow(self) -> bool:
        """May a request go to this target now? A half-open breaker admits one probe."""
        if self.state is CircuitState.CLOSED:
            return True
        if self.state is CircuitState.OPEN:
            if self._clock() < self._cooldown_until:
                return False
            self.state = CircuitState.HALF_OPEN
            self._probe_in_flight = False
        if self._probe_in_flight:
            return False
        self._probe_in_flight = True
        return True

    def retry_after_s(self) -> float:
        return max(self._cooldown_until - self._clock(), 0.0)

    def on_success(self, probe: bool = True) -> None:
        """`probe`: this request was let through by a half-open breaker. One that began
        while the circuit was closed says nothing of a circuit opened since."""
        self._count(failed=False)
        self._consecutive = 0
        if probe and self.state is not CircuitState.CLOSED:
            self.state = CircuitState.CLOSED
            self._probe_in_flight = False
            self._window.clear()

    def on_failure(self, error: UpstreamError) -> None:
        if error.reason in ("client_error", "circuit_open", "guard_failed"):
            self.release_probe()  # the target answered properly; not its fault
            return
        self._count(failed=True)
        self._consecutive += 1
        opens = (
            self.state is CircuitState.HALF_OPEN
            or error.reason == "auth_error"
            or self._consecutive >= self._threshold
            or self._rate_exceeded()
        )
        if opens:
            self._open(self._cooldown_s)
        if (
            self.state is CircuitState.OPEN
            and error.reason == "rate_limited"
            and error.retry_after_s
        ):
            # The provider told us when to come back: do not knock before then.
            self._cooldown_until = max(self._cooldown_until, self._clock() + error.retry_after_s)

    def release_probe(self) -> None:
        """A probe that ended without a verdict (client went away, client error)."""
        if self.state is CircuitState.HALF_OPEN:
            self._probe_in_flight = False

    def _open(self, cooldown_s: float) -> None:
        self.state = CircuitState.OPEN
        self._opened_at = self._clock()
        self._cooldown_until = self._opened_at + cooldown_s
        self._probe_in_flight = False

    def _count(self, failed: bool) -> None:
        now_slice = int(self._clock() / self._slice_s)
        counts = self._window.get(now_slice)
        if counts is None:
            oldest = now_slice - self._SLICES
            for key in [k for k in self._window if k <= oldest]:
                del self._window[key]
            counts = self._window[now_slice] = [0, 0]
        counts[0] += 1
        counts[1] += failed

    def window(self) -> tuple[int, int]:
        """Requests and failures over the sliding window."""
        oldest = int(self._clock() / self._slice_s) - self._SLICES
        requests = failures = 0
        for key, (n, f) in self._window.items():
            if key > oldest:
                requests += n
                failures += f
        return requests, failures

    def _rate_exceeded(self) -> bool:
        requests, failures = self.window()
        return requests >= self._min_requests and failures / requests >= self._max_error_rate

    def report(self) -> dict[str, object]:
        requests, failures = self.window()
        return {
            "circuit": self.state.name.lower(),
            "retry_after_s": round(self.retry_after_s(), 3),
            "consecutive_failures": self._consecutive,
            "window_s": self._slice_s * self._SLICES,
            "window_requests": requests,
            "window_error_rate": round(failures / requests, 4) if requests else None,
        }


class RetryBudget:
    """Retries may add at most `ratio` to the load: each request deposits `ratio` of a
    token, each retry spends one. Keeps an outage from being multiplied by retries."""

    def __init__(self, ratio: float, reserve: float = 10.0) -> None:
        self._ratio = ratio
        self._cap = reserve
        self._tokens = reserve

    def deposit(self) -> None:
        self._tokens = min(self._tokens + self._ratio, self._cap)

    def withdraw(self) -> bool:
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


def backoff_s(route: RouteConfig, retry: int, rng: random.Random | None = None) -> float:
    """Full-jitter exponential backoff for the `retry`-th retry (0-based)."""
    # 2.0**n, not 2**n: an int that large does not convert to a float.
    ceiling = min(route.backoff_max_s, route.backoff_initial_s * 2.0 ** min(retry, 64))
    return (rng or random).uniform(0, ceiling)


def retry_delay_s(route: RouteConfig, error: UpstreamError, retry: int) -> float | None:
    """How long to wait before retrying the same target, or None: fail over now."""
    if not error.retryable or error.reason in ("auth_error", "circuit_open"):
        return None
    if error.retry_after_s is not None:
        if error.retry_after_s > route.retry_after_max_s:
            return None
        return error.retry_after_s
    return backoff_s(route, retry)
