"""Per prompt-version request counts, as stored for the rollout guards: the counts of
one version in one time bucket, the `StatsSink` protocol that adds and reads them, and
the embedded store's sink (the Redis one is in gateway.store.rollout_redis).

Latency and TTFT are fixed-bucket histograms, so counts from many replicas add up and
a p95 can still be estimated after merging. Reading a window merges the buckets that
overlap it."""

from __future__ import annotations

import time
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Protocol

# Upper bounds (seconds) of the histogram buckets: 5 ms to ~11 min, each 20% wider than
# the one before, so an estimated quantile is within ~10% of the true value.
HISTOGRAM_BOUNDS: tuple[float, ...] = tuple(round(0.005 * 1.2**i, 6) for i in range(65))
SLOTS = len(HISTOGRAM_BOUNDS) + 1  # the last slot holds everything above the top bound


def slot_of(seconds: float) -> int:
    return bisect_left(HISTOGRAM_BOUNDS, seconds)


def quantile(histogram: list[int], q: float) -> float | None:
    """Estimated q-quantile of a histogram, interpolating inside the bucket it falls
    in; None when the histogram is empty."""
    total = sum(histogram)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for i, count in enumerate(histogram):
        if count and seen + count >= rank:
            if i >= len(HISTOGRAM_BOUNDS):
                return HISTOGRAM_BOUNDS[-1]
            low = HISTOGRAM_BOUNDS[i - 1] if i else 0.0
            return low + (HISTOGRAM_BOUNDS[i] - low) * max(rank - seen, 0.0) / count
        seen += count
    return HISTOGRAM_BOUNDS[-1]


def _histogram() -> list[int]:
    return [0] * SLOTS


@dataclass(slots=True)
class VersionCounts:
    """What one prompt version did in some window: these add up across replicas."""

    requests: int = 0
    errors: int = 0  # status >= 500, broken streams included
    latency: list[int] = field(default_factory=_histogram)
    ttft: list[int] = field(default_factory=_histogram)
    cost_usd: float = 0.0
    priced: int = 0  # requests whose cost is known

    def observe(
        self, latency_s: float, ttft_s: float | None, error: bool, cost: float | None
    ) -> None:
        self.requests += 1
        self.errors += error
        self.latency[slot_of(latency_s)] += 1
        if ttft_s is not None:
            self.ttft[slot_of(ttft_s)] += 1
        if cost is not None:
            self.cost_usd += cost
            self.priced += 1

    def merge(self, other: VersionCounts) -> None:
        self.requests += other.requests
        self.errors += other.errors
        self.cost_usd += other.cost_usd
        self.priced += other.priced
        for i in range(SLOTS):
            self.latency[i] += other.latency[i]
            self.ttft[i] += other.ttft[i]

    def fields(self) -> dict[str, int | float]:
        """The non-zero counts as flat fields (a Redis hash per version and bucket)."""
        out: dict[str, int | float] = {}
        for name, value in (("n", self.requests), ("e", self.errors), ("p", self.priced)):
            if value:
                out[name] = value
        if self.cost_usd:
            out["c"] = self.cost_usd
        for i in range(SLOTS):
            if self.latency[i]:
                out[f"l{i}"] = self.latency[i]
            if self.ttft[i]:
                out[f"t{i}"] = self.ttft[i]
        return out

    def add_field(self, name: str, value: str) -> None:
        """The reverse of `fields`, one at a time; unknown names are ignored."""
        kind, index = name[:1], name[1:]
        if name == "n":
            self.requests += int(value)
        elif name == "e":
            self.errors += int(value)
        elif name == "p":
            self.priced += int(value)
        elif name == "c":
            self.cost_usd += float(value)
        elif kind in ("l", "t") and index.isdigit() and int(index) < SLOTS:
            (self.latency if kind == "l" else self.ttft)[int(index)] += int(value)


# prompt -> bucket start (unix ms) -> version -> counts
Batch = dict[str, dict[int, dict[str, VersionCounts]]]


class StatsSink(Protocol):
    async def add(self, batch: Batch, ttl_s: float) -> None:
        """Add the counts in one batch (one round trip); kept for `ttl_s`."""
        ...

    async def window(
        self, prompt: str, since: float, until: float, bucket_s: float
    ) -> dict[str, VersionCounts]:
        """Per version, the merged buckets that overlap [since, until] (unix time)."""
        ...


def bucket_starts_ms(since: float, until: float, bucket_s: float) -> list[int]:
    size = max(int(bucket_s * 1000), 1)
    first = int(since * 1000) // size * size
    return list(range(first, int(until * 1000) + 1, size))


def merge_into(target: Batch, batch: Batch) -> None:
    for prompt, buckets in batch.items():
        mine = target.setdefault(prompt, {})
        for start, versions in buckets.items():
            slot = mine.setdefault(start, {})
            for version, counts in versions.items():
                slot.setdefault(version, VersionCounts()).merge(counts)


class MemoryStats:
    """The embedded store's sink: one process, in memory."""

    def __init__(self) -> None:
        self._data: Batch = {}

    async def add(self, batch: Batch, ttl_s: float) -> None:
        merge_into(self._data, batch)
        horizon_ms = int((time.time() - ttl_s) * 1000)
        for buckets in self._data.values():
            for start in [s for s in buckets if s < horizon_ms]:
                del buckets[start]

    async def window(
        self, prompt: str, since: float, until: float, bucket_s: float
    ) -> dict[str, VersionCounts]:
        out: dict[str, VersionCounts] = {}
        buckets = self._data.get(prompt, {})
        for start in bucket_starts_ms(since, until, bucket_s):
            for version, counts in buckets.get(start, {}).items():
                out.setdefault(version, VersionCounts()).merge(counts)
        return out
