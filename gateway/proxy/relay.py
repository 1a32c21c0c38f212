"""Streaming answers: open a provider stream up to its first token (failover is still
possible until then), then read it to its end, translating and reading usage on the
way: to the client chunk by chunk, or, for a shadow copy, to nobody."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from gateway.config.routes import Target
from gateway.errors import UpstreamError, scrub_secret
from gateway.providers.base import StreamTranslator, UpstreamRequest, Usage
from gateway.providers.sse import SSE_DONE, sse_error
from gateway.proxy.answer_text import StreamAnswer
from gateway.proxy.call import Call
from gateway.proxy.engine import show_circuit
from gateway.proxy.idle_timeout import IdleTimeout
from gateway.proxy.runtime import ProviderRuntime
from gateway.proxy.transport import UpstreamResponse

_SSE_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}
Write = Callable[[bytes], Awaitable[None]]


class _StreamResponse(web.StreamResponse):
    # Headers wait for the first body write and go out in the same packet (aiohttp's
    # `Response` does the same); a stream is only started once its first token is here.
    _send_headers_immediately = False


class StreamEnding(Protocol):
    """How a stream in another API than chat completions ends (None: chat's way)."""

    async def done(self) -> bytes:
        """What follows the last events of a stream that ended well (chat's: [DONE])."""
        ...

    def failed(self, error: UpstreamError) -> bytes:
        """The event that ends a stream that failed after its first byte."""
        ...


@dataclass(slots=True)
class StreamStart:
    """A provider stream that has produced its first token, not yet read further."""

    response: UpstreamResponse
    translator: StreamTranslator
    pending: bytes  # SSE bytes read up to the first token
    until: float  # event-loop time: the end of this attempt's total time
    ending: StreamEnding | None = None


async def open_stream(
    call: Call, provider: ProviderRuntime, target: Target, timeout_s: float
) -> StreamStart:
    """An engine attempt: the stream up to its first token, within `timeout_s` (the
    attempt's per-try limit). Once it has begun, the stream may run for the target's
    `total_timeout_s`, within the request's deadline."""
    adapter = provider.adapter
    request = adapter.chat_request(provider.config, target.model, call.body, True)
    translator = adapter.chat_stream(target.model, call.include_usage)
    return await start_stream(call, provider, request, translator, timeout_s)


async def start_stream(
    call: Call,
    provider: ProviderRuntime,
    request: UpstreamRequest,
    translator: StreamTranslator,
    timeout_s: float,
) -> StreamStart:
    """`request` sent, its stream read by `translator` up to the first token."""
    adapter = provider.adapter
    request = call.stamp(request)
    wait_s = min(provider.config.first_token_timeout_s, timeout_s)
    now = asyncio.get_running_loop().time()
    until = min(now + provider.config.total_timeout_s, call.deadline)
    response: UpstreamResponse | None = None
    try:
        async with asyncio.timeout(wait_s):
            response = await provider.transport.send(request, provider.config.connect_timeout_s)
            if response.status >= 300:
                raw = await response.read()
                raise adapter.error(response.status, response.headers, raw)
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


class StreamRelay:
    """Reads one opened stream to its end. What happened (status, error, time to first
    token, usage, the answer's text when kept) is on the relay afterwards, however the
    stream ended, client gone included. After the first byte there is no failover: a
    failure ends the stream with an error event and no [DONE], and counts as an error.

    The target's circuit breaker hears how the stream ended, not that it began: a
    target that fails half-way through its streams is a failing target."""

    __slots__ = (
        "_judged",
        "_kept",
        "_writing",
        "call",
        "error",
        "probe",
        "provider",
        "start",
        "status",
        "target",
        "ttft_s",
        "upstream_s",
        "usage",
    )

    def __init__(
        self,
        call: Call,
        start: StreamStart,
        provider: ProviderRuntime,
        target: Target,
        probe: bool = False,  # the attempt was a half-open circuit's probe
    ) -> None:
        self.call, self.start, self.provider, self.target = call, start, provider, target
        self.probe = probe
        self._judged = False
        self._writing = False  # waiting for the client to take what was written
        self.status = 200
        self.error = ""
        self.ttft_s: float | None = None
        self.upstream_s = 0.0
        self.usage: Usage | None = None
        self._kept = StreamAnswer() if call.keep_answer else None
        if self._kept is not None:
            self._kept.add(start.pending)

    @property
    def answer(self) -> str | None:
        return None if self._kept is None else self._kept.text()

    async def to_client(self, request: web.Request, headers: dict[str, str]) -> web.StreamResponse:
        start = self.start
        response = _StreamResponse(status=200, headers={**_SSE_HEADERS, **headers})
        try:
            await response.prepare(request)
            self._first_token()
            last = start.pending
            if not start.translator.finished:
                if last:
                    await response.write(last)  # the headers go out with it
                ended = await self._read(response.write)
                if isinstance(ended, UpstreamError):
                    if self.status == 504 and request.transport is not None:
                        request.transport.abort()  # it stopped reading: it takes no more
                    else:
                        ending = start.ending
                        words = (
                            sse_error(ended.message, "upstream_error", ended.reason)
                            if ending is None
                            else ending.failed(ended)
                        )
                        await _last_words(request, response, words)
                    return response
                last = ended
            tail = SSE_DONE if start.ending is None else await start.ending.done()
            await response.write_eof(last + tail)  # one write: the last events, [DONE], end
        except ConnectionResetError:
            self._client_gone()
        except asyncio.CancelledError:
            self._client_gone()
            raise
        finally:
            self._done()
        return response

    async def to_end(self) -> None:
        """Read the stream as a client would, with nobody to send it to (a shadow copy)."""
        try:
            self._first_token()
            if not self.start.translator.finished:
                await self._read(None)
        finally:
            self._done()

    def _first_token(self) -> None:
        if self.start.translator.content_started:
            self.ttft_s = time.perf_counter() - self.call.started

    def _done(self) -> None:
        self.start.response.release()
        self.usage = self.start.translator.usage
        if self.call.policy.health and not self._judged:
            runtime, target = self.call.runtime, self.target
            breaker = runtime.breaker(self.provider.config, target.model)
            if self.start.translator.finished:
                breaker.on_success(self.probe)
                show_circuit(runtime.parts.metrics, target, breaker)
            else:  # the client went away, or the request's deadline passed: no verdict
                breaker.release_probe()

    async def _read(self, write: Write | None) -> bytes | UpstreamError:
        """Until the provider's stream ends properly: what its last read gave, not yet
        written; the error that ended it otherwise, already counted."""
        try:
            return await self._pump(write, self.provider.config.idle_timeout_s)
        except TimeoutError:
            now = asyncio.get_running_loop().time()
            passed = now >= self.call.deadline - 0.001
            if self._writing:
                # The client read too slowly to take the stream in time: no verdict on
                # the target; the record names the time that ran out.
                self.status, self.error = 504, "deadline" if passed else "timeout"
                return UpstreamError("timeout", "the client read the stream too slowly")
            if passed:
                # The request's deadline, not the target, ran out: no verdict on it.
                return self._failed(UpstreamError("timeout", "request deadline passed"), False)
            message = (
                f"provider stream stalled (no data for {self.provider.config.idle_timeout_s:g}s)"
                if now < self.start.until - 0.001
                else "provider stream took longer than its total timeout"
            )
            return self._failed(UpstreamError("timeout", message), True)
        except UpstreamError as error:
            scrub_secret(error, self.provider.config.api_key.reveal())
            return self._failed(error, True)

    async def _pump(self, write: Write | None, idle_s: float) -> bytes:
        start, kept = self.start, self._kept
        translator, next_chunk = start.translator, start.response.next_chunk
        # The idle gap, capped by the attempt's total time (itself within the request
        # deadline); every read starts a new gap.
        async with IdleTimeout(idle_s, start.until) as timer:
            while True:
                waited = time.perf_counter()
                chunk = await next_chunk()
                self.upstream_s += time.perf_counter() - waited
                # At the end a half-received event is dropped (SSE spec).
                payload = translator.feed_bytes(chunk) if chunk else b""
                if payload:
                    if self.ttft_s is None and translator.content_started:
                        self.ttft_s = time.perf_counter() - self.call.started
                    if kept is not None:
                        kept.add(payload)
                if translator.finished:
                    return payload
                if not chunk:
                    raise UpstreamError("stream_cut", "provider stream ended early")
                if payload and write is not None:
                    timer.not_waiting()  # a slow reader is no stalled provider
                    self._writing = True
                    await write(payload)
                    self._writing = False
                timer.waiting()

    def _failed(self, error: UpstreamError, judge_target: bool) -> UpstreamError:
        self.status = 502  # counted as a failed request; a client already had a 200
        self.error = error.reason
        if self.call.policy.health:
            target, runtime = self.target, self.call.runtime
            metrics = runtime.parts.metrics
            metrics.provider_errors.labels(target.provider, target.model, error.reason).inc()
            if judge_target:
                breaker = runtime.breaker(self.provider.config, target.model)
                breaker.on_failure(error)
                show_circuit(metrics, target, breaker)
                self._judged = True
        return error

    def _client_gone(self) -> None:
        self.status = 499  # the client went away; leaving stops reading the provider
        self.error = "client_disconnected"


async def _last_words(request: web.Request, response: web.StreamResponse, words: bytes) -> None:
    """The error event that ends a failed stream. A client that does not take it within
    a second has its connection closed: nothing waits on it."""
    try:
        async with asyncio.timeout(1.0):
            await response.write(words)
            await response.write_eof()
    except TimeoutError:
        if request.transport is not None:
            request.transport.abort()
