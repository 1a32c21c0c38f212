"""The review queue's behaviour on its store: items made from guarded answers,
decisions by reviewers or by the clock, the metrics, the callback. Every replica runs
the sweeper; the store decides an item once, so the first replica to see it past its
time decides it and the others find it decided."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from typing import Any

import aiohttp
import orjson

from gateway.config.guards import ReviewConfig
from gateway.errors import Conflict
from gateway.evaluation.capture import redact_value
from gateway.guards.checks import Verdict
from gateway.prompts.history import HistoryEntry
from gateway.proxy.call import Call
from gateway.proxy.runtime import RuntimeHolder
from gateway.store.base import Store
from gateway.store.reviews import (
    ItemKind,
    ReviewItem,
    ReviewStore,
    State,
    decided_copy,
    not_found,
)
from gateway.telemetry.metrics import Metrics

log = logging.getLogger("gateway.reviews")
TIMEOUT_BY = "timeout"


class ReviewQueue:
    def __init__(
        self, store: Store, reviews: ReviewStore, runtime: RuntimeHolder, metrics: Metrics
    ) -> None:
        self.store = store  # for the prompts' history
        self.items = reviews
        self.runtime = runtime
        self.metrics = metrics
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def config(self) -> ReviewConfig:
        return self.runtime.current.config.review

    def new_item(
        self, call: Call, kind: ItemKind, verdict: Verdict, completion: bytes, text: str
    ) -> ReviewItem:
        plan, config = call.plan, call.runtime.config
        now = time.time()
        timeout_s = config.review.timeout_s
        completion_json = orjson.loads(completion)
        messages = redact_value(list(call.body.get("messages") or []), config.capture.redact)
        return ReviewItem(
            id="rev_" + secrets.token_hex(12),
            kind=kind,
            prompt=plan.prompt,
            version=plan.version,
            route=plan.route.name,
            key=call.key,
            guard=verdict.guard.name,
            reason=verdict.reason,
            answer=text,
            messages=messages,
            request_id=call.request_id,
            model=str(call.client_body.get("model", "")),
            completion=completion_json if isinstance(completion_json, dict) else {},
            created_at=now,
            expires_at=now + timeout_s if timeout_s else None,
        )

    async def hold(self, item: ReviewItem) -> None:
        """Stored before the client hears of it: its id must be readable at once."""
        await self.items.add(item)
        self.metrics.reviews_pending.inc()

    def flag(self, item: ReviewItem) -> None:
        """Off the client's way: the answer is delivered already."""
        self._spawn(self._flag(item))

    async def _flag(self, item: ReviewItem) -> None:
        try:
            await self.items.add(item)
        except Exception:
            log.exception("could not queue flagged answer %s for review", item.request_id)
            return
        self.metrics.reviews_pending.inc()

    async def decide(
        self,
        item_id: str,
        state: State,
        by: str,
        note: str,
        edited_answer: str | None = None,
        timed_out: bool = False,
    ) -> ReviewItem:
        item = await self.items.get(item_id)
        if item is None:
            raise not_found(item_id)
        if item.state != "pending":
            raise Conflict(
                f"Review item '{item.id}' is {item.state} already (by {item.decided_by}).",
                code="review_decided",
            )
        decided = await self.items.decide(
            decided_copy(item, state, by, note, edited_answer, timed_out)
        )
        self._decided(decided)
        return decided

    def _decided(self, item: ReviewItem) -> None:
        outcome: str = item.state
        if item.timed_out and item.state == "approved":
            outcome = "released"
        self.metrics.reviews.labels(item.prompt, item.version, outcome).inc()
        self.metrics.reviews_pending.dec()
        self._spawn(self._after_decision(item))

    async def _after_decision(self, item: ReviewItem) -> None:
        if item.prompt:
            entry = HistoryEntry(
                "review",
                item.decided_at or time.time(),
                item.decided_by or "",
                item.note or f"{item.kind} answer {item.state}",
                before="pending",
                after=item.state,
                version=item.version,
                detail={"review": item.id, "guard": item.guard, "kind": item.kind},
            )
            with contextlib.suppress(Exception):
                await self.store.add_history(item.prompt, entry)
        url = self.config.callback_url
        if not url:
            return
        payload = {k: v for k, v in item.to_json().items() if k not in ("messages", "answer")}
        try:
            session = self.runtime.current.parts.session
            async with asyncio.timeout(self.config.callback_timeout_s):
                async with session.post(url.reveal(), data=orjson.dumps(payload)) as response:
                    await response.read()
                    if response.status >= 300:
                        log.warning("review callback answered %d for %s", response.status, item.id)
        except (TimeoutError, aiohttp.ClientError) as exc:
            log.warning("review callback failed for %s: %s", item.id, type(exc).__name__)

    async def sweep(self) -> int:
        """Decide the items past their time as `[review] on_timeout` says; how many this
        replica decided."""
        config = self.config
        decided = 0
        for item_id in await self.items.due(time.time()):
            state: State = "approved" if config.on_timeout == "release" else "expired"
            note = f"not decided within {config.timeout_s:g}s: {config.on_timeout}"
            try:
                await self.decide(item_id, state, TIMEOUT_BY, note, timed_out=True)
            except Conflict:
                continue  # another replica (or a reviewer) was first
            decided += 1
        return decided

    async def sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.sweep_interval_s)
            config = self.runtime.current.config
            if not config.guards and not config.review.timeout_s:
                continue  # the feature is off: nothing to sweep, nothing to count
            try:
                await self.sweep()
                self.metrics.reviews_pending.set(await self.items.pending_count())
            except Exception:  # the store down: next time
                log.warning("review sweep failed", exc_info=True)

    def _spawn(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Until the flagged items and callbacks started so far are done (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
