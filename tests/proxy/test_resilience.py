"""Retry policy and circuit breakers, on their own, with a fake clock."""

from __future__ import annotations

import random

import pytest

from gateway.config.loader import ProviderConfig, RouteConfig
from gateway.errors import Reason, UpstreamError
from gateway.proxy.resilience import (
    CircuitBreaker,
    CircuitState,
    RetryBudget,
    backoff_s,
    retry_delay_s,
)


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def provider(**settings: float) -> ProviderConfig:
    defaults: dict[str, float] = {
        "breaker_consecutive_failures": 3,
        "breaker_error_rate": 0.5,
        "breaker_min_requests": 10,
        "breaker_window_s": 10.0,
        "breaker_cooldown_s": 5.0,
    }
    return ProviderConfig(name="p", type="openai", **{**defaults, **settings})  # type: ignore[arg-type]


def error(reason: Reason = "server_error", retry_after_s: float | None = None) -> UpstreamError:
    return UpstreamError(reason, f"test {reason}", retry_after_s=retry_after_s)


def state(breaker: CircuitBreaker) -> CircuitState:
    return breaker.state  # read afresh each time (no narrowing across calls)


ROUTE = RouteConfig(
    name="r",
    targets=(),
    backoff_initial_s=0.1,
    backoff_max_s=1.0,
    retry_after_max_s=5.0,
)


# --- circuit breaker ---------------------------------------------------------------


def test_opens_after_consecutive_failures_and_success_resets_the_count() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(provider(), clock)
    breaker.on_failure(error())
    breaker.on_failure(error())
    breaker.on_success()  # the run is broken
    breaker.on_failure(error())
    breaker.on_failure(error())
    assert state(breaker) is CircuitState.CLOSED
    assert breaker.allow()
    breaker.on_failure(error("timeout"))
    assert state(breaker) is CircuitState.OPEN
    assert not breaker.allow()
    assert breaker.retry_after_s() == pytest.approx(5.0)


def test_opens_on_error_rate_once_the_window_has_enough_requests() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(provider(breaker_consecutive_failures=100), clock)
    for _ in range(4):  # 8 requests, 4 failed: 50 %, but under the minimum of 10
        breaker.on_success()
        breaker.on_failure(error())
    assert state(breaker) is CircuitState.CLOSED
    breaker.on_success()
    breaker.on_failure(error())  # 10 requests, 5 failed
    assert state(breaker) is CircuitState.OPEN


def test_error_rate_forgets_requests_older_than_the_window() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(provider(breaker_consecutive_failures=100), clock)
    for _ in range(5):
        breaker.on_failure(error())
        breaker.on_success()
    clock.advance(11)  # those ten are out of the 10 s window now
    for _ in range(4):
        breaker.on_success()
        breaker.on_failure(error())
    assert state(breaker) is CircuitState.CLOSED  # 8 requests in the window: too few
    breaker.on_failure(error())
    breaker.on_failure(error())  # 10 in the window, 6 failed
    assert state(breaker) is CircuitState.OPEN


def test_half_open_after_cooldown_lets_exactly_one_probe_and_success_closes() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(provider(breaker_consecutive_failures=1), clock)
    breaker.on_failure(error())
    clock.advance(4.9)
    assert not breaker.allow()
    assert breaker.retry_after_s() == pytest.approx(0.1)
    clock.advance(0.1)
    assert breaker.allow()  # the probe
    assert state(breaker) is CircuitState.HALF_OPEN
    assert not breaker.allow()  # a second caller waits for the probe's verdict
    assert not breaker.allow()
    breaker.on_success()
    assert state(breaker) is CircuitState.CLOSED
    assert breaker.allow() and breaker.allow()


def test_a_success_that_began_while_closed_does_not_close_an_opened_circuit() -> None:
    """A long request (a stream) let through while closed ends well after the circuit
    opened: it is counted, but only the probe may close the circuit."""
    clock = FakeClock()
    breaker = CircuitBreaker(provider(breaker_consecutive_failures=1), clock)
    assert breaker.allow()  # the long one begins, closed
    breaker.on_failure(error())  # another request fails: open
    breaker.on_success(probe=False)  # the long one ends well
    assert state(breaker) is CircuitState.OPEN
    clock.advance(5)
    assert breaker.allow()  # the probe
    breaker.on_success(probe=True)
    assert state(breaker) is CircuitState.CLOSED


def test_failed_probe_opens_again_for_a_full_cooldown() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(provider(breaker_consecutive_failures=3), clock)
    for _ in range(3):
        breaker.on_failure(error())
    clock.advance(5)
    assert breaker.allow()
    breaker.on_failure(error("timeout"))  # one failure is enough when half-open
    assert state(breaker) is CircuitState.OPEN
    assert not breaker.allow()
    assert breaker.retry_after_s() == pytest.approx(5.0)
    clock.advance(5)
    assert breaker.allow()


def test_a_probe_without_verdict_lets_the_next_caller_probe() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(provider(breaker_consecutive_failures=1), clock)
    breaker.on_failure(error())
    clock.advance(5)
    assert breaker.allow()
    breaker.release_probe()  # e.g. the client went away
    assert state(breaker) is CircuitState.HALF_OPEN
    assert breaker.allow()
    assert not breaker.allow()


def test_client_errors_say_nothing_about_the_target() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(provider(breaker_consecutive_failures=1), clock)
    for _ in range(10):
        breaker.on_failure(error("client_error"))
    assert state(breaker) is CircuitState.CLOSED
    breaker.on_failure(error())
    clock.advance(5)
    assert breaker.allow()
    breaker.on_failure(error("client_error"))  # the probe got an answer: not a failure...
    assert state(breaker) is CircuitState.HALF_OPEN
    assert breaker.allow()  # ...and another probe may go


def test_auth_error_opens_at_once() -> None:
    breaker = CircuitBreaker(provider(breaker_consecutive_failures=5), FakeClock())
    breaker.on_failure(error("auth_error"))
    assert state(breaker) is CircuitState.OPEN
    assert not breaker.allow()


def test_retry_after_of_a_rate_limit_extends_an_open_circuit() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(provider(breaker_consecutive_failures=1), clock)
    breaker.on_failure(error("rate_limited", retry_after_s=60))
    assert breaker.retry_after_s() == pytest.approx(60)
    clock.advance(59)
    assert not breaker.allow()
    clock.advance(1)
    assert breaker.allow()


# --- retry budget ------------------------------------------------------------------


def test_retry_budget_spends_its_reserve_then_earns_a_ratio_per_request() -> None:
    budget = RetryBudget(ratio=0.25, reserve=2)
    assert budget.withdraw() and budget.withdraw()
    assert not budget.withdraw()
    for _ in range(3):
        budget.deposit()
    assert not budget.withdraw()  # 0.75 of a retry
    budget.deposit()
    assert budget.withdraw()
    assert not budget.withdraw()


def test_retry_budget_reserve_is_a_cap() -> None:
    budget = RetryBudget(ratio=1.0, reserve=2)
    for _ in range(100):
        budget.deposit()
    assert [budget.withdraw() for _ in range(3)] == [True, True, False]


def test_retry_budget_with_zero_ratio_never_refills() -> None:
    budget = RetryBudget(ratio=0.0, reserve=1)
    budget.deposit()
    assert budget.withdraw()
    budget.deposit()
    assert not budget.withdraw()


# --- backoff and retry delay -------------------------------------------------------


class TopRng(random.Random):
    """Always draws the top of the range: shows the ceiling."""

    def uniform(self, a: float, b: float) -> float:
        return b


def test_backoff_doubles_up_to_the_maximum() -> None:
    ceilings = [backoff_s(ROUTE, n, TopRng()) for n in range(6)]
    assert ceilings == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


def test_backoff_is_jittered_below_the_ceiling() -> None:
    rng = random.Random(7)
    draws = [backoff_s(ROUTE, 2, rng) for _ in range(200)]
    assert all(0 <= d <= 0.4 for d in draws)
    assert len({round(d, 6) for d in draws}) > 100  # spread out, not one value
    assert min(draws) < 0.1 < 0.3 < max(draws)


def test_backoff_survives_a_huge_retry_number() -> None:
    assert 0 <= backoff_s(ROUTE, 10_000) <= ROUTE.backoff_max_s


@pytest.mark.parametrize("reason", ["client_error", "stream_cut", "auth_error", "circuit_open"])
def test_no_retry_of_the_same_target(reason: Reason) -> None:
    assert retry_delay_s(ROUTE, error(reason), 0) is None


@pytest.mark.parametrize("reason", ["timeout", "connect", "server_error", "bad_response"])
def test_retryable_errors_back_off(reason: Reason) -> None:
    delays = [retry_delay_s(ROUTE, error(reason), 1) for _ in range(50)]
    assert all(d is not None and 0 <= d <= 0.2 for d in delays)


def test_retry_after_is_honoured_up_to_the_cap() -> None:
    assert retry_delay_s(ROUTE, error("rate_limited", retry_after_s=1), 0) == 1
    assert retry_delay_s(ROUTE, error("rate_limited", retry_after_s=5), 3) == 5
    assert retry_delay_s(ROUTE, error("server_error", retry_after_s=2), 0) == 2


def test_retry_after_over_the_cap_means_fail_over_now() -> None:
    assert retry_delay_s(ROUTE, error("rate_limited", retry_after_s=5.5), 0) is None
    assert retry_delay_s(ROUTE, error("rate_limited", retry_after_s=3600), 0) is None


def test_rate_limit_without_retry_after_backs_off() -> None:
    delay = retry_delay_s(ROUTE, error("rate_limited"), 0)
    assert delay is not None and 0 <= delay <= 0.1
