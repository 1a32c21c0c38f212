"""Streaming answers: open a provider stream up to its first token (failover is still
possible until then), then relay it to the client chunk by chunk, translating and
reading usage on the way."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from gateway.config.loader import Target
from gateway.errors import UpstreamError, scrub_secret
from gateway.providers.base import StreamTranslator
from gateway.providers.sse import SSE_DONE, sse_error
from gateway.proxy.answer_text import StreamAnswer
from gateway.proxy.idle_timeout import IdleTimeout
from gateway.proxy.resilience import CircuitBreaker
from gateway.proxy.runtime import ProviderRuntime
from gateway.proxy.transport import UpstreamResponse
from gateway.telemetry.metrics import Metrics
from gateway.telemetry.recorder import Outcome

_SSE_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


class _StreamResponse(web.StreamResponse):
    # Headers wait for the first body write and go out in the same packet (aiohttp's
    # `Response` does the same); a stream is only started once its first token is here.
    _send_headers_immediately = False


@dataclass
class StreamStart:
    """A provider stream that has produced its first token, not yet sent to the client."""

    response: UpstreamResponse
    translator: StreamTranslator
    pending: bytes  # SSE bytes read up to the first token
    until: float  # event-loop time: the end of this attempt's total time


async def open_stream(
    provider: ProviderRuntime,
    target: Target,
    body: Mapping[str, Any],
    include_usage: bool,
    timeout_s: float,
    outcome: Outcome,
) -> StreamStart:
    adapter = provider.adapter
    request = adapter.chat_request(provider.config, target.model, body, True)
    wait_s = min(provider.config.first_token_timeout_s, timeout_s)
    until = asyncio.get_running_loop().time() + timeout_s
    response: UpstreamResponse | None = None
    try:
        async with asyncio.timeout(wait_s):
            response = await provider.transport.send(request, provider.config.connect_timeout_s)
            if response.status >= 300:
                raw = await response.read()
                raise adapter.error(response.status, response.headers, raw)
            translator = adapter.chat_stream(target.model, include_usage)
            pending = b""
            while not (translator.content_started or translator.finished):
                chunk = await response.next_chunk()
                if not chunk:
                    raise UpstreamError(
                        "stream_cut", "provider ended the stream before the first token"
                    )
                pending += translator.feed_bytes(chunk)
        return StreamStart(response, translator, pending, until)
    except BaseException as exc:
        if response is not None:
            response.release()
        if isinstance(exc, TimeoutError):
            raise UpstreamError("timeout", f"no first token within {wait_s:.3g}s") from None
        raise


async def relay_stream(
    request: web.Request,
    start: StreamStart,
    outcome: Outcome,
    headers: dict[str, str],
    provider: ProviderRuntime,
    target: Target,
    breaker: CircuitBreaker,
    metrics: Metrics,
    deadline: float,
) -> web.StreamResponse:
    """Send the stream on. After the first byte there is no failover: a failure ends the
    stream with an error event and no [DONE], and counts as an error."""
    translator = start.translator
    response = _StreamResponse(status=200, headers={**_SSE_HEADERS, **headers})
    outcome.status = 200
    kept = StreamAnswer() if outcome.keep_answer else None
    if kept is not None:
        kept.add(start.pending)
    try:
        await response.prepare(request)
        if translator.content_started:
            outcome.ttft_s = time.perf_counter() - outcome.started
        last = start.pending
        if not translator.finished:
            if last:
                await response.write(last)  # the headers go out with it
            try:
                last = await _relay(start, response, outcome, kept, provider.config.idle_timeout_s)
            except TimeoutError:
                now = asyncio.get_running_loop().time()
                if now >= deadline - 0.001:
                    # The request's deadline, not the target, ran out: no verdict on it.
                    error = UpstreamError("timeout", "request deadline passed")
                    await _fail(response, outcome, metrics, None, target, error)
                else:
                    message = (
                        f"provider stream stalled (no data for {provider.config.idle_timeout_s:g}s)"
                        if now < start.until - 0.001
                        else "provider stream took longer than its total timeout"
                    )
                    error = UpstreamError("timeout", message)
                    await _fail(response, outcome, metrics, breaker, target, error)
                return response
            except UpstreamError as error:
                scrub_secret(error, provider.config.api_key.reveal())
                await _fail(response, outcome, metrics, breaker, target, error)
                return response
        await response.write_eof(last + SSE_DONE)  # one write: the last events, [DONE], end
    except ConnectionResetError:
        _client_gone(outcome)
    except asyncio.CancelledError:
        _client_gone(outcome)
        raise
    finally:
        start.response.release()
        outcome.usage = translator.usage
        if kept is not None:
            outcome.answer = kept.text()
    return response


async def _relay(
    start: StreamStart,
    response: web.StreamResponse,
    outcome: Outcome,
    kept: StreamAnswer | None,
    idle_s: float,
) -> bytes:
    """Relay the provider's reads until its stream ends properly; returns what the last
    read gave, not yet written. Raises `TimeoutError` or `UpstreamError`."""
    translator, next_chunk = start.translator, start.response.next_chunk
    # The idle gap, capped by the attempt's total time (itself within the request
    # deadline); every read starts a new gap.
    async with IdleTimeout(idle_s, start.until) as timer:
        while True:
            waited = time.perf_counter()
            chunk = await next_chunk()
            outcome.upstream_s += time.perf_counter() - waited
            # At the end a half-received event is dropped (SSE spec).
            payload = translator.feed_bytes(chunk) if chunk else b""
            if payload:
                if outcome.ttft_s is None and translator.content_started:
                    outcome.ttft_s = time.perf_counter() - outcome.started
                if kept is not None:
                    kept.add(payload)
            if translator.finished:
                return payload
            if not chunk:
                raise UpstreamError("stream_cut", "provider stream ended early")
            if payload:
                timer.not_waiting()  # a slow reader is no stalled provider
                await response.write(payload)
            timer.waiting()


def _client_gone(outcome: Outcome) -> None:
    outcome.status = 499  # the client went away; leaving stops reading the provider
    outcome.error = "client_disconnected"


async def _fail(
    response: web.StreamResponse,
    outcome: Outcome,
    metrics: Metrics,
    breaker: CircuitBreaker | None,
    target: Target,
    error: UpstreamError,
) -> None:
    outcome.status = 502  # counted as a failed request; the client already had a 200
    outcome.error = error.reason
    metrics.provider_errors.labels(target.provider, target.model, error.reason).inc()
    if breaker is not None:
        breaker.on_failure(error)
        metrics.circuit_state.labels(target.provider, target.model).set(breaker.state)
    await response.write(sse_error(error.message, "upstream_error", error.reason))
    await response.write_eof()
