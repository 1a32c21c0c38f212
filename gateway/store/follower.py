"""The task that keeps the routing snapshot in step with the store. The request path
never waits on the store: it reads `PromptsHolder.current`, swapped whole when the
store changes; if the store is away the last snapshot keeps serving.

A store that has lost its data (its data set id is gone or new, or a prompt the
snapshot knows is missing: prompts are never deleted) is not read as "no prompts":
the snapshot keeps serving, and what it knew is written back where the store lacks
it, then the config file's prompts are pushed again, as at boot."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from gateway.store.base import Loaded, Store
from gateway.store.errors import StoreUnavailable
from gateway.store.snapshot import PromptsSnapshot
from gateway.telemetry.metrics import Metrics

log = logging.getLogger("gateway.store")
Seed = Callable[[], Awaitable[None]]
OnSwap = Callable[[PromptsSnapshot], None]


@dataclass
class DataLoss:
    """The last time this replica found the store without its data, for `/readyz`."""

    noticed_at: float
    restored_at: float | None = None  # None: not written back yet
    prompts_restored: int = 0  # written by this replica; other replicas may write the rest


class PromptsHolder:
    """The current snapshot plus what `/readyz` and `gateway_store_up` report."""

    def __init__(self, store: Store, metrics: Metrics, seed: Seed | None = None) -> None:
        self.store = store
        self.metrics = metrics
        self._seed = seed  # pushes the config file's prompts; at boot and after a loss
        self.on_swap: OnSwap | None = None  # told of each new snapshot (the drift gauge)
        self._seeded = False  # at boot: retried until it succeeds
        self.dataset: str | None = None  # the store's data set id, as last read
        self.data_loss: DataLoss | None = None
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
                loaded = await self._load()
            except Exception as exc:  # any store failure: keep the last snapshot
                self.mark_down(exc)
                raise
            self._swap(PromptsSnapshot.from_states(loaded.states))
            self.mark_up()

    async def _load(self) -> Loaded:
        if not self._seeded:
            await self._push_config()
            self.dataset = await self.store.mark_dataset()
            self._seeded = True
        loaded = await self.store.load_marked()
        lost = self.synced and self.current.prompts.keys() - loaded.states.keys()
        if loaded.dataset == self.dataset and not lost:
            return loaded
        return await self._restore()

    async def _push_config(self) -> None:
        if self._seed is not None:
            await self._seed()

    async def _restore(self) -> Loaded:
        """Write back what the snapshot knew where the store lacks it (every replica may
        try at once: each prompt is written by the first only), push the config's
        prompts, mark the data set. Raises, keeping the snapshot, if the store is
        lost again meanwhile: the next refresh tries again."""
        if self.data_loss is None or self.data_loss.restored_at is not None:
            self.data_loss = DataLoss(noticed_at=time.time())
            self.metrics.store_data_loss.inc()
            log.error("the store has lost its data: serving and writing back the snapshot")
        for state in self.current.states().values():
            if await self.store.restore_prompt(state):
                self.data_loss.prompts_restored += 1
        await self._push_config()
        self.dataset = await self.store.mark_dataset()
        loaded = await self.store.load_marked()
        if loaded.dataset != self.dataset:
            raise StoreUnavailable("the store lost its data again while being restored")
        self.data_loss.restored_at = time.time()
        log.warning("store restored: %d prompts written back", self.data_loss.prompts_restored)
        return loaded

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
        if self.on_swap is not None:
            self.on_swap(snapshot)

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
