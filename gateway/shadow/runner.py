"""Shadow traffic: a sampled copy of live chat requests, sent to a prompt's shadow
versions and to a route's shadow targets after the client has its answer.

Fire and forget: sampling is one random draw in `on_start`; `on_finish` puts the jobs
on a bounded queue (what does not fit is dropped and counted); a fixed number of
worker tasks run them, each under its own timeout. A shadow request never touches the
primary's answer, its circuit breakers or its retry budget: one attempt per target, no
retries. Upstream it carries `X-Gateway-Shadow: 1`; in metrics and the access log it
is `role="shadow"` with the primary's request id; its outcome is kept next to the
primary's in a `ShadowLog` for the report."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from gateway.config.loader import ProviderConfig, ShadowConfig, Target
from gateway.errors import ApiError, UpstreamError
from gateway.prompts.versions import PromptVersion, render_messages
from gateway.providers.base import Adapter, StreamTranslator, UpstreamRequest, Usage
from gateway.proxy.answer_text import StreamAnswer, answer_text
from gateway.proxy.pipeline import Call
from gateway.proxy.relay import open_stream
from gateway.proxy.routing import order_targets
from gateway.proxy.runtime import ProviderRuntime, Runtime
from gateway.shadow.report import Kind, Pair, ShadowLog, Side, clip, similarity
from gateway.store.follower import PromptsHolder
from gateway.telemetry.metrics import Metrics
from gateway.telemetry.recorder import Outcome, Telemetry

log = logging.getLogger("gateway.shadow")
SHADOW_HEADER = "X-Gateway-Shadow"


@dataclass(frozen=True)
class VersionMirror:
    """A prompt's shadow version: its own messages, params and route."""

    primary: PromptVersion
    shadow: PromptVersion


@dataclass(frozen=True)
class TargetMirror:
    """A route's shadow target: the primary's body as it was sent."""

    target: Target


@dataclass(frozen=True)
class _Job:
    kind: Kind
    name: str  # the prompt, or the route alias
    mirror: VersionMirror | TargetMirror
    runtime: Runtime  # the primary's: one config from start to end
    body: Mapping[str, Any]
    variables: Mapping[str, Any]
    primary: Outcome  # finished: read, never written
    primary_side: Side
    keep_texts: bool
    # Labels of the shadow's own outcome and metrics.
    route: str
    version: str
    primary_label: str
    shadow_label: str


class ShadowRunner:
    """A `RequestObserver`; `start` and `stop` bound its worker tasks' lifetime."""

    def __init__(
        self,
        config: ShadowConfig,
        telemetry: Telemetry,
        metrics: Metrics,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config  # queue size and workers: read at start, not on reload
        self.log = ShadowLog()
        self._telemetry = telemetry
        self._metrics = metrics
        self._rng = rng or random.Random()
        self._prompts: PromptsHolder | None = None
        self._queue: asyncio.Queue[_Job] = asyncio.Queue(config.queue_size)
        self._workers: list[asyncio.Task[None]] = []
        self._sampled: dict[int, list[VersionMirror | TargetMirror]] = {}  # by id(call)
        self._open = 0  # sampled calls not finished + jobs queued or running
        self._idle = asyncio.Event()
        self._idle.set()

    def start(self, prompts: PromptsHolder) -> None:
        self._prompts = prompts
        self._workers = [
            asyncio.create_task(self._work(), name=f"shadow-{i}")
            for i in range(self.config.max_concurrency)
        ]

    async def stop(self) -> None:
        """Shadow requests in flight are abandoned: nobody waits for them."""
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers = []

    async def join(self) -> None:
        """Until every sampled request so far has been mirrored (or dropped)."""
        await self._idle.wait()

    # --- RequestObserver ---------------------------------------------------------------

    def on_start(self, call: Call) -> None:
        if self._prompts is None or not call.outcome.path.endswith("/chat/completions"):
            return
        mirrors: list[VersionMirror | TargetMirror] = []
        plan = call.plan
        entry = self._prompts.current.prompts.get(plan.prompt) if plan.prompt else None
        pinned = "@" in str(call.body.get("model", ""))  # tests, replay: not live traffic
        if entry is not None and entry.shadow.versions and not pinned:
            primary = entry.versions.get(plan.version)
            if primary is not None and self._rng.random() < entry.shadow.sample_rate:
                mirrors += [
                    VersionMirror(primary, entry.versions[v])
                    for v in entry.shadow.versions
                    if v != plan.version and v in entry.versions
                ]
        shadow = plan.route.shadow
        if shadow.targets and self._rng.random() < shadow.sample_rate:
            mirrors += [TargetMirror(t) for t in shadow.targets]
        if mirrors:
            call.outcome.keep_answer = True
            self._sampled[id(call)] = mirrors
            self._busy(+1)

    def on_finish(self, call: Call) -> None:
        mirrors = self._sampled.pop(id(call), None)
        if mirrors is None:
            return
        latency_s = time.perf_counter() - call.outcome.started
        for mirror in mirrors:
            job = self._job(call, mirror, latency_s)
            try:
                self._queue.put_nowait(job)
            except asyncio.QueueFull:
                self._count(job, "dropped")
                self.log.dropped(job.kind, job.name, job.primary_label, job.shadow_label)
                continue
            self._busy(+1)
        self._busy(-1)

    def _job(self, call: Call, mirror: VersionMirror | TargetMirror, latency_s: float) -> _Job:
        primary = call.outcome
        served = f"{primary.provider}/{primary.model}" if primary.provider else primary.route
        common: dict[str, Any] = {
            "mirror": mirror,
            "runtime": call.runtime,
            "body": call.body,
            "variables": call.variables,
            "primary": primary,
            "primary_side": Side.of(primary, latency_s),
            # Answers are kept in memory only where capture may keep them anyway.
            "keep_texts": call.runtime.config.capture.enabled and not call.no_capture,
        }
        if isinstance(mirror, VersionMirror):
            return _Job(
                kind="prompt",
                name=call.plan.prompt,
                route=mirror.shadow.content.model,
                version=mirror.shadow.id,
                primary_label=call.plan.version,
                shadow_label=mirror.shadow.id,
                **common,
            )
        return _Job(
            kind="model",
            name=call.plan.route.name,
            route=call.plan.route.name,
            version=call.plan.version,
            primary_label=served,
            shadow_label=mirror.target.label,
            **common,
        )

    def _busy(self, delta: int) -> None:
        self._open += delta
        if self._open:
            self._idle.clear()
        else:
            self._idle.set()

    def _count(self, job: _Job, outcome: str) -> None:
        labels = (job.route, job.primary.prompt, job.version, outcome)
        self._metrics.shadow_requests.labels(*labels).inc()

    # --- the workers -------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            job = await self._queue.get()
            try:
                await self._run(job)
            except Exception:  # a bug here must not stop the worker
                log.exception("shadow request failed")
            finally:
                self._queue.task_done()
                self._busy(-1)

    async def _run(self, job: _Job) -> None:
        primary = job.primary
        outcome = Outcome(
            self._telemetry.new_request_id(),
            path=primary.path,
            route=job.route,
            prompt=primary.prompt,
            version=job.version,
            key=primary.key,
            role="shadow",
            primary_request_id=primary.request_id,
            stream=primary.stream,
        )
        text: str | None = None
        timeout_s = job.runtime.config.shadow.timeout_s
        try:
            async with asyncio.timeout(timeout_s):
                text = await self._answer(job, outcome)
            outcome.status = 200
        except TimeoutError:
            outcome.status, outcome.error = 504, "timeout"
        except UpstreamError as error:
            passed_back = error.reason == "client_error" and error.status
            outcome.status = error.status if passed_back and error.status else 502
            outcome.error = error.reason
        except ApiError as error:
            outcome.status, outcome.error = error.status, error.code or "invalid_request"
        latency_s = time.perf_counter() - outcome.started
        self._telemetry.record(outcome, job.runtime.config)
        self._count(job, "ok" if outcome.status == 200 else "error")
        self.log.add(job.kind, job.name, _pair(job, Side.of(outcome, latency_s), text))

    async def _answer(self, job: _Job, outcome: Outcome) -> str | None:
        """The first target that answers, in the route's order; one attempt each."""
        runtime, mirror = job.runtime, job.mirror
        body: Mapping[str, Any]
        if isinstance(mirror, VersionMirror):
            route = runtime.config.models.get(mirror.shadow.content.model)
            if route is None:
                raise ApiError(404, "the shadow version's route is gone", code="model_not_found")
            targets, body = order_targets(route), _version_body(job, mirror)
        else:
            targets, body = (mirror.target,), job.body
        failure = UpstreamError("connect", "no configured target")
        for target in targets:
            found = runtime.providers.get(target.provider)
            if found is None:  # removed by a reload: shadows only go where the config says
                continue
            provider = ProviderRuntime(found.config, ShadowAdapter(found.adapter), found.transport)
            outcome.provider, outcome.model = target.provider, target.model
            outcome.attempts += 1
            began = time.perf_counter()
            try:
                if job.primary.stream:
                    return await _consume_stream(provider, target, body, outcome)
                return await _complete(provider, target, body, outcome)
            except UpstreamError as error:
                if error.reason == "client_error":
                    raise
                failure = error
            finally:
                outcome.upstream_s += time.perf_counter() - began
        raise failure


def _version_body(job: _Job, mirror: VersionMirror) -> dict[str, Any]:
    """The shadow version rendered with the primary's variables, before the client's
    own messages; its params as defaults. The client's body is not kept apart from the
    primary version's params, so a field equal to the primary's param counts as that
    default."""
    primary = mirror.primary.content
    messages = list(job.body.get("messages") or [])
    client = {
        k: v
        for k, v in job.body.items()
        if k != "messages" and not (k in primary.params and primary.params[k] == v)
    }
    rendered = render_messages(mirror.shadow.content, job.variables)
    return {
        **mirror.shadow.content.params,
        **client,
        "messages": [*rendered, *messages[len(primary.messages) :]],
    }


def _pair(job: _Job, shadow: Side, text: str | None) -> Pair:
    primary_text = job.primary.answer
    both = primary_text is not None and text is not None
    both = both and job.primary_side.status == 200 and shadow.status == 200
    return Pair(
        at=time.time(),
        request_id=job.primary.request_id,
        primary_label=job.primary_label,
        shadow_label=job.shadow_label,
        primary=job.primary_side,
        shadow=shadow,
        exact=primary_text == text if both else None,
        similarity=similarity(primary_text or "", text or "") if both else None,
        primary_text=clip(primary_text) if job.keep_texts else None,
        shadow_text=clip(text) if job.keep_texts else None,
    )


async def _complete(
    provider: ProviderRuntime, target: Target, body: Mapping[str, Any], outcome: Outcome
) -> str | None:
    adapter = provider.adapter
    request = adapter.chat_request(provider.config, target.model, body, False)
    response = await provider.transport.send(request, provider.config.connect_timeout_s)
    try:
        raw = await response.read()
    finally:
        response.release()
    if response.status >= 300:
        raise adapter.error(response.status, response.headers, raw)
    raw, outcome.usage = adapter.chat_response(raw, target.model)
    return answer_text(raw)


async def _consume_stream(
    provider: ProviderRuntime, target: Target, body: Mapping[str, Any], outcome: Outcome
) -> str:
    """Read a shadow stream to its end, as a client would (there is none): the first
    token gives the TTFT, the last chunk the usage."""
    timeout_s = provider.config.total_timeout_s  # the shadow's own timeout is around us
    start = await open_stream(provider, target, body, False, timeout_s, outcome)
    translator, answer = start.translator, StreamAnswer()
    answer.add(start.pending)
    try:
        while True:
            if outcome.ttft_s is None and translator.content_started:
                outcome.ttft_s = time.perf_counter() - outcome.started
            if translator.finished:
                return answer.text()
            chunk = await start.response.next_chunk()
            if not chunk:
                raise UpstreamError("stream_cut", "provider stream ended early")
            answer.add(translator.feed_bytes(chunk))
    finally:
        start.response.release()
        outcome.usage = translator.usage


class ShadowAdapter:
    """A target's adapter whose requests say `X-Gateway-Shadow: 1`."""

    def __init__(self, inner: Adapter) -> None:
        self.inner = inner

    def chat_request(
        self, provider: ProviderConfig, model: str, body: Mapping[str, Any], stream: bool
    ) -> UpstreamRequest:
        request = self.inner.chat_request(provider, model, body, stream)
        return replace(request, headers={**request.headers, SHADOW_HEADER: "1"})

    def chat_response(self, body: bytes, model: str) -> tuple[bytes, Usage | None]:
        return self.inner.chat_response(body, model)

    def chat_stream(self, model: str, include_usage: bool) -> StreamTranslator:
        return self.inner.chat_stream(model, include_usage)

    def embeddings_request(
        self, provider: ProviderConfig, model: str, body: Mapping[str, Any]
    ) -> UpstreamRequest:
        request = self.inner.embeddings_request(provider, model, body)
        return replace(request, headers={**request.headers, SHADOW_HEADER: "1"})

    def embeddings_response(self, body: bytes) -> tuple[bytes, Usage | None]:
        return self.inner.embeddings_response(body)

    def error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        return self.inner.error(status, headers, body)
