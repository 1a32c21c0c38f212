"""The one attempt engine: try a call's targets in plan order, each retried as its route
and policy allow, within the call's deadline; the first success wins.

Every kind of call goes through here (primary requests, shadow copies; test runs and
replays to come), so a fix to timeouts, retries or breakers is made once. An `EngineRun`
is what happened: which target answered, how many attempts, how long upstream."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from gateway.config.routes import Target
from gateway.errors import ApiError, UpstreamError, scrub_secret
from gateway.proxy.call import Call
from gateway.proxy.resilience import CircuitBreaker, CircuitState, RetryBudget, retry_delay_s
from gateway.proxy.runtime import ProviderRuntime
from gateway.telemetry.metrics import Metrics

T = TypeVar("T")
# One attempt at one target, within `timeout_s`; raises `UpstreamError`.
Attempt = Callable[[Call, ProviderRuntime, Target, float], Awaitable[T]]
# A provider's words on our credentials may quote part of the key: never shown.
_AUTH_MESSAGE = "provider refused the gateway's credentials for this target"


class EngineRun:
    """One call's way through its targets. Written by the engine only; read by whoever
    turns it into an answer and a record."""

    __slots__ = (
        "attempts",
        "call",
        "failure",
        "failures",
        "metrics",
        "probe",
        "target",
        "upstream_s",
    )

    def __init__(self, call: Call) -> None:
        self.call = call
        self.metrics: Metrics = call.runtime.parts.metrics
        self.attempts = 0
        self.upstream_s = 0.0
        self.target: Target | None = None  # the last one tried: the one that answered
        self.failures: list[tuple[Target, UpstreamError]] = []
        self.failure = ""  # when every target failed: the reason the record gives
        self.probe = False  # the answering attempt was a half-open circuit's probe

    async def first_success(self, attempt: Attempt[T], judged_at_end: bool = False) -> T:
        """The first answer. Raises `ApiError` when every target failed or the deadline
        passed, `UpstreamError(client_error)` when a provider says the request is wrong
        (to be handed back as it came). `judged_at_end`: the answer is a stream whose
        reader gives the target's breaker its verdict when the stream ends."""
        call = self.call
        route, health = call.plan.route, call.policy.health
        budget = call.runtime.parts.budget(route.name, route.retry_budget_ratio)
        if health:
            budget.deposit()
        previous: Target | None = None
        targets = call.plan.targets
        for index, target in enumerate(targets):
            if call.expired():
                break
            if previous is not None and health:
                self.metrics.failovers.labels(route.name, previous.provider, target.provider).inc()
            previous = target
            later = len(targets) - index - 1  # targets left to fail over to after this one
            found = await self._try_target(target, attempt, budget, judged_at_end, later)
            if found is not None:
                return found[0]
        raise self._exhausted(deadline_passed=call.expired())

    async def _try_target(
        self,
        target: Target,
        attempt: Attempt[T],
        budget: RetryBudget,
        judged_at_end: bool,
        later: int,
    ) -> tuple[T] | None:
        """One target, retried while the error, the route's policy, the retry budget, the
        circuit and the deadline all allow; None when it is time to move on. Each attempt
        has a per-try limit that leaves the `later` targets their share of the deadline."""
        call, metrics = self.call, self.metrics
        route, policy = call.plan.route, call.policy
        provider = call.runtime.providers[target.provider]
        breaker = call.runtime.breaker(provider.config, target.model)
        self.target = target
        loop = asyncio.get_running_loop()
        retry = 0
        while True:
            remaining = call.deadline - loop.time()
            if remaining <= 0:
                return None
            if policy.health:
                if not breaker.allow():
                    if retry == 0:  # skipped without a call: say so
                        self._circuit_open(target, breaker)
                    return None
                self.probe = breaker.state is CircuitState.HALF_OPEN
                show_circuit(metrics, target, breaker)  # a probe makes it half-open
                if retry:
                    metrics.retries.labels(route.name, target.provider, target.model).inc()
            self.attempts += 1
            began = time.perf_counter()
            limit = min(remaining, provider.config.total_timeout_s)
            if route.per_try_timeout_s:
                limit = min(limit, route.per_try_timeout_s)
            elif later:
                limit = min(limit, remaining / (later + 1))
            try:
                result = await attempt(call, provider, target, limit)
            except UpstreamError as error:
                self._failed(target, provider, breaker, error, time.perf_counter() - began)
                delay = self._retry_in(error, retry, breaker, budget)
                if delay is None:
                    return None
                retry += 1
                await asyncio.sleep(delay)
                continue
            except BaseException:
                if policy.health:
                    breaker.release_probe()
                raise
            spent = time.perf_counter() - began
            self.upstream_s += spent
            if policy.health:
                metrics.upstream_duration.labels(target.provider, target.model, "ok").observe(spent)
                if not judged_at_end:
                    breaker.on_success(self.probe)
                    show_circuit(metrics, target, breaker)
            return (result,)

    def _retry_in(
        self, error: UpstreamError, retry: int, breaker: CircuitBreaker, budget: RetryBudget
    ) -> float | None:
        """How long to wait before trying the same target again; None: move on."""
        call = self.call
        route = call.plan.route
        delay = retry_delay_s(route, error, retry) if call.policy.retries else None
        if (
            delay is None
            or retry >= route.retries_per_target
            or breaker.state is not CircuitState.CLOSED
            or asyncio.get_running_loop().time() + delay >= call.deadline
            or not budget.withdraw()
        ):
            return None
        return delay

    def _failed(
        self,
        target: Target,
        provider: ProviderRuntime,
        breaker: CircuitBreaker,
        error: UpstreamError,
        spent: float,
    ) -> None:
        """Take note of a failed attempt; a client error goes on up as it came."""
        if error.reason == "unsupported":  # found before any call: not retried either
            self._ineligible(target, breaker, error)
            return
        scrub_secret(error, provider.config.api_key.reveal())
        self.upstream_s += spent
        if self.call.policy.health:
            metrics = self.metrics
            metrics.upstream_duration.labels(target.provider, target.model, error.reason).observe(
                spent
            )
            if error.reason == "timeout" and self.attempts > 1 and self.call.expired():
                # What was left of the deadline ran out, after earlier attempts had used
                # the rest: no verdict on this target.
                breaker.release_probe()
            else:
                breaker.on_failure(error)
            show_circuit(metrics, target, breaker)
            if error.reason not in ("client_error", "guard_failed"):  # it answered
                metrics.provider_errors.labels(target.provider, target.model, error.reason).inc()
        if error.reason == "client_error":
            raise error
        self.failures.append((target, error))

    def _ineligible(self, target: Target, breaker: CircuitBreaker, error: UpstreamError) -> None:
        """The target cannot honour the request (its adapter said so before sending):
        no attempt was made, so no verdict on its health, no retry and no retry budget
        spent; counted as a provider error, and the next target is tried."""
        self.attempts -= 1
        if self.call.policy.health:
            breaker.release_probe()
            self.metrics.provider_errors.labels(target.provider, target.model, error.reason).inc()
        self.failures.append((target, error))

    def _circuit_open(self, target: Target, breaker: CircuitBreaker) -> None:
        error = UpstreamError("circuit_open", "circuit open", retry_after_s=breaker.retry_after_s())
        self.metrics.provider_errors.labels(target.provider, target.model, error.reason).inc()
        self.failures.append((target, error))

    def _exhausted(self, deadline_passed: bool) -> ApiError:
        failures = self.failures
        self.failure = "deadline" if deadline_passed or not failures else failures[-1][1].reason
        attempts = [
            {
                "provider": t.provider,
                "model": t.model,
                "reason": e.reason,
                "status": e.status,
                "message": _AUTH_MESSAGE if e.reason == "auth_error" else e.message,
            }
            for t, e in failures
        ]
        details: dict[str, object] = {"attempts": attempts}
        if deadline_passed:
            return ApiError(
                504,
                f"No answer within the request deadline "
                f"({self.call.runtime.config.server.request_timeout_s:g}s).",
                type_="timeout_error",
                code="deadline_exceeded",
                details=details,
            )
        reasons = {e.reason for _, e in failures}
        if reasons == {"unsupported"}:  # no target can honour it: the request must change
            return _unsupported(failures, details)
        reasons.discard("unsupported")  # the others decide: they might answer another time
        waits = [e.retry_after_s for _, e in failures if e.retry_after_s]
        retry_after = {"Retry-After": str(max(1, math.ceil(min(waits))))} if waits else {}
        if reasons <= {"rate_limited", "circuit_open"} and "rate_limited" in reasons:
            return ApiError(
                429,
                "Every target of this route is rate limited.",
                type_="rate_limit_error",
                code="rate_limited",
                headers=retry_after or {"Retry-After": "1"},
                details=details,
            )
        if reasons == {"circuit_open"}:
            return ApiError(
                503,
                "Every target of this route is failing; try again later.",
                type_="api_error",
                code="circuit_open",
                headers=retry_after or {"Retry-After": "1"},
                details=details,
            )
        summary = "; ".join(f"{t.provider}/{t.model}: {e.reason}" for t, e in failures)
        return ApiError(
            502,
            f"All targets failed ({summary}).",
            type_="api_error",
            code="upstream_failed",
            details=details,
        )


def _unsupported(
    failures: list[tuple[Target, UpstreamError]], details: dict[str, object]
) -> ApiError:
    refused = failures[0][1]
    why = "; ".join(f"{t.provider}/{t.model}: {e.message}" for t, e in failures)
    return ApiError(
        400,
        f"No target of this route can honour the request ({why}).",
        code="unsupported_parameter" if refused.param else "unsupported_endpoint",
        param=refused.param,
        details=details,
    )


def show_circuit(metrics: Metrics, target: Target, breaker: CircuitBreaker) -> None:
    if breaker.shown_state is not breaker.state:  # the gauge moves only on a change
        metrics.circuit_state.labels(target.provider, target.model).set(breaker.state)
        breaker.shown_state = breaker.state
