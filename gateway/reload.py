"""Live configuration: reload on SIGHUP, on a change of the file on disk, and on
`POST /admin/reload`. The new file is validated whole before anything changes; a bad
file keeps the running config. A good one swaps one immutable runtime, so requests in
flight finish on the config they started with."""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.config.drift import TargetCheck, check_states, new_drift
from gateway.config.loader import GatewayConfig
from gateway.config.source import ConfigError
from gateway.guards.schemas import load_checked
from gateway.proxy.runtime import RuntimeHolder, build_runtime
from gateway.store.base import seed_prompts
from gateway.store.drift_report import DriftReport
from gateway.store.follower import PromptsHolder
from gateway.telemetry.metrics import Metrics

log = logging.getLogger("gateway.reload")


@dataclass(frozen=True)
class ReloadResult:
    ok: bool
    hash: str
    error: str = ""
    changes: tuple[str, ...] = ()
    code: str = "invalid_config"  # of the 400 `POST /admin/reload` answers


def describe_changes(old: GatewayConfig, new: GatewayConfig) -> tuple[str, ...]:
    """What a reload changed, for the log: sections' entries added, removed, changed."""
    changes: list[str] = []
    sections: dict[str, tuple[Any, Any]] = {
        "routes": (old.models, new.models),
        "providers": (old.providers, new.providers),
        "prompts": (old.prompts, new.prompts),
        "pricing": (old.pricing, new.pricing),
        "keys": ({k.name: k for k in old.keys}, {k.name: k for k in new.keys}),
    }
    for section, (before, after) in sections.items():
        for name in sorted(after.keys() - before.keys()):
            changes.append(f"{section} +{name}")
        for name in sorted(before.keys() - after.keys()):
            changes.append(f"{section} -{name}")
        for name in sorted(before.keys() & after.keys()):
            if before[name] != after[name]:
                changes.append(f"{section} ~{name}")
    for section in ("server", "redis", "logging", "metrics", "shadow", "capture", "rollout"):
        if getattr(old, section) != getattr(new, section):
            changes.append(f"{section} changed")
    return tuple(changes)


def drift_refused(found: list[TargetCheck], path: str) -> str:
    """Why `block_drift` refuses a reload, naming every version it would move."""
    return (
        f"{path}: [change_control] block_drift = true and this config changes where "
        f"approved versions go: {'; '.join(c.describe() for c in found)}. Push a version on "
        "a route with the new targets and approve it, or move its weight and labels off."
    )


class Reloader:
    def __init__(
        self, holder: RuntimeHolder, prompts: PromptsHolder, metrics: Metrics, drift: DriftReport
    ) -> None:
        self.holder = holder
        self.prompts = prompts
        self.metrics = metrics
        self.drift = drift
        self._lock = asyncio.Lock()
        # The file as last read, so the watcher knows when it changes again.
        self.signature = file_signature(self.path)

    @property
    def path(self) -> Path:
        return Path(self.holder.current.config.path)

    async def reload(self, trigger: str) -> ReloadResult:
        async with self._lock:
            old = self.holder.current
            self.signature = await asyncio.to_thread(file_signature, self.path)
            try:
                # Reading a file is quick, but never on the event loop.
                config = await asyncio.to_thread(load_checked, self.path)
            except ConfigError as exc:
                self.metrics.config_reloads.labels("failure").inc()
                log.error(
                    "config reload (%s) failed, keeping config %s: %s",
                    trigger,
                    old.config.hash,
                    exc,
                )
                return ReloadResult(False, old.config.hash, str(exc))
            states = self.prompts.current.states()
            before = check_states(states, old.config.models)
            found = new_drift(before, check_states(states, config.models))
            if found and config.control.change_control.block_drift:
                self.metrics.config_reloads.labels("failure").inc()
                error = drift_refused(found, config.path)
                log.error(
                    "config reload (%s) refused, keeping %s: %s", trigger, old.config.hash, error
                )
                return ReloadResult(False, old.config.hash, error, code="drift_blocked")
            changes = describe_changes(old.config, config)
            self.holder.current = build_runtime(config, old.parts)
            self.metrics.config_reloads.labels("success").inc()
            log.info(
                "config reloaded (%s): %s -> %s; %s",
                trigger,
                old.config.hash,
                config.hash,
                ", ".join(changes) or "no changes",
            )
        if config.prompts != old.config.prompts:
            try:
                await seed_prompts(self.prompts.store, config.prompts, config.models)
                await self.prompts.refresh()
            except Exception as exc:  # the store is down: the follower catches up later
                log.warning("config prompts not pushed yet: %s", exc)
        await self._report_drift(before, config)
        return ReloadResult(True, config.hash, changes=changes)

    async def _report_drift(self, before: list[TargetCheck], config: GatewayConfig) -> None:
        """The gauge, and history for what drifted or moved (drift resolved included)."""
        after = check_states(self.prompts.current.states(), config.models)
        self.drift.show(after)
        unchanged = set(before)
        moved = [c for c in after if c.drifted or c not in unchanged]
        try:
            await self.drift.record(moved, config.hash)
        except Exception as exc:  # the store is down: the next reload or start records it
            log.warning("drift not recorded in history yet: %s", exc)


def file_signature(path: Path) -> tuple[str, int, int, int] | None:
    """Changes when the file is edited in place, replaced by a rename, or reached
    through a swapped symlink (Kubernetes ConfigMaps)."""
    try:
        real = os.path.realpath(path)
        st = os.stat(real)
    except OSError:
        return None
    return real, st.st_ino, st.st_mtime_ns, st.st_size


async def watch_file(reloader: Reloader, interval_s: float = 1.0) -> None:
    """Poll the config file; reload when its signature changes. Polling is portable
    and notices every kind of replacement within `interval_s`."""
    while True:
        await asyncio.sleep(interval_s)
        current = await asyncio.to_thread(file_signature, reloader.path)
        if current is None or current == reloader.signature:
            continue
        # Let a writer finish: reload once the file has stopped changing.
        await asyncio.sleep(min(0.2, interval_s))
        settled = await asyncio.to_thread(file_signature, reloader.path)
        if settled == current:
            await reloader.reload("file changed")
