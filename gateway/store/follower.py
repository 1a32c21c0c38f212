"""The task that keeps the routing snapshot in step with the store. The request path
never waits on the store: it reads `PromptsHolder.current`, swapped whole when the
store changes; if the store is away the last snapshot keeps serving."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from gateway.store.base import Store
from gateway.store.snapshot import PromptsSnapshot
from gateway.telemetry.metrics import Metrics

log = logging.getLogger("gateway.store")
Seed = Callable[[], Awaitable[None]]


class PromptsHolder:
    """The current snapshot plus what `/readyz` and `gateway_store_up` report."""

    def __init__(self, store: Store, metrics: Metrics, seed: Seed | None = None) -> None:
        self.store = store
        self.metrics = metrics
        self._seed = seed  # pushes the config file's prompts; retried until it succeeds
        self.current = PromptsSnapshot()
        self.synced = False
        self.store_up = True
        self.last_error = ""
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        """Load everything from the store and swap the snapshot; on failure keep
        serving the last one."""
        async with self._lock:
            try:
                if self._seed is not None:
                    await self._seed()
                    self._seed = None
                states = await self.store.load_all()
            except Exception as exc:  # any store failure: keep the last snapshot
                self.mark_down(exc)
                raise
            self._swap(PromptsSnapshot.from_states(states))
            self.mark_up()

    def _swap(self, snapshot: PromptsSnapshot) -> None:
        old = self.current
        self.current = snapshot
        self.synced = True
        gauge = self.metrics.prompt_weight
        live = {(n, v): w for n, e in snapshot.prompts.items() for v, w in e.weights.items()}
        for name, entry in old.prompts.items():
            for version in entry.weights:
                if (name, version) not in live:
                    gauge.labels(name, version).set(0)
        for (name, version), weight in live.items():
            gauge.labels(name, version).set(weight)

    def mark_up(self) -> None:
        if not self.store_up:
            log.info("store reachable again")
        self.store_up = True
        self.last_error = ""
        self.metrics.store_up.set(1)

    def mark_down(self, exc: BaseException) -> None:
        if self.store_up:
            log.warning("store unreachable, serving the last snapshot: %s", exc)
        self.store_up = False
        self.last_error = f"{type(exc).__name__}: {exc}"[:200]
        self.metrics.store_up.set(0)

    async def follow(self) -> None:
        """Run until cancelled: keep the snapshot in step with changes made elsewhere."""
        while True:
            try:
                await self.store.watch(self._on_change)
                return  # the embedded store has nothing to watch
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.mark_down(exc)
                await asyncio.sleep(0.5)

    async def _on_change(self) -> None:
        try:
            await self.refresh()
        except Exception as exc:  # logged and counted in mark_down; the watcher goes on
            log.debug("refresh after a change notice failed: %s", exc)
