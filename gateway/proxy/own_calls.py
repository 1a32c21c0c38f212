"""Calls the gateway makes itself: a test run's case or a replayed request, sent to a
pinned prompt version through the same planning, engine and stream reader as a
client's request, under the `TEST` or `REPLAY` policy.

Observers never see them (no capture, no feedback index, no rollout counts, no
shadow copy); telemetry records them with their role, so every metric tells them
apart from `primary` traffic."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from gateway.appkeys import PROMPTS, RUNTIME, TELEMETRY
from gateway.errors import ApiError, DomainError, api_error
from gateway.proxy.call import Call, Policy
from gateway.proxy.engine import EngineRun
from gateway.proxy.ingress import GATEWAY_FIELDS, prompted_body
from gateway.proxy.pipeline import record_of, run_unattended
from gateway.proxy.routing import PROMPT_PREFIX, plan_prompt_route
from gateway.telemetry.recorder import RequestRecord

OWN_PATH = "/v1/chat/completions"


async def call_pinned(
    app: web.Application,
    prompt: str,
    version: str,
    body: Mapping[str, Any],
    policy: Policy,
    timeout_s: float | None = None,
    run_id: str = "",
) -> RequestRecord:
    """`body` (a chat completion request: messages, params, `prompt_variables`,
    `stream`) sent to `prompt:PROMPT@VERSION`; what happened, answer text included.
    A request the gateway refuses (a missing variable, an unknown version) is a record
    with its status and error code, never an exception. With tracing on, the call is
    a trace of its own, its root span naming `run_id` (the test run or the replay)."""
    runtime = app[RUNTIME].current
    telemetry = app[TELEMETRY]
    started = time.perf_counter()
    request_id = telemetry.new_request_id()
    model = f"{PROMPT_PREFIX}{prompt}@{version}"
    try:
        plan, pinned = plan_prompt_route(runtime, app[PROMPTS].current, model, None, None)
        client_body = {**body, "model": model}
        upstream = {k: v for k, v in client_body.items() if k not in GATEWAY_FIELDS}
        made = prompted_body(pinned, client_body, upstream)
    except (ApiError, DomainError) as refused:
        error = refused if isinstance(refused, ApiError) else api_error(refused)
        record = _refused(request_id, prompt, version, policy, error, started)
        telemetry.record(record, runtime.config)
        return record
    stream = body.get("stream") is True
    limit = timeout_s if timeout_s is not None else runtime.config.server.request_timeout_s
    call = Call(
        request_id,
        started,
        OWN_PATH,
        runtime,
        plan,
        client_body=client_body,
        body=made.body,
        deadline=asyncio.get_running_loop().time() + limit,
        policy=policy,
        stream=stream,
        variables=made.variables,
        prompt_messages=made.messages,
        prompt_params=made.params,
        no_capture=True,
        keep_answer=True,
    )
    if telemetry.tracing is not None:
        call.span = telemetry.tracing.own(policy.role, run_id, prompt, version)
    run = EngineRun(call)
    record = record_of(call, run, await run_unattended(call, run))
    telemetry.record(record, runtime.config)
    return record


def _refused(
    request_id: str, prompt: str, version: str, policy: Policy, error: ApiError, started: float
) -> RequestRecord:
    return RequestRecord(
        request_id,
        OWN_PATH,
        prompt=prompt,
        version=version,
        role=policy.role,
        status=error.status,
        error=error.code or "invalid_request",
        latency_s=time.perf_counter() - started,
    )
