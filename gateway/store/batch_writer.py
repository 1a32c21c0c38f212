"""Writes that leave the request path: a bounded queue drained by one task in batches
(up to `batch_size` items, or what came within `flush_interval_s`). A full queue drops
the item and counts it rather than grow or slow a request. `flush()` waits until what
was queued so far is written (tests, shutdown)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

log = logging.getLogger("gateway.batches")
T = TypeVar("T")
WriteBatch = Callable[[list[T]], Awaitable[None]]


class BatchWriter(Generic[T]):
    def __init__(
        self,
        name: str,
        write: WriteBatch[T],
        settings: Callable[[], tuple[int, float]],  # (batch_size, flush_interval_s), live
        max_queued: int = 10_000,
    ) -> None:
        self.name = name
        self._write = write
        self._settings = settings
        self._queue: asyncio.Queue[T] = asyncio.Queue(max_queued)
        self._wake = asyncio.Event()
        self._flushing = 0
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0  # queue full
        self.failed = 0  # items in batches whose write raised
        self.written = 0

    def put(self, item: T) -> bool:
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self.dropped += 1
            return False
        if self._queue.qsize() >= self._settings()[0]:
            self._wake.set()
        return True

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"batch-writer-{self.name}")

    async def flush(self) -> None:
        """Until every item queued before this call has been written (or failed)."""
        self._flushing += 1
        self._wake.set()
        try:
            await self._queue.join()
        finally:
            self._flushing -= 1

    async def stop(self) -> None:
        """Write what is queued, then end the task."""
        if self._task is None:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.flush(), timeout=5.0)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            size, interval = self._settings()
            until = loop.time() + interval
            while len(batch) < size:
                try:
                    batch.append(self._queue.get_nowait())
                    continue
                except asyncio.QueueEmpty:
                    pass
                left = until - loop.time()
                if self._flushing or left <= 0:
                    break
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), left)
                except TimeoutError:
                    continue  # take what came in the meantime, then write
            try:
                await self._write(batch)
                self.written += len(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # never retried: capture is best effort
                self.failed += len(batch)
                log.warning("%s: a batch of %d not written: %s", self.name, len(batch), exc)
            finally:
                for _ in batch:
                    self._queue.task_done()
