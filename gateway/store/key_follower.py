"""The task that keeps the store's client keys in the replica's memory. Requests read
`KeySnapshot.by_digest` and never wait on the store; if the store is away, the last
snapshot keeps serving: a key is never dropped because Redis is unreachable."""

from __future__ import annotations

import asyncio
import logging

from gateway.store.keys import KeySnapshot, KeyStore

log = logging.getLogger("gateway.store")
RETRY_PAUSE_S = 0.5


class KeyFollower:
    def __init__(self, store: KeyStore, snapshot: KeySnapshot) -> None:
        self.store = store
        self.snapshot = snapshot
        self.synced = False  # read from the store at least once
        self.up = True  # the last read of the store worked
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        """Read every record and swap the snapshot; on failure keep the last one."""
        async with self._lock:
            records = await self.store.all()
            self.snapshot.swap(records)
            self.synced = True

    async def follow(self) -> None:
        """Run until cancelled: every change made on any replica reaches this one."""
        while True:
            try:
                await self.store.watch(self._on_change)
                return  # the embedded store has nothing to watch
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._down(exc)
                await asyncio.sleep(RETRY_PAUSE_S)

    async def _on_change(self) -> None:
        try:
            await self.refresh()
        except Exception as exc:
            self._down(exc)
            return
        if not self.up:
            log.info("client keys in step with the store again")
        self.up = True

    def _down(self, exc: BaseException) -> None:
        if self.up:
            log.warning(
                "client keys: store unreachable, keeping the last snapshot (%s)", type(exc).__name__
            )
        self.up = False
