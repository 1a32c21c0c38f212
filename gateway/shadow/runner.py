"""Shadow traffic: a sampled copy of live chat requests, sent to a prompt's shadow
versions and to a route's shadow targets after the client has its answer.

Fire and forget: sampling is one random draw in `on_start`; `on_finish` puts the jobs
on a bounded queue (what does not fit is dropped and counted); a fixed number of
worker tasks run them, each within its own deadline. A shadow copy goes through the
same engine and stream reader as the primary, under the `SHADOW` policy: one attempt
per target, no retries, and nothing that touches the primary's circuit breakers or
retry budget. Upstream it carries `X-Gateway-Shadow: 1`; in metrics and the access log
it is `role="shadow"` with the primary's request id; its outcome is kept next to the
primary's in a `ShadowLog` for the report."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.config.features import ShadowConfig
from gateway.config.routes import RouteConfig, Target
from gateway.errors import DomainError
from gateway.prompts.versions import PromptVersion, render_messages
from gateway.proxy.call import SHADOW, Call
from gateway.proxy.completions import (
    COMPLETIONS_PATH,
    complete_text,
    open_text_stream,
    prompted_text,
)
from gateway.proxy.engine import EngineRun
from gateway.proxy.observers import IGNORE, WATCH_ANSWER
from gateway.proxy.pipeline import record_of, run_unattended
from gateway.proxy.routing import RoutePlan, order_targets
from gateway.shadow.report import Kind, Pair, ShadowLog, Side, clip, similarity
from gateway.store.follower import PromptsHolder
from gateway.telemetry.metrics import Metrics
from gateway.telemetry.recorder import RequestRecord, Telemetry

log = logging.getLogger("gateway.shadow")
# The ingresses whose calls are chat calls inside: their copies are chat calls too;
# a legacy completion's copy is a completion.
MIRRORED = ("/chat/completions", "/responses", "/messages", "/v1/completions")


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
    primary_call: Call  # finished: one runtime (config) from start to end
    primary: RequestRecord
    keep_texts: bool
    route: str  # the shadow's own, as its metrics label it
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

    def on_start(self, call: Call) -> int:
        if self._prompts is None or not call.path.endswith(MIRRORED):
            return IGNORE
        mirrors: list[VersionMirror | TargetMirror] = []
        plan = call.plan
        entry = self._prompts.current.prompts.get(plan.prompt) if plan.prompt else None
        if entry is not None and entry.shadow.versions and not plan.pinned:
            # (a pinned version is a test or a replay, not live traffic)
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
        if not mirrors:
            return IGNORE
        self._sampled[id(call)] = mirrors
        self._busy(+1)
        return WATCH_ANSWER

    def on_finish(self, call: Call, record: RequestRecord) -> None:
        mirrors = self._sampled.pop(id(call), None)
        if mirrors is None:
            return
        for mirror in mirrors:
            job = self._job(call, record, mirror)
            try:
                self._queue.put_nowait(job)
            except asyncio.QueueFull:
                self._count(job, "dropped")
                self.log.dropped(job.kind, job.name, job.primary_label, job.shadow_label)
                continue
            self._busy(+1)
        self._busy(-1)

    def _job(
        self, call: Call, primary: RequestRecord, mirror: VersionMirror | TargetMirror
    ) -> _Job:
        served = f"{primary.provider}/{primary.model}" if primary.provider else primary.route
        # Answers are kept in memory only where capture may keep them anyway.
        keep_texts = call.runtime.config.capture.enabled and not call.no_capture
        if isinstance(mirror, VersionMirror):
            return _Job(
                "prompt",
                call.plan.prompt,
                mirror,
                call,
                primary,
                keep_texts,
                route=mirror.shadow.content.model,
                version=mirror.shadow.id,
                primary_label=call.plan.version,
                shadow_label=mirror.shadow.id,
            )
        return _Job(
            "model",
            call.plan.route.name,
            mirror,
            call,
            primary,
            keep_texts,
            route=call.plan.route.name,
            version=call.plan.version,
            primary_label=served,
            shadow_label=mirror.target.label,
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
        primary_call = job.primary_call
        runtime = primary_call.runtime
        mirror = job.mirror
        call: Call | None = None
        status, error = 404, "model_not_found"  # the shadow version's route is gone
        try:
            if isinstance(mirror, VersionMirror):
                route = runtime.config.models.get(mirror.shadow.content.model)
                if route is not None:
                    body = _version_body(job, mirror)
                    call = self._call(job, route, order_targets(route), body)
            else:
                route = primary_call.plan.route
                call = self._call(job, route, (mirror.target,), primary_call.body)
        except DomainError as refused:  # e.g. the shadow version needs another variable
            status, error = 400, refused.code or "invalid_request"
        if call is None:
            record = RequestRecord(
                self._telemetry.new_request_id(),
                primary_call.path,
                route=job.route,
                prompt=job.primary.prompt,
                version=job.version,
                key=job.primary.key,
                role=SHADOW.role,
                primary_request_id=job.primary.request_id,
                stream=job.primary.stream,
                status=status,
                error=error,
            )
        else:
            run = EngineRun(call)
            if call.path == COMPLETIONS_PATH:
                ending = await run_unattended(call, run, complete_text, open_text_stream)
            else:
                ending = await run_unattended(call, run)
            record = record_of(call, run, ending)
        self._telemetry.record(record, runtime.config)
        self._count(job, "ok" if record.status == 200 else "error")
        self.log.add(job.kind, job.name, _pair(job, Side.of(record), record.answer))

    def _call(
        self,
        job: _Job,
        route: RouteConfig,
        targets: tuple[Target, ...],
        body: Mapping[str, Any],
    ) -> Call:
        primary = job.primary_call
        timeout_s = primary.runtime.config.shadow.timeout_s
        tracing = self._telemetry.tracing
        return Call(
            self._telemetry.new_request_id(),
            time.perf_counter(),
            primary.path,
            primary.runtime,
            RoutePlan(route, targets, prompt=primary.plan.prompt, version=job.version),
            client_body=primary.client_body,
            body=body,
            deadline=asyncio.get_running_loop().time() + timeout_s,
            policy=SHADOW,
            stream=primary.stream,
            key=primary.key,
            variables=primary.variables,
            primary_request_id=primary.request_id,
            keep_answer=True,  # to compare with the primary's
            # Tracing on: a child of the primary's span.
            span=tracing.shadow(primary.span, primary.path) if tracing is not None else None,
        )


def _version_body(job: _Job, mirror: VersionMirror) -> dict[str, Any]:
    """The shadow version rendered with the primary's variables, before the client's
    own messages; its params as defaults the client's own override."""
    client = job.primary_call.client_body
    if job.primary_call.path == COMPLETIONS_PATH:
        own = {k: v for k, v in client.items() if k != "prompt_variables"}
        return prompted_text(mirror.shadow, client, own).body
    rendered = render_messages(mirror.shadow.content, job.primary_call.variables)
    return {
        **mirror.shadow.content.params,
        **{k: v for k, v in client.items() if k not in ("messages", "prompt_variables")},
        "messages": [*rendered, *(client.get("messages") or [])],
    }


def _pair(job: _Job, shadow: Side, text: str | None) -> Pair:
    primary_text = job.primary.answer
    primary_side = Side.of(job.primary)
    both = primary_text is not None and text is not None
    both = both and primary_side.status == 200 and shadow.status == 200
    return Pair(
        at=time.time(),
        request_id=job.primary.request_id,
        primary_label=job.primary_label,
        shadow_label=job.shadow_label,
        primary=primary_side,
        shadow=shadow,
        exact=primary_text == text if both else None,
        similarity=similarity(primary_text or "", text or "") if both else None,
        primary_text=clip(primary_text) if job.keep_texts else None,
        shadow_text=clip(text) if job.keep_texts else None,
    )
