"""Drift as the gateway reports it (SPEC §9): a history entry when a serving approved
version's targets move off the ones it was approved on (and one when they come back),
and the gauge `gateway_prompt_drift{prompt,version}`.

Every replica reloads the same file, so before writing, each reads the prompt's
history: a drift already recorded with the same targets is not written again. Two
replicas reloading at the very same moment can both miss the other's entry and write
two; the check is a read, not a lock, and a duplicate costs one extra line of history."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence

from gateway.config.drift import TargetCheck, check_states, drifted
from gateway.config.loader import GatewayConfig, RouteConfig
from gateway.prompts.history import HistoryEntry
from gateway.store.base import HISTORY_LIMIT, Store
from gateway.store.snapshot import PromptsSnapshot
from gateway.telemetry.metrics import Metrics

log = logging.getLogger("gateway.drift")
DRIFT_BY = "config"
RESOLVED = "drift resolved"
Models = Callable[[], Mapping[str, RouteConfig]]


def latest_drift(history: Sequence[HistoryEntry], version: str) -> HistoryEntry | None:
    """The newest drift entry of `version` (history is newest first)."""
    return next((e for e in history if e.kind == "drift" and e.version == version), None)


def drift_entry(
    check: TargetCheck, latest: HistoryEntry | None, config_hash: str
) -> HistoryEntry | None:
    """The entry to write for `check`, None when history already says it: a drift with
    the same targets, or no drift recorded that is still open."""
    detail = {"config": config_hash, "route": check.route}
    if check.drifted:
        if latest is not None and latest.after == check.now_labels:
            return None
        now = ", ".join(check.now_labels) or "no target (the route is gone)"
        why = (
            f"route {check.route!r} now sends {check.version} to {now} instead of "
            f"{', '.join(check.approved_labels)} (config {config_hash})"
        )
        return HistoryEntry(
            "drift",
            time.time(),
            DRIFT_BY,
            why,
            check.approved_labels,
            check.now_labels,
            check.version,
            detail,
        )
    if latest is None or latest.after == check.approved_labels:
        return None
    why = (
        f"{RESOLVED}: route {check.route!r} is back on the approved targets (config {config_hash})"
    )
    return HistoryEntry(
        "drift",
        time.time(),
        DRIFT_BY,
        why,
        latest.after,
        check.approved_labels,
        check.version,
        detail,
    )


class DriftReport:
    """The drift gauge of this process and the drift entries of the store's history."""

    def __init__(self, store: Store, metrics: Metrics, models: Models) -> None:
        self.store = store
        self.metrics = metrics
        self.models = models  # the running config's routes
        self._shown: set[tuple[str, str]] = set()

    def show(self, checks: Sequence[TargetCheck]) -> None:
        """1 for a drifted version, 0 for a watched one that is not; a series that is
        no longer watched goes to 0 (set, not removed: with several workers a removed
        series would stay in the worker's file at its last value)."""
        gauge = self.metrics.prompt_drift
        now = {(c.prompt, c.version): c.drifted for c in checks}
        for prompt, version in self._shown - now.keys():
            gauge.labels(prompt, version).set(0)
        for (prompt, version), is_drifted in now.items():
            gauge.labels(prompt, version).set(1 if is_drifted else 0)
        self._shown = set(now)

    def snapshot_changed(self, snapshot: PromptsSnapshot) -> None:
        """A new snapshot may make a drifted version live, or take one off."""
        self.show(check_states(snapshot.states(), self.models()))

    async def record(self, checks: Sequence[TargetCheck], config_hash: str) -> list[HistoryEntry]:
        """Write what history does not say yet; the entries written."""
        written: list[HistoryEntry] = []
        for prompt in sorted({c.prompt for c in checks}):
            history = await self.store.history(prompt, HISTORY_LIMIT)
            for check in (c for c in checks if c.prompt == prompt):
                entry = drift_entry(check, latest_drift(history, check.version), config_hash)
                if entry is None:
                    continue
                await self.store.add_history(prompt, entry)
                written.append(entry)
                log.warning("prompt %r %s: %s", prompt, check.version, entry.reason)
        return written

    async def at_boot(self, config: GatewayConfig, snapshot: PromptsSnapshot) -> None:
        """A start is not a reload: the file is served as it is, even with block_drift
        (refusing to start would turn a restart or a scale-up into an outage, while
        the replicas already running keep their config). Its drift is reported."""
        checks = check_states(snapshot.states(), config.models)
        self.show(checks)
        found = drifted(checks)
        if found:
            log.warning(
                "%d approved version(s) drift under config %s%s: %s",
                len(found),
                config.hash,
                " (block_drift refuses reloads that drift; a start serves its file)"
                if config.control.change_control.block_drift
                else "",
                "; ".join(c.describe() for c in found),
            )
        try:
            await self.record(checks, config.hash)
        except Exception as exc:  # the store is down: the next reload records it
            log.warning("drift not recorded in history yet: %s", exc)
