"""User feedback on answers: `POST /v1/feedback {request_id, score, comment?, kind?,
signal?}`; one per (request, client key), a second replacing the first.

Every request's prompt, version and target go into a short-lived index when it is
done: in memory in each process, the newest `REQUEST_INDEX_MAX` (about 6 MB) for at
most `REQUEST_INDEX_TTL_S`; with Redis also under the prefix with that TTL, written in
batches off the request path, so any replica takes feedback on any request of the last
day. Feedback on a request is then counted on the version that served it: in
`gateway_feedback_total{prompt,version,value}` (`value` = positive or negative) and in
time buckets a rollout controller reads through `FeedbackStats.counts`."""

from __future__ import annotations

import time
from typing import Annotated, Any

import msgspec
from aiohttp import web

from gateway.appkeys import FEEDBACK, RUNTIME
from gateway.decoding import decode
from gateway.errors import Invalid, NotFound
from gateway.evaluation.capture import redact_text
from gateway.proxy.call import Call
from gateway.proxy.ingress import authenticate, read_json
from gateway.proxy.observers import IGNORE, WATCH
from gateway.proxy.runtime import RuntimeHolder
from gateway.store.batch_writer import BatchWriter
from gateway.store.feedback import FeedbackEntry, FeedbackLog, Kind
from gateway.store.records import (
    REQUEST_INDEX_MAX,
    REQUEST_INDEX_TTL_S,
    FeedbackCounts,
    RecentRequests,
    Records,
    ServedBy,
)
from gateway.telemetry.metrics import Metrics
from gateway.telemetry.recorder import RequestRecord

FEEDBACK_BODY_LIMIT = 64 * 1024
COMMENT_LIMIT = 2000


class RequestIndex:
    """The observer that remembers which version and target served each request."""

    def __init__(
        self,
        runtime: RuntimeHolder,
        records: Records,
        ttl_s: float = REQUEST_INDEX_TTL_S,
        max_entries: int = REQUEST_INDEX_MAX,
    ) -> None:
        self.records = records
        self.recent = RecentRequests(ttl_s, max_entries)
        self.writer: BatchWriter[ServedBy] = BatchWriter(
            "request-index", self._write, lambda: _batch_settings(runtime)
        )

    def on_start(self, call: Call) -> int:
        return WATCH if call.policy.role == "primary" else IGNORE

    def on_finish(self, call: Call, r: RequestRecord) -> None:
        if not r.route:
            return
        entry = ServedBy(
            r.request_id, time.time(), r.route, r.prompt, r.version, r.provider, r.model, r.key
        )
        self.recent.put(entry)
        if self.records.shared:  # for the other replicas
            self.writer.put(entry)

    async def _write(self, batch: list[ServedBy]) -> None:
        await self.records.index_requests(batch, self.recent.ttl_s)

    async def find(self, request_id: str) -> ServedBy | None:
        entry = self.recent.get(request_id)
        if entry is None:
            entry = await self.records.served_by(request_id)
        return entry

    async def flush(self) -> None:
        await self.writer.flush()


def _batch_settings(runtime: RuntimeHolder) -> tuple[int, float]:
    cfg = runtime.current.config.capture  # the same batching as capture
    return cfg.batch_size, cfg.flush_interval_s


class FeedbackBody(msgspec.Struct, frozen=True):
    """`POST /v1/feedback`."""

    request_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    score: float
    comment: str | None = None
    kind: Kind = "explicit"
    signal: str | None = None


FEEDBACK_FIELDS = frozenset(FeedbackBody.__struct_fields__)


def feedback_body(data: Any, signals: tuple[str, ...]) -> FeedbackBody:
    """The body, checked: 400 `unknown_field` naming a field it does not know (a typo
    must not pass for feedback without it), `unknown_signal` for a signal the config
    does not list; an implicit feedback names its signal, an explicit one has none."""
    if isinstance(data, dict):
        for name in data:
            if name not in FEEDBACK_FIELDS:
                known = ", ".join(sorted(FEEDBACK_FIELDS))
                raise Invalid(
                    f"Unknown field '{str(name)[:64]}' (known: {known}).",
                    param=str(name)[:64],
                    code="unknown_field",
                )
    body = decode(data, FeedbackBody)
    if body.kind == "implicit":
        if body.signal is None:
            raise Invalid("Implicit feedback names its 'signal'.", param="signal")
        if body.signal not in signals:
            known = ", ".join(signals) or "none configured"
            raise Invalid(
                f"Unknown signal '{body.signal[:64]}' ([feedback] signals: {known}).",
                param="signal",
                code="unknown_signal",
            )
    elif body.signal is not None:
        raise Invalid("A 'signal' is for kind 'implicit'.", param="signal")
    return body


def feedback_value(score: float) -> tuple[float, str]:
    """The score on 0..1 and its label; `Invalid` for anything but 1, -1 or 0..1."""
    if score == -1:
        return 0.0, "negative"
    if not 0 <= score <= 1:
        raise Invalid("'score' must be 1, -1, or from 0 to 1.", param="score")
    return float(score), "positive" if score >= 0.5 else "negative"


class FeedbackStats:
    """Feedback in: checked, tied to the request's version, kept one per (request,
    key), counted. Counts out.

    `gateway_feedback_total` counts each (request, key) once, with the value its first
    feedback had (a counter cannot go down); a later one that replaces it counts in
    `gateway_feedback_replaced_total{from,to}`, so the values as they stand are
    `feedback_total{value=V} - replaced{from=V} + replaced{to=V}`. The counts a
    rollout reads hold each request once, with its latest value."""

    def __init__(self, index: RequestIndex, log: FeedbackLog, metrics: Metrics) -> None:
        self.index = index
        self.log = log
        self.metrics = metrics

    async def submit(
        self, body: FeedbackBody, key: str | None, redact: tuple[str, ...]
    ) -> dict[str, Any]:
        normalised, value = feedback_value(body.score)
        served = await self.index.find(body.request_id)
        # Another client key's request is as unknown as a made-up id.
        if served is None or (key is not None and served.key and served.key != key):
            raise NotFound(
                f"No recent request with id '{body.request_id}'.", code="request_not_found"
            )
        entry = FeedbackEntry(
            request_id=served.request_id,
            at=time.time(),
            prompt=served.prompt,
            version=served.version,
            provider=served.provider,
            model=served.model,
            score=normalised,
            value=value,
            comment=redact_text((body.comment or "")[:COMMENT_LIMIT], redact),
            key=key or "",
            route=served.route,
            kind=body.kind,
            signal=body.signal,
        )
        old = await self.log.give(entry)
        if old is None:
            self.metrics.feedback.labels(served.prompt, served.version, value).inc()
        else:
            replaced = self.metrics.feedback_replaced
            replaced.labels(served.prompt, served.version, old.value, value).inc()
        return {
            "request_id": body.request_id,
            "prompt": served.prompt or None,
            "version": served.version or None,
            "provider": served.provider,
            "model": served.model,
            "value": value,
            "score": normalised,
            "kind": body.kind,
            "signal": body.signal,
            "replaced": old is not None,
        }

    async def counts(self, prompt: str, version: str, since_s: float) -> FeedbackCounts:
        """Feedback on one prompt version over the last `since_s` seconds (whole
        one-minute buckets, at most two days), for rollout guards."""
        return await self.log.counts(prompt, version, since_s)


async def post_feedback(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME].current
    key = authenticate(request, runtime)
    data = await read_json(request, FEEDBACK_BODY_LIMIT)
    body = feedback_body(data, runtime.config.feedback.signals)
    answer = await request.app[FEEDBACK].submit(
        body, None if key is None else key.name, runtime.config.capture.redact
    )
    return web.json_response(answer)
