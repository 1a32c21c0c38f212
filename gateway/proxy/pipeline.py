"""The request path after validation: try the plan's targets in order, with retries,
circuit breakers and one deadline, then hand the answer to the client."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from aiohttp import web

from gateway.config.loader import Target
from gateway.errors import ApiError, UpstreamError, scrub_secret
from gateway.providers.base import Usage
from gateway.proxy.answer_text import answer_text
from gateway.proxy.relay import open_stream, relay_stream
from gateway.proxy.resilience import CircuitBreaker, CircuitState, RetryBudget, retry_delay_s
from gateway.proxy.routing import RoutePlan
from gateway.proxy.runtime import ProviderRuntime, Runtime
from gateway.telemetry.metrics import Metrics
from gateway.telemetry.recorder import Outcome

T = TypeVar("T")
# A provider's words on our credentials may quote part of the key: never shown.
_AUTH_MESSAGE = "provider refused the gateway's credentials for this target"
Attempt = Callable[[ProviderRuntime, Target, float], Awaitable[T]]


@dataclass
class Call:
    """One client request on its way through the plan."""

    runtime: Runtime
    plan: RoutePlan
    body: Mapping[str, Any]
    outcome: Outcome
    metrics: Metrics
    deadline: float  # event-loop time
    stream: bool = False
    variables: Mapping[str, Any] = field(default_factory=dict)  # prompt variables
    no_capture: bool = False  # the client said X-Gateway-No-Capture: 1

    def expired(self) -> bool:
        # A timer may fire a hair before its time (clock resolution): allow a millisecond.
        return asyncio.get_running_loop().time() >= self.deadline - 0.001

    def gateway_headers(self, target: Target) -> dict[str, str]:
        headers = {
            "X-Gateway-Route": self.plan.route.name,
            "X-Gateway-Provider": target.provider,
            "X-Gateway-Model": target.model,
            "X-Gateway-Attempts": str(self.outcome.attempts),
        }
        if self.plan.version:
            headers["X-Gateway-Prompt-Version"] = self.plan.version
        return headers


async def chat(request: web.Request, call: Call, stream: bool) -> web.StreamResponse:
    try:
        if not stream:
            (raw, usage), target = await _try_targets(call, partial(_complete, call))
            return _answer(call, target, raw, usage)
        return await _stream(request, call)
    except UpstreamError as error:  # the provider says the client's request is wrong
        return _passed_back(call, error)


async def embeddings(call: Call) -> web.Response:
    try:
        (raw, usage), target = await _try_targets(call, partial(_embed, call))
    except UpstreamError as error:
        return _passed_back(call, error)
    return _answer(call, target, raw, usage)


def _passed_back(call: Call, error: UpstreamError) -> web.Response:
    call.outcome.status = error.status or 400
    call.outcome.error = error.reason
    target = Target(call.outcome.provider, call.outcome.model)
    return web.Response(
        status=call.outcome.status,
        body=error.client_body,
        content_type="application/json",
        headers=call.gateway_headers(target),
    )


async def _stream(request: web.Request, call: Call) -> web.StreamResponse:
    options = call.body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    start, target = await _try_targets(
        call, lambda p, t, s: open_stream(p, t, call.body, include_usage, s, call.outcome)
    )
    provider = call.runtime.providers[target.provider]
    breaker = call.runtime.breaker(provider.config, target.model)
    return await relay_stream(
        request,
        start,
        call.outcome,
        call.gateway_headers(target),
        provider,
        target,
        breaker,
        call.metrics,
        call.deadline,
    )


def _answer(call: Call, target: Target, raw: bytes, usage: Usage | None) -> web.Response:
    call.outcome.status = 200
    call.outcome.usage = usage
    if call.outcome.keep_answer:
        call.outcome.answer = answer_text(raw)
    headers = call.gateway_headers(target)
    headers["Content-Type"] = "application/json"  # cheaper than content_type=
    return web.Response(body=raw, headers=headers)


def _complete(
    call: Call, provider: ProviderRuntime, target: Target, timeout_s: float
) -> Awaitable[tuple[bytes, Usage | None]]:
    request = provider.adapter.chat_request(provider.config, target.model, call.body, False)
    return _exchange(provider, request, timeout_s, target.model)  # one coroutine an attempt


def _embed(
    call: Call, provider: ProviderRuntime, target: Target, timeout_s: float
) -> Awaitable[tuple[bytes, Usage | None]]:
    request = provider.adapter.embeddings_request(provider.config, target.model, call.body)
    return _exchange(provider, request, timeout_s, None)


async def _exchange(
    provider: ProviderRuntime, request: Any, timeout_s: float, chat_model: str | None
) -> tuple[bytes, Usage | None]:
    """One attempt; `chat_model` is None for embeddings."""
    try:
        async with asyncio.timeout(timeout_s):
            response = await provider.transport.send(request, provider.config.connect_timeout_s)
            try:
                raw = await response.read()
            finally:
                response.release()
    except TimeoutError:
        raise UpstreamError("timeout", f"no answer within {timeout_s:.3g}s") from None
    if response.status >= 300:
        raise provider.adapter.error(response.status, response.headers, raw)
    if chat_model is None:
        return provider.adapter.embeddings_response(raw)
    return provider.adapter.chat_response(raw, chat_model)


async def _try_targets(call: Call, attempt: Attempt[T]) -> tuple[T, Target]:
    """Each target in plan order, each retried per the route's policy within the retry
    budget; returns the first success. A client error ends the loop as it came."""
    route, metrics = call.plan.route, call.metrics
    budget = call.runtime.parts.budget(route.name, route.retry_budget_ratio)
    budget.deposit()
    failures: list[tuple[Target, UpstreamError]] = []
    previous: Target | None = None
    for target in call.plan.targets:
        if call.expired():
            break
        if previous is not None:
            metrics.failovers.labels(route.name, previous.provider, target.provider).inc()
        previous = target
        found = await _try_target(call, target, attempt, budget, failures)
        if found is not None:
            return found[0], target
    raise _exhausted(call, failures, deadline_passed=call.expired())


async def _try_target(
    call: Call,
    target: Target,
    attempt: Attempt[T],
    budget: RetryBudget,
    failures: list[tuple[Target, UpstreamError]],
) -> tuple[T] | None:
    """One target, retried while the error, the route's policy, the retry budget, the
    circuit and the deadline all allow; None when it is time to move on."""
    route, metrics, outcome = call.plan.route, call.metrics, call.outcome
    provider = call.runtime.providers[target.provider]
    breaker = call.runtime.breaker(provider.config, target.model)
    outcome.provider, outcome.model = target.provider, target.model
    loop = asyncio.get_running_loop()
    retry = 0
    while True:
        remaining = call.deadline - loop.time()
        if remaining <= 0:
            return None
        if not breaker.allow():
            if retry == 0:  # skipped without a call: say so
                error = UpstreamError(
                    "circuit_open", "circuit open", retry_after_s=breaker.retry_after_s()
                )
                metrics.provider_errors.labels(target.provider, target.model, error.reason).inc()
                failures.append((target, error))
            return None
        show_circuit(metrics, target, breaker)  # a probe makes it half-open
        if retry:
            metrics.retries.labels(route.name, target.provider, target.model).inc()
        outcome.attempts += 1
        began = time.perf_counter()
        try:
            result = await attempt(
                provider, target, min(remaining, provider.config.total_timeout_s)
            )
        except UpstreamError as error:
            scrub_secret(error, provider.config.api_key.reveal())
            spent = time.perf_counter() - began
            outcome.upstream_s += spent
            metrics.upstream_duration.labels(target.provider, target.model, error.reason).observe(
                spent
            )
            if error.reason == "timeout" and outcome.attempts > 1 and call.expired():
                # What was left of the deadline ran out, after earlier attempts had used
                # the rest: no verdict on this target.
                breaker.release_probe()
            else:
                breaker.on_failure(error)
            show_circuit(metrics, target, breaker)
            if error.reason == "client_error":
                raise
            metrics.provider_errors.labels(target.provider, target.model, error.reason).inc()
            failures.append((target, error))
            delay = retry_delay_s(route, error, retry)
            if (
                delay is None
                or retry >= route.retries_per_target
                or breaker.state is not CircuitState.CLOSED
                or loop.time() + delay >= call.deadline
                or not budget.withdraw()
            ):
                return None
            retry += 1
            await asyncio.sleep(delay)
            continue
        except BaseException:
            breaker.release_probe()
            raise
        spent = time.perf_counter() - began
        outcome.upstream_s += spent
        metrics.upstream_duration.labels(target.provider, target.model, "ok").observe(spent)
        breaker.on_success()
        show_circuit(metrics, target, breaker)
        return (result,)


def show_circuit(metrics: Metrics, target: Target, breaker: CircuitBreaker) -> None:
    if breaker.shown_state is not breaker.state:  # the gauge moves only on a change
        metrics.circuit_state.labels(target.provider, target.model).set(breaker.state)
        breaker.shown_state = breaker.state


def _exhausted(
    call: Call, failures: list[tuple[Target, UpstreamError]], deadline_passed: bool
) -> ApiError:
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
    call.outcome.error = failures[-1][1].reason if failures else "deadline"
    if deadline_passed:
        call.outcome.error = "deadline"
        return ApiError(
            504,
            f"No answer within the request deadline "
            f"({call.runtime.config.server.request_timeout_s:g}s).",
            type_="timeout_error",
            code="deadline_exceeded",
            details=details,
        )
    reasons = {e.reason for _, e in failures}
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
