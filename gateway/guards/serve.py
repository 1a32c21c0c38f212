"""A chat completion under output guards: the route's and the prompt's guards checked on
each answer, and the first failing guard's `on_fail` deciding what happens.

- `retry`: the same target again, up to the guard's `retries`;
- `fallback`: the next target; once none is left, the prompt's `fallback_version`
  (pinned), checked by the same guards;
- `block`: 422 `guard_failed` naming the guard (also where retry or fallback ran out);
- `flag`: the answer is delivered and queued for review;
- `hold`: nothing is delivered; 202 with the review item's id (non-streamed requests
  only: a streamed request on a hold route is a 400).

A guard needs the whole answer, so a streamed request is answered buffered."""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass, field

import orjson
from aiohttp import web

from gateway.appkeys import PROMPTS, REVIEWS, TELEMETRY
from gateway.config.guards import GuardConfig
from gateway.config.routes import Target
from gateway.errors import ApiError, UpstreamError
from gateway.guards.buffered import send_buffered, unstreamed
from gateway.guards.checks import Asked, Verdict, first_failure
from gateway.providers.base import Usage
from gateway.proxy.answer_text import answer_text
from gateway.proxy.call import Call
from gateway.proxy.engine import EngineRun
from gateway.proxy.ingress import GATEWAY_FIELDS, prompted_body
from gateway.proxy.middleware import json_error
from gateway.proxy.observers import notify_finish
from gateway.proxy.pipeline import (
    CANCELLED,
    FAILED,
    Answered,
    Completed,
    complete_chat,
    record_of,
    serve,
)
from gateway.proxy.routing import PROMPT_PREFIX, plan_prompt_route
from gateway.proxy.runtime import ProviderRuntime


def guards_of(call: Call) -> tuple[GuardConfig, ...]:
    """The route's guards, then the prompt's (each once)."""
    config = call.runtime.config
    names = list(call.plan.route.guards)
    if call.plan.prompt:
        prompt = config.prompts.get(call.plan.prompt)
        if prompt is not None:
            names += [n for n in prompt.guards if n not in names]
    return tuple(config.guards[n] for n in names if n in config.guards)


@dataclass
class GuardedAttempt:
    """An engine attempt that checks each answer; what it saw is kept for the record."""

    guards: tuple[GuardConfig, ...]
    seen: list[Verdict] = field(default_factory=list)
    failed: Verdict | None = None  # the failure that stands: block, flag or hold
    text: str = ""

    async def __call__(
        self, call: Call, provider: ProviderRuntime, target: Target, timeout_s: float
    ) -> Completed:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        asked = Asked(call.plan.route.name, call.plan.prompt, call.plan.version)
        session = call.runtime.parts.session
        retries = 0
        while True:
            completed = await complete_chat(call, provider, target, max(end - loop.time(), 0.001))
            self.text = answer_text(completed[0]) or ""
            verdict = await first_failure(self.guards, self.text, asked, session, self.seen)
            self.failed = verdict
            if verdict is None:
                return completed
            guard = verdict.guard
            if guard.on_fail == "retry" and retries < guard.retries and loop.time() < end:
                retries += 1
                continue
            if guard.on_fail == "fallback":
                raise UpstreamError("guard_failed", f"guard {guard.name}: {verdict.reason}")
            return completed


@dataclass
class Outcome:
    call: Call  # the one that answered: a fallback version's, if it came to that
    run: EngineRun
    attempt: GuardedAttempt
    completed: Completed | None = None
    error: ApiError | UpstreamError | None = None


async def serve_guarded(request: web.Request, call: Call) -> web.StreamResponse:
    guards = guards_of(call)
    if not guards:
        return await serve(request, call, complete_chat)
    outcome = Outcome(call, EngineRun(call), GuardedAttempt(guards))
    answered: Answered = CANCELLED
    try:
        if call.stream and any(g.on_fail == "hold" for g in guards):
            outcome.error = ApiError(
                400,
                "This route holds answers for review: ask without 'stream', and poll "
                "GET /v1/reviews/{id} for the answer.",
                param="stream",
                code="hold_needs_non_streaming",
            )
        else:
            if call.stream:
                call.body = unstreamed(call.body)
            outcome = await _run(request.app, outcome)
        answered = await _answer(request, outcome)
        assert answered.response is not None
        return answered.response
    except asyncio.CancelledError:
        raise
    except BaseException:
        answered = FAILED
        raise
    finally:
        _finish(request.app, outcome, answered)


async def _run(app: web.Application, outcome: Outcome) -> Outcome:
    await _engine(outcome)
    fallback = _fallback_version(outcome)
    pinned = _pinned_call(app, outcome.call, fallback) if fallback else None
    if pinned is None:
        return outcome
    first = outcome
    outcome = Outcome(pinned, EngineRun(pinned), GuardedAttempt(first.attempt.guards))
    await _engine(outcome)
    outcome.attempt.seen[:0] = first.attempt.seen
    outcome.run.attempts += first.run.attempts
    outcome.run.upstream_s += first.run.upstream_s
    return outcome


async def _engine(outcome: Outcome) -> None:
    try:
        outcome.completed = await outcome.run.first_success(outcome.attempt)
    except (ApiError, UpstreamError) as error:
        outcome.error = error


def _fallback_version(outcome: Outcome) -> str:
    """The prompt's fallback version when every target failed a `fallback` guard."""
    run, call = outcome.run, outcome.call
    if outcome.error is None or not run.failures or call.plan.pinned or not call.plan.prompt:
        return ""  # a pinned request asked for that version: no other
    if any(e.reason != "guard_failed" for _, e in run.failures):
        return ""
    prompt = call.runtime.config.prompts.get(call.plan.prompt)
    if prompt is None or prompt.fallback_version in ("", call.plan.version):
        return ""
    return prompt.fallback_version


def _pinned_call(app: web.Application, call: Call, version: str) -> Call | None:
    """The same request, to `prompt:NAME@VERSION` (the key may use the prompt already);
    None when that version cannot be planned (then the guard's failure stands)."""
    model = f"{PROMPT_PREFIX}{call.plan.prompt}@{version}"
    try:
        plan, pinned = plan_prompt_route(call.runtime, app[PROMPTS].current, model, None, None)
    except ApiError:
        return None
    upstream = {k: v for k, v in call.client_body.items() if k not in GATEWAY_FIELDS}
    made = prompted_body(pinned, call.client_body, upstream)
    return dataclasses.replace(
        call,
        plan=plan,
        body=unstreamed(made.body) if call.stream else made.body,
        variables=made.variables,
        prompt_messages=made.messages,
        prompt_params=made.params,
    )


async def _answer(request: web.Request, outcome: Outcome) -> Answered:
    call, run, attempt = outcome.call, outcome.run, outcome.attempt
    if outcome.error is not None:
        return _refused(call, run, attempt, outcome.error)
    assert outcome.completed is not None and run.target is not None
    raw, usage, back = outcome.completed
    headers = call.gateway_headers(run.target, run.attempts)
    headers.update(back)
    failed = attempt.failed
    if failed is not None and failed.guard.on_fail in ("retry", "block"):
        return _blocked(call, failed, usage)
    queue = request.app[REVIEWS]
    if failed is not None and failed.guard.on_fail == "hold":
        item = queue.new_item(call, "held", failed, raw, attempt.text)
        await queue.hold(item)
        body = orjson.dumps({"id": item.id, "object": "review", "status": "pending"})
        headers["Content-Type"] = "application/json"
        headers["X-Gateway-Review"] = item.id
        response = web.Response(status=202, body=body, headers=headers)
        return Answered(response, 202, usage=usage, answer=attempt.text)
    if failed is not None:  # flag: delivered, and queued for a look
        item = queue.new_item(call, "flagged", failed, raw, attempt.text)
        queue.flag(item)
        headers["X-Gateway-Review"] = item.id
    if call.stream:
        sent = await send_buffered(request, raw, call.include_usage, headers)
        return Answered(sent, 200, usage=usage, answer=attempt.text)
    headers["Content-Type"] = "application/json"
    return Answered(web.Response(body=raw, headers=headers), 200, usage=usage, answer=attempt.text)


def _blocked(call: Call, failed: Verdict, usage: Usage | None) -> Answered:
    error = ApiError(
        422,
        f"The answer failed the guard '{failed.guard.name}': {failed.reason}.",
        code="guard_failed",
        details={"guard": failed.guard.name},
    )
    response = json_error(error)
    response.headers["X-Request-Id"] = call.request_id
    return Answered(response, 422, "guard_failed", usage=usage)


def _refused(
    call: Call, run: EngineRun, attempt: GuardedAttempt, error: ApiError | UpstreamError
) -> Answered:
    if run.failures and all(e.reason == "guard_failed" for _, e in run.failures):
        failed = next(v for v in reversed(attempt.seen) if not v.passed)
        return _blocked(call, failed, None)
    if isinstance(error, ApiError):
        response = json_error(error)
        response.headers["X-Request-Id"] = call.request_id
        return Answered(response, error.status, run.failure)
    status = error.status or 400  # the provider says the request is wrong: as it came
    response = web.Response(
        status=status,
        body=error.client_body,
        content_type="application/json",
        headers=call.gateway_headers(run.target or Target("", ""), run.attempts),
    )
    return Answered(response, status, error.reason)


def _finish(app: web.Application, outcome: Outcome, answered: Answered) -> None:
    call = outcome.call
    record = record_of(call, outcome.run, answered)
    record.guards = [v.to_json() for v in outcome.attempt.seen]
    record.held = answered.status == 202
    metrics = call.runtime.parts.metrics
    for verdict in outcome.attempt.seen:
        labels = (verdict.guard.name, call.plan.prompt, call.plan.version, verdict.result)
        metrics.guard_results.labels(*labels).inc()
    app[TELEMETRY].record(record, call.runtime.config)
    if call.watchers:
        notify_finish(call, record)
