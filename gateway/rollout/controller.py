"""Gradual rollouts: a canary version's weight goes up step by step while the guards
(gateway.rollout.guards) find it no worse than the baseline; on a breach the rollout
pauses or rolls back by itself.

The rollout's state lives in the store (gateway.store.rollouts), so it survives
restarts. Exactly one replica drives each rollout at a time: the holder of its lease
in the store, renewed every `check_interval_s`; when the holder dies its lease runs
out after `lease_s` and another replica takes over. Admin actions (start, pause,
resume, abort) work on any replica. Every routing change goes through the store's
`set_routing` with `by="rollout"` and a reason carrying the numbers, so the prompt's
history says why the weights moved."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

from gateway.config.loader import RolloutConfig
from gateway.errors import ApiError, Conflict, DomainError
from gateway.prompts.versions import Routing, Shadow
from gateway.rollout.guards import Side, Verdict, evaluate
from gateway.rollout.state import (
    RolloutRequest,
    already_running,
    format_weights,
    history_entry,
    live,
    no_rollout,
    not_in,
    routing_reason,
    step_weights,
)
from gateway.rollout.version_stats import VersionStats
from gateway.store.base import not_found, version_not_found
from gateway.store.follower import PromptsHolder
from gateway.store.records import FeedbackCounts
from gateway.store.rollouts import Rollout, RolloutEvent, RolloutStore
from gateway.store.version_counts import VersionCounts
from gateway.telemetry.metrics import Metrics

log = logging.getLogger("gateway.rollout")
COUNTED_EVENTS = ("promote", "pause", "rollback")  # gateway_rollout_events_total{event}
_CAS_ATTEMPTS = 20


class FeedbackSource(Protocol):
    """Feedback counts of one prompt version over the last `since_s` seconds
    (gateway.evaluation.feedback.FeedbackStats is the real one)."""

    async def counts(self, prompt: str, version: str, since_s: float) -> FeedbackCounts: ...


class NoFeedback:
    async def counts(self, prompt: str, version: str, since_s: float) -> FeedbackCounts:
        return FeedbackCounts()


class RolloutController:
    def __init__(
        self,
        holder: PromptsHolder,
        store: RolloutStore,
        stats: VersionStats,
        feedback: FeedbackSource,
        metrics: Metrics,
        cfg: RolloutConfig,
    ) -> None:
        self.holder = holder
        self.store = store
        self.stats = stats
        self.feedback = feedback
        self.metrics = metrics
        self.cfg = cfg
        self.replica_id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.held: set[str] = set()  # prompts whose lease this replica holds
        self._stopped = asyncio.Event()
        self._failing = False  # warn once per outage, not every tick
        self._locks: dict[str, asyncio.Lock] = {}  # one routing writer per prompt here

    # -- admin actions -------------------------------------------------------------

    async def start(self, prompt: str, request: RolloutRequest, by: str) -> Rollout:
        state = await self.holder.store.get_prompt(prompt)
        if state is None:
            raise not_found(prompt)
        version = state.versions.get(request.version)
        if version is None:
            raise version_not_found(prompt, request.version)
        if version.status != "approved":
            raise Conflict(
                f"Version {request.version} is a draft: approve it before rolling it out.",
                code="version_not_approved",
            )
        if state.routing is None or not live(state.routing.weights):
            raise Conflict(f"Prompt '{prompt}' has no live routing yet.", code="no_routing")
        if not [v for v in live(state.routing.weights) if v != request.version]:
            raise Conflict(
                f"{request.version} already has all of '{prompt}''s traffic.",
                code="nothing_to_roll_out",
            )
        existing = await self.store.load(prompt)
        if existing is not None and (existing.active or existing.pending):
            raise already_running(prompt, existing.version)
        rollout = request.rollout(prompt, state.routing.weights, by)
        rollout = replace(rollout, revision=(existing.revision if existing else 0) + 1)
        if rollout.step == 100:  # a one-step rollout is a switch
            rollout = self._completed(rollout, by, time.time())
        if not await self.store.save(rollout, existing.revision if existing else 0):
            latest = await self.store.load(prompt)
            raise already_running(prompt, latest.version if latest else request.version)
        log.info("rollout of %s %s started by %s", prompt, request.version, by)
        await self._note(rollout)
        await self._settle(rollout)
        return rollout

    async def pause(self, prompt: str, by: str) -> Rollout:
        def pause(r: Rollout) -> Rollout:
            if r.state != "running":
                raise not_in(r, "running")
            event = RolloutEvent(time.time(), "pause", r.step, by, f"paused by {by}")
            return r.with_event(event, state="paused")

        rollout = await self._change(prompt, pause)
        self._count(prompt, "pause")
        return rollout

    async def resume(self, prompt: str, by: str) -> Rollout:
        def resume(r: Rollout) -> Rollout:
            if r.state != "paused":
                raise not_in(r, "paused")
            now = time.time()
            reason = f"resumed by {by} at {r.step}% ({format_weights(r.weights)})"
            event = RolloutEvent(now, "resume", r.step, by, reason, r.weights)
            return r.with_event(
                event,
                state="running",
                step_started_at=now,  # a fresh window: the guards judge from here
                next_check_at=now + r.interval_s,
                pending=True,  # the routing may have been changed while paused
            )

        rollout = await self._change(prompt, resume)
        await self._settle(rollout)
        return rollout

    async def abort(self, prompt: str, by: str) -> Rollout:
        def abort(r: Rollout) -> Rollout:
            if not r.active:
                raise not_in(r, "running or paused")
            reason = f"aborted by {by}: baseline {format_weights(r.baseline)} restored"
            event = RolloutEvent(time.time(), "abort", r.step, by, reason, r.baseline)
            return r.with_event(event, state="aborted", weights=dict(r.baseline), pending=True)

        rollout = await self._change(prompt, abort)
        log.info("rollout of %s %s aborted by %s", prompt, rollout.version, by)
        await self._settle(rollout)
        return rollout

    async def status(self, prompt: str) -> dict[str, Any]:
        rollout = await self.store.load(prompt)
        if rollout is None:
            raise no_rollout(prompt)
        driver = await self.store.lease_holder(prompt) if rollout.active else None
        return {**rollout.to_json(), "driver": driver}

    async def _change(self, prompt: str, change: Callable[[Rollout], Rollout]) -> Rollout:
        for _ in range(_CAS_ATTEMPTS):
            current = await self.store.load(prompt)
            if current is None:
                raise no_rollout(prompt)
            changed = change(current)
            if await self.store.save(changed, current.revision):
                await self._note(changed)
                return changed
        raise Conflict("The rollout is changing right now; try again.", code="concurrent_change")

    # -- routing -------------------------------------------------------------------

    def _lock(self, prompt: str) -> asyncio.Lock:
        return self._locks.setdefault(prompt, asyncio.Lock())

    async def _settle(self, rollout: Rollout) -> None:
        """After an admin change: write the routing now if this replica may drive the
        rollout (one writer, no duplicate history entries); else its driver does it
        within a tick, and the answer waits a little for that."""
        if await self.store.lease(rollout.prompt, self.replica_id, self.cfg.lease_s):
            self.held.add(rollout.prompt)
            async with self._lock(rollout.prompt):
                await self.apply(rollout)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cfg.lease_s
        while loop.time() < deadline:
            latest = await self.store.load(rollout.prompt)
            if latest is None or not latest.pending:
                return
            await asyncio.sleep(0.05)

    async def apply(self, rollout: Rollout) -> None:
        """Make the prompt's routing carry `rollout.weights`, then mark them applied. If
        the rollout changed meanwhile (an abort racing a promotion), follow the newest
        revision, so the routing always ends on the last decision."""
        for _ in range(_CAS_ATTEMPTS):
            state = await self.holder.store.get_prompt(rollout.prompt)
            current = state.routing if state is not None else None
            if current is None or live(current.weights) != live(rollout.weights):
                await self.holder.store.set_routing(
                    rollout.prompt,
                    Routing(dict(rollout.weights), current.shadow if current else Shadow()),
                    by="rollout",
                    reason=routing_reason(rollout),
                    kind="rollout",
                )
                with contextlib.suppress(Exception):  # others follow the store anyway
                    await self.holder.refresh()
            latest = await self.store.load(rollout.prompt)
            if latest is None:
                return
            if latest.revision == rollout.revision:
                if not latest.pending:
                    return
                cleared = replace(latest, pending=False, revision=latest.revision + 1)
                if await self.store.save(cleared, latest.revision):
                    return
                latest = await self.store.load(rollout.prompt) or latest
            rollout = latest

    # -- the driver ----------------------------------------------------------------

    async def drive_forever(self) -> None:
        """Until `stop()`: a stop flag as well as cancellation, because redis-py can
        swallow a cancellation that lands in the middle of a command."""
        while not self._stopped.is_set():
            try:
                await self.tick()
                self._failing = False
            except Exception as exc:  # the store away: try again next time
                level = logging.DEBUG if self._failing else logging.WARNING
                log.log(level, "rollout driver: %s: %s", type(exc).__name__, exc)
                self._failing = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), self.cfg.check_interval_s)

    def stop(self) -> None:
        self._stopped.set()

    async def tick(self) -> None:
        """Take or renew the lease of every rollout that needs a driver, and drive
        those this replica holds."""
        prompts = await self.store.active()
        for prompt in set(self.held) - set(prompts):
            await self.store.release(prompt, self.replica_id)
            self.held.discard(prompt)
        for prompt in prompts:
            if not await self.store.lease(prompt, self.replica_id, self.cfg.lease_s):
                if prompt in self.held:
                    log.warning("lost the lease of the %s rollout", prompt)
                self.held.discard(prompt)
                continue
            if prompt not in self.held:
                log.info("driving the rollout of %s (replica %s)", prompt, self.replica_id)
                self.held.add(prompt)
            try:
                async with self._lock(prompt):
                    await self._drive(prompt)
            except (ApiError, DomainError) as exc:  # e.g. the store refused the routing
                log.warning("rollout of %s: %s", prompt, exc.message)

    async def release_all(self) -> None:
        """On the way out: hand the leases over at once instead of at their expiry."""
        for prompt in list(self.held):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.store.release(prompt, self.replica_id), 1.0)
            self.held.discard(prompt)

    async def _drive(self, prompt: str) -> None:
        rollout = await self.store.load(prompt)
        if rollout is not None and rollout.pending:
            await self.apply(rollout)
            rollout = await self.store.load(prompt)
        if rollout is None or not (rollout.active or rollout.pending):
            await self.store.forget(prompt)
            return
        if rollout.state == "running" and time.time() >= rollout.next_check_at:
            await self._decide(rollout)

    async def _decide(self, r: Rollout) -> None:
        now = time.time()
        state = await self.holder.store.get_prompt(r.prompt)
        weights = state.routing.weights if state is not None and state.routing else {}
        if live(weights) != live(r.weights):
            reason = (
                f"the routing was changed outside the rollout (now {format_weights(weights)}, "
                f"expected {format_weights(r.weights)}): paused"
            )
            event = RolloutEvent(now, "pause", r.step, self.replica_id, reason)
            await self._decided(r, r.with_event(event, state="paused"), "pause", reason)
            return
        verdict = await self.verdict(r, now)
        numbers = verdict.to_json()
        by = self.replica_id
        if verdict.decision == "hold":
            reason = f"holding at {r.step}%: {verdict.describe()}"
            event = RolloutEvent(now, "hold", r.step, by, reason, None, numbers)
            await self._decided(r, r.with_event(event, next_check_at=now + r.interval_s))
        elif verdict.decision == "promote":
            index = r.step_index + 1
            weights = step_weights(r.baseline, r.version, r.steps[index])
            reason = f"{r.version} {r.step}% -> {r.steps[index]}%: {verdict.describe()}"
            event = RolloutEvent(now, "promote", r.steps[index], by, reason, weights, numbers)
            promoted = r.with_event(
                event,
                step_index=index,
                step_started_at=now,
                next_check_at=now + r.interval_s,
                weights=weights,
                pending=True,
            )
            if promoted.step == 100:
                promoted = self._completed(promoted, by, now)
            await self._decided(r, promoted, "promote", reason)
        elif r.on_breach == "rollback":
            reason = f"{r.version} rolled back at {r.step}%: {verdict.describe()}"
            event = RolloutEvent(now, "rollback", r.step, by, reason, r.baseline, numbers)
            rolled_back = r.with_event(
                event, state="rolled_back", weights=dict(r.baseline), pending=True
            )
            await self._decided(r, rolled_back, "rollback", reason)
        else:
            reason = f"{r.version} paused at {r.step}%: {verdict.describe()}"
            event = RolloutEvent(now, "pause", r.step, by, reason, None, numbers)
            await self._decided(r, r.with_event(event, state="paused"), "pause", reason)

    async def _decided(
        self, before: Rollout, after: Rollout, counted: str = "", reason: str = ""
    ) -> None:
        if not await self.store.save(after, before.revision):
            return  # changed meanwhile (an admin, another driver): decide again next time
        await self._note(after)
        if counted:
            self._count(after.prompt, counted)
            level = logging.INFO if counted == "promote" else logging.WARNING
            log.log(level, "rollout of %s: %s", after.prompt, reason)
        if after.pending:
            await self.apply(after)

    async def verdict(self, r: Rollout, now: float) -> Verdict:
        """The guards on the current step's window: the stats buckets that overlap it
        and the feedback of the same stretch of time."""
        counts = await self.stats.window(r.prompt, r.step_started_at, now)
        baseline = VersionCounts()
        for version in r.baseline_versions:
            baseline.merge(counts.get(version) or VersionCounts())
        since_s = max(now - r.step_started_at, 1.0)
        canary_fb = await self.feedback.counts(r.prompt, r.version, since_s)
        baseline_fb = FeedbackCounts()
        for version in r.baseline_versions:
            baseline_fb += await self.feedback.counts(r.prompt, version, since_s)
        return evaluate(
            Side(counts.get(r.version) or VersionCounts(), canary_fb.negative, canary_fb.total),
            Side(baseline, baseline_fb.negative, baseline_fb.total),
            r.guards,
        )

    async def _note(self, r: Rollout) -> None:
        """The prompt's history gets the decisions that move no weights (those that do
        are its routing entries), written once: by whoever saved the decision."""
        entry = history_entry(r)
        if entry is None:
            return
        with contextlib.suppress(Exception):  # the rollout's own record has it anyway
            await self.holder.store.add_history(r.prompt, entry)

    def _completed(self, r: Rollout, by: str, now: float) -> Rollout:
        event = RolloutEvent(now, "complete", 100, by, f"{r.version} has all the traffic")
        return r.with_event(event, state="completed")

    def _count(self, prompt: str, event: str) -> None:
        if event in COUNTED_EVENTS:
            self.metrics.rollout_events.labels(prompt, event).inc()
