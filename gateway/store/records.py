"""What feedback and rollouts keep: which prompt version and target served a request,
and feedback counts in time buckets (kept by gateway.store.feedback).
In memory for the embedded store; in Redis, under the configured prefix:

- `{prefix}request:{request_id}`: STRING with a TTL of `REQUEST_INDEX_TTL_S`; which
  route, prompt, version, provider and model served it, and the client key's name.
- feedback counts: `FeedbackCounts` per prompt version in `FEEDBACK_BUCKET_S` buckets
  (named by their start, unix seconds), kept `FEEDBACK_RETENTION_S`; the keys are
  gateway.store.feedback's.

The `{prompt}` hash tags keep a prompt's keys in one Cluster slot, next to its versions."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple, Protocol

import orjson

from gateway.store.redis_connect import RedisClient, unavailable_on_error

REQUEST_INDEX_TTL_S = 24 * 3600  # feedback is accepted this long after the request
# Entries in each process's in-memory index (~280 bytes each); Redis, when configured,
# keeps every request for the TTL.
REQUEST_INDEX_MAX = 20_000
FEEDBACK_BUCKET_S = 60
FEEDBACK_RETENTION_S = 2 * 24 * 3600
FEEDBACK_EVENTS = 10_000


class ServedBy(NamedTuple):
    """Which prompt version and target served one request. A tuple of strings: many
    are kept, and the garbage collector stops tracking such tuples, so a full index
    adds nothing to its pauses."""

    request_id: str
    at: float
    route: str
    prompt: str
    version: str
    provider: str
    model: str
    key: str  # the client key's configured name ("" anonymous): feedback must match it

    def to_json(self) -> dict[str, Any]:
        return self._asdict()

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ServedBy:
        return cls(**{k: data[k] for k in cls._fields})


class RecentRequests:
    """request id → ServedBy, in memory: at most `max_entries`, each for `ttl_s`."""

    def __init__(self, ttl_s: float, max_entries: int) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: OrderedDict[str, ServedBy] = OrderedDict()
        self._puts = 0

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, entry: ServedBy) -> None:
        entries = self._entries
        entries[entry.request_id] = entry
        if len(entries) > self.max_entries:
            entries.popitem(last=False)
        self._puts += 1
        if self._puts % 1024 == 0:  # expired entries go in bulk now and then
            horizon = entry.at - self.ttl_s
            while entries and next(iter(entries.values())).at < horizon:
                entries.popitem(last=False)

    def get(self, request_id: str) -> ServedBy | None:
        entry = self._entries.get(request_id)
        if entry is None or entry.at < time.time() - self.ttl_s:
            return None
        return entry


@dataclass(frozen=True)
class FeedbackCounts:
    positive: int = 0
    negative: int = 0
    total: int = 0
    score_sum: float = 0.0  # scores on 0..1 (-1 counts as 0)

    @property
    def negative_ratio(self) -> float | None:
        return self.negative / self.total if self.total else None

    @property
    def mean_score(self) -> float | None:
        return self.score_sum / self.total if self.total else None

    def __add__(self, other: FeedbackCounts) -> FeedbackCounts:
        return FeedbackCounts(
            self.positive + other.positive,
            self.negative + other.negative,
            self.total + other.total,
            self.score_sum + other.score_sum,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "negative_ratio": self.negative_ratio,
            "mean_score": self.mean_score,
        }


def bucket_of(at: float) -> int:
    return int(at // FEEDBACK_BUCKET_S) * FEEDBACK_BUCKET_S


def buckets_since(since_s: float, now: float) -> list[int]:
    """The buckets that overlap the last `since_s` seconds (whole buckets: a bucket
    that began before the window counts in full), within the retention."""
    first = bucket_of(now - min(since_s, FEEDBACK_RETENTION_S))
    return list(range(first, bucket_of(now) + 1, FEEDBACK_BUCKET_S))


class Records(Protocol):
    """The request index (its shared part)."""

    shared: bool  # seen by every replica (Redis), or this process only

    async def index_requests(self, entries: list[ServedBy], ttl_s: float) -> None: ...

    async def served_by(self, request_id: str) -> ServedBy | None: ...


class MemoryRecords:
    """The embedded store's: the in-memory request index is the only one."""

    shared = False

    async def index_requests(self, entries: list[ServedBy], ttl_s: float) -> None:
        return None

    async def served_by(self, request_id: str) -> ServedBy | None:
        return None


class RedisRecords:
    shared = True

    def __init__(self, client: RedisClient, prefix: str) -> None:
        self._client = client
        self.prefix = prefix

    def request_key(self, request_id: str) -> str:
        return f"{self.prefix}request:{request_id}"

    async def index_requests(self, entries: list[ServedBy], ttl_s: float) -> None:
        pipe = self._client.pipeline(transaction=False)
        for entry in entries:
            pipe.set(
                self.request_key(entry.request_id),
                orjson.dumps(entry.to_json()),
                px=max(1, int(ttl_s * 1000)),
            )
        await pipe.execute()

    async def served_by(self, request_id: str) -> ServedBy | None:
        with unavailable_on_error():
            raw = await self._client.get(self.request_key(request_id))
        return ServedBy.from_json(orjson.loads(raw)) if raw else None
