"""The request path after planning: the engine tries the targets, the answer goes to the
client, and one record of what happened goes to telemetry and the observers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from gateway.appkeys import TELEMETRY
from gateway.config.routes import Target
from gateway.errors import ApiError, UpstreamError
from gateway.providers.base import Usage, passed_back
from gateway.proxy.answer_text import answer_text
from gateway.proxy.call import Call
from gateway.proxy.engine import Attempt, EngineRun
from gateway.proxy.middleware import json_error
from gateway.proxy.observers import notify_finish
from gateway.proxy.relay import StreamRelay, StreamStart, open_stream
from gateway.proxy.runtime import ProviderRuntime
from gateway.telemetry.recorder import RequestRecord, price_of

# An OpenAI-shaped body, its usage, and the provider's headers the client gets back.
Completed = tuple[bytes, Usage | None, dict[str, str]]
# A provider's answer body in our shape, with its usage.
ReadAnswer = Callable[[bytes], tuple[bytes, Usage | None]]


class Ending(Protocol):
    """How a call ended, beyond what the engine knows: a `StreamRelay` or an `Answered`."""

    @property
    def status(self) -> int: ...
    @property
    def error(self) -> str: ...
    @property
    def usage(self) -> Usage | None: ...
    @property
    def ttft_s(self) -> float | None: ...
    @property
    def upstream_s(self) -> float: ...  # beyond the engine's attempts (a relay's reads)
    @property
    def answer(self) -> str | None: ...


@dataclass(slots=True)
class Answered:
    response: web.StreamResponse | None
    status: int
    error: str = ""
    usage: Usage | None = None
    answer: str | None = None
    ttft_s: float | None = None
    upstream_s: float = 0.0


CANCELLED = Answered(None, 499, "client_disconnected")  # the client went away
FAILED = Answered(None, 500, "internal_error")  # a bug: the middleware answers 500


async def serve(
    request: web.Request,
    call: Call,
    attempt: Attempt[Completed],
    opener: Attempt[StreamStart] = open_stream,
) -> web.StreamResponse:
    """A call to its answer; `attempt` is what one non-streamed attempt does (a chat
    completion, embeddings), `opener` what opens one stream. Whatever happens, one record."""
    run = EngineRun(call)
    ending: Ending = CANCELLED
    try:
        if not call.stream:
            answered = ending = await _answer(call, run, run.first_success(attempt))
        else:
            opened = ending = await _open(call, run, opener)
            if isinstance(opened, StreamRelay):
                assert run.target is not None
                headers = call.gateway_headers(run.target, run.attempts)
                passed_back(opened.start.response.headers, headers)
                return await opened.to_client(request, headers)
            answered = opened
        assert answered.response is not None
        return answered.response
    except asyncio.CancelledError:
        raise
    except BaseException:
        ending = FAILED
        raise
    finally:
        finish(request.app, call, run, ending)


def finish(app: web.Application, call: Call, run: EngineRun, ending: Ending) -> None:
    record = record_of(call, run, ending)
    app[TELEMETRY].record(record, call.runtime.config)  # the config the request started with
    if call.ticket is not None:  # a limited key: its real usage corrects the estimate
        call.ticket.settle(record)
    if call.watchers:
        notify_finish(call, record)


def record_of(call: Call, run: EngineRun, ending: Ending) -> RequestRecord:
    """What happened; with tracing on, the call's spans end with it."""
    target = run.target
    model = target.model if target is not None else ""
    plan = call.plan
    record = RequestRecord(
        call.request_id,
        call.path,
        route=plan.route.name,
        prompt=plan.prompt,
        version=plan.version,
        key=call.key,
        team=call.team,
        user=call.user,
        role=call.policy.role,
        primary_request_id=call.primary_request_id,
        stream=call.stream,
        provider=target.provider if target is not None else "",
        model=model,
        status=ending.status,
        error=ending.error,
        attempts=run.attempts,
        latency_s=time.perf_counter() - call.started,
        upstream_s=run.upstream_s + ending.upstream_s,
        ttft_s=ending.ttft_s,
        usage=ending.usage,
        cost_usd=price_of(ending.usage, model, call.runtime.config),
        answer=ending.answer,
        trace_id=call.trace_id() if call.trace is not None or call.span is not None else "",
    )
    if call.span is not None:
        call.span.close(record)
    return record


def complete_chat(
    call: Call, provider: ProviderRuntime, target: Target, timeout_s: float
) -> Awaitable[Completed]:
    """An engine attempt: one non-streamed chat completion."""
    adapter = provider.adapter
    request = adapter.chat_request(provider.config, target.model, call.body, False)
    return exchange(provider, call.stamp(request), timeout_s, None, target.model, call.body)


def embed(
    call: Call, provider: ProviderRuntime, target: Target, timeout_s: float
) -> Awaitable[Completed]:
    """An engine attempt: one embeddings request."""
    request = provider.adapter.embeddings_request(provider.config, target.model, call.body)
    return exchange(provider, call.stamp(request), timeout_s, provider.adapter.embeddings_response)


async def exchange(
    provider: ProviderRuntime,
    request: Any,
    timeout_s: float,
    read: ReadAnswer | None,
    chat_model: str = "",
    asked: Mapping[str, Any] | None = None,
    as_it_came: bool = False,
) -> Completed:
    """One attempt; `read` makes our answer of the provider's (None: the adapter's chat
    completion of `chat_model`, asked with `asked`; `as_sent`: its body untouched).
    `as_it_came`: the client speaks the provider's own API, so an error that is the
    client's fault goes back to it untouched."""
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
        error = provider.adapter.error(response.status, response.headers, raw)
        if as_it_came and error.reason == "client_error":
            error.client_body = raw
        raise error
    if read is None:
        body, usage = provider.adapter.chat_response(raw, chat_model, asked)
    else:
        body, usage = read(raw)
    back: dict[str, str] = {}
    passed_back(response.headers, back)
    return body, usage, back


def as_sent(raw: bytes) -> tuple[bytes, Usage | None]:
    """A `read` for `exchange` that keeps the provider's body as it came."""
    return raw, None


def chat_cannot_carry(name: str, api: str) -> UpstreamError:
    """A field only `api` has, asked of a target that speaks chat completions only: the
    target is ineligible (the next one is tried; a 400 naming the field if none is left)."""
    return UpstreamError(
        "unsupported",
        f"'{name}' uses what only the {api} API has; this target speaks chat completions only",
        param=name,
    )


async def _answer(call: Call, run: EngineRun, attempts: Awaitable[Completed]) -> Answered:
    try:
        raw, usage, back = await attempts
    except (ApiError, UpstreamError) as error:
        return _failed(call, run, error)
    assert run.target is not None
    headers = call.gateway_headers(run.target, run.attempts)
    headers.update(back)
    headers["Content-Type"] = "application/json"  # cheaper than content_type=
    answer = answer_text(raw) if call.keep_answer else None
    return Answered(web.Response(body=raw, headers=headers), 200, usage=usage, answer=answer)


async def _open(call: Call, run: EngineRun, opener: Attempt[StreamStart]) -> StreamRelay | Answered:
    try:
        start = await run.first_success(opener, judged_at_end=True)
    except (ApiError, UpstreamError) as error:
        return _failed(call, run, error)
    assert run.target is not None
    provider = call.runtime.providers[run.target.provider]
    return StreamRelay(call, start, provider, run.target, run.probe)


def _failed(call: Call, run: EngineRun, error: ApiError | UpstreamError) -> Answered:
    if isinstance(error, ApiError):  # every target failed, or the deadline passed
        response = json_error(error)
        response.headers["X-Request-Id"] = call.request_id
        return Answered(response, error.status, run.failure)
    # The provider says the client's request is wrong: its answer goes back as it came.
    status = error.status or 400
    target = run.target or Target("", "")
    response = web.Response(
        status=status,
        body=error.client_body,
        content_type="application/json",
        headers=call.gateway_headers(target, run.attempts),
    )
    return Answered(response, status, error.reason)


async def run_unattended(
    call: Call,
    run: EngineRun,
    attempt: Attempt[Completed] = complete_chat,
    opener: Attempt[StreamStart] = open_stream,
) -> Ending:
    """A call nobody waits on (a shadow copy, a test run, a replay): through the engine
    as any call, a stream read to its end with nobody to send it to."""
    try:
        if not call.stream:
            raw, usage, _ = await run.first_success(attempt)
            return Answered(None, 200, usage=usage, answer=answer_text(raw))
        start: StreamStart = await run.first_success(opener)
    except ApiError as error:  # every target failed, or the deadline passed
        return Answered(None, error.status, run.failure)
    except UpstreamError as error:  # the provider says the request is wrong
        return Answered(None, error.status or 400, error.reason)
    assert run.target is not None
    relay = StreamRelay(call, start, call.runtime.providers[run.target.provider], run.target)
    await relay.to_end()
    return relay
