"""Per prompt-version request counts, for the rollout guards, shared by every replica.

Each replica counts finished requests locally (an observer: no I/O on the request
path) into time buckets, and a flusher writes them out about once a second in one
batch (for Redis: one pipeline, never per request) to the store's sink
(gateway.store.version_counts)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping

from gateway.proxy.call import Call
from gateway.proxy.observers import IGNORE, WATCH
from gateway.store.version_counts import Batch, StatsSink, VersionCounts, merge_into
from gateway.telemetry.recorder import RequestRecord

log = logging.getLogger("gateway.rollout")


class VersionStats:
    """The observer: counts each finished primary request of a prompt version, and
    flushes the counts to the sink every `flush_interval_s` (run `flush_forever`)."""

    def __init__(
        self, sink: StatsSink, bucket_s: float, ttl_s: float, flush_interval_s: float
    ) -> None:
        self.sink = sink
        self.bucket_s = bucket_s
        self._bucket_ms = max(int(bucket_s * 1000), 1)  # as in `bucket_starts_ms`
        self.ttl_s = ttl_s
        self.flush_interval_s = flush_interval_s
        self._pending: Batch = {}
        self._stopped = asyncio.Event()

    def on_start(self, call: Call) -> int:
        plan = call.plan
        # Suites and replays pin a version: they are not live traffic.
        live = call.policy.role == "primary" and plan.prompt and plan.version
        return WATCH if live and not plan.pinned else IGNORE

    def on_finish(self, call: Call, record: RequestRecord) -> None:
        size = self._bucket_ms
        start = int(time.time() * 1000) // size * size
        versions = self._pending.setdefault(record.prompt, {}).setdefault(start, {})
        counts = versions.get(record.version)
        if counts is None:
            counts = versions[record.version] = VersionCounts()
        counts.observe(
            record.latency_s,
            record.ttft_s,
            record.status >= 500,
            record.cost_usd,
        )

    async def flush(self) -> None:
        """Send what was counted since the last flush. On failure the counts are kept
        for the next try (those older than the TTL are dropped)."""
        batch, self._pending = self._pending, {}
        if not batch:
            return
        try:
            await self.sink.add(batch, self.ttl_s)
        except Exception:
            merge_into(batch, self._pending)
            horizon_ms = int((time.time() - self.ttl_s) * 1000)
            for buckets in batch.values():
                for start in [s for s in buckets if s < horizon_ms]:
                    del buckets[start]
            self._pending = batch
            raise

    async def flush_forever(self) -> None:
        """Until `stop()` (a flag as well as cancellation: redis-py can swallow one)."""
        while not self._stopped.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), self.flush_interval_s)
            try:
                await self.flush()
            except Exception as exc:  # Redis away: counts kept, tried again next time
                log.debug("version stats not flushed: %s", exc)

    def stop(self) -> None:
        self._stopped.set()

    async def close(self) -> None:
        """A last flush when the replica stops, so its final second is not lost."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.flush(), timeout=1.0)

    async def window(
        self, prompt: str, since: float, until: float | None = None
    ) -> Mapping[str, VersionCounts]:
        return await self.sink.window(
            prompt, since, time.time() if until is None else until, self.bucket_s
        )
