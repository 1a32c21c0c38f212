"""Feedback as kept: one per (request, client key), the latest replacing the one before,
counted once in the time buckets a rollout reads.

In memory for the embedded store; in Redis, under the configured prefix:

- `{prefix}feedback:given:{request_id}`: HASH, per client key name K, `e:K` the latest
  feedback (JSON) and `c:K` the bucket it is counted in (the first one's); expires
  after `FEEDBACK_RETENTION_S`. The swap (read the one before, write the new one) is
  one script, so two replicas taking feedback on one request at once count it once.
- `{prefix}feedback:{{prompt}}:{version}:{bucket}`: HASH of `positive`, `negative`,
  `total`, `score_sum` (gateway.store.records); a replacement moves its request from
  the old value to the new one within the bucket it was first counted in.
- `{prefix}feedback:events`: STREAM (`MAXLEN ~ FEEDBACK_EVENTS`) of every feedback as
  given, replacements included; reads keep the newest of each (request, key)."""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Iterable
from typing import Any, Literal, Protocol

import msgspec

from gateway.store.records import (
    FEEDBACK_BUCKET_S,
    FEEDBACK_EVENTS,
    FEEDBACK_RETENTION_S,
    REQUEST_INDEX_MAX,
    FeedbackCounts,
    bucket_of,
    buckets_since,
)
from gateway.store.redis_connect import RedisClient, unavailable_on_error

Kind = Literal["explicit", "implicit"]


class FeedbackEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One feedback on one request. Defaults: what events of the previous release lack."""

    request_id: str
    at: float
    prompt: str
    version: str
    provider: str
    model: str
    score: float  # on 0..1 (-1 is kept as 0)
    value: str  # positive or negative
    comment: str = ""  # redacted
    key: str = ""  # the client key's name ("" anonymous)
    route: str = ""
    kind: Kind = "explicit"
    signal: str | None = None
    replaced: bool = False  # it took the place of an earlier one

    def counts(self) -> FeedbackCounts:
        return FeedbackCounts(
            int(self.value == "positive"), int(self.value == "negative"), 1, self.score
        )

    def change_from(self, old: FeedbackEntry) -> FeedbackCounts:
        """What replacing `old` with this does to a bucket: the request stays counted once."""
        return FeedbackCounts(
            int(self.value == "positive") - int(old.value == "positive"),
            int(self.value == "negative") - int(old.value == "negative"),
            0,
            self.score - old.score,
        )

    def to_json(self) -> dict[str, Any]:
        return msgspec.to_builtins(self)  # type: ignore[no-any-return]


def decode_entry(raw: bytes | str) -> FeedbackEntry:
    return msgspec.json.decode(raw, type=FeedbackEntry)


def newest_each(entries: Iterable[FeedbackEntry]) -> list[FeedbackEntry]:
    """From entries newest first, the newest of each (request, key)."""
    seen: set[tuple[str, str]] = set()
    kept = []
    for entry in entries:
        if (entry.request_id, entry.key) not in seen:
            seen.add((entry.request_id, entry.key))
            kept.append(entry)
    return kept


class FeedbackLog(Protocol):
    async def give(self, entry: FeedbackEntry) -> FeedbackEntry | None:
        """Keep `entry` as its (request, key)'s feedback and count it; the one it
        replaced (its counts moved to the new value), or None for a first."""
        ...

    async def counts(self, prompt: str, version: str, since_s: float) -> FeedbackCounts:
        """Of one prompt version over the last `since_s` seconds (whole buckets)."""
        ...

    async def of_requests(self, request_ids: list[str]) -> dict[str, list[FeedbackEntry]]:
        """The current feedback of each request (one per key), for those that have some."""
        ...

    async def latest(self, since: float | None) -> list[FeedbackEntry]:
        """Newest first, the newest of each (request, key) among the last
        `FEEDBACK_EVENTS` feedback, given at or after `since` (unix time)."""
        ...


class MemoryFeedback:
    def __init__(self) -> None:
        self._buckets: dict[tuple[str, str], dict[int, FeedbackCounts]] = {}
        # request id → key → (feedback, the bucket it is counted in); as many requests
        # as the in-memory request index holds (feedback on older ones is refused).
        self._given: OrderedDict[str, dict[str, tuple[FeedbackEntry, int]]] = OrderedDict()
        self.events: deque[FeedbackEntry] = deque(maxlen=FEEDBACK_EVENTS)

    async def give(self, entry: FeedbackEntry) -> FeedbackEntry | None:
        given = self._given.setdefault(entry.request_id, {})
        self._given.move_to_end(entry.request_id)
        if len(self._given) > REQUEST_INDEX_MAX:
            self._given.popitem(last=False)
        old, bucket = given.get(entry.key, (None, bucket_of(entry.at)))
        change = entry.counts() if old is None else entry.change_from(old)
        entry = msgspec.structs.replace(entry, replaced=old is not None)
        given[entry.key] = (entry, bucket)
        buckets = self._buckets.setdefault((entry.prompt, entry.version), {})
        for stale in [b for b in buckets if b < entry.at - FEEDBACK_RETENTION_S]:
            del buckets[stale]
        buckets[bucket] = buckets.get(bucket, FeedbackCounts()) + change
        self.events.append(entry)
        return old

    async def counts(self, prompt: str, version: str, since_s: float) -> FeedbackCounts:
        buckets = self._buckets.get((prompt, version), {})
        total = FeedbackCounts()
        for bucket in buckets_since(since_s, time.time()):
            total += buckets.get(bucket, FeedbackCounts())
        return total

    async def of_requests(self, request_ids: list[str]) -> dict[str, list[FeedbackEntry]]:
        found = {}
        for request_id in request_ids:
            given = self._given.get(request_id)
            if given:
                found[request_id] = [entry for entry, _ in given.values()]
        return found

    async def latest(self, since: float | None) -> list[FeedbackEntry]:
        newest = (e for e in reversed(self.events) if since is None or e.at >= since)
        return newest_each(newest)


# KEYS[1] the request's HASH; ARGV: key name, the feedback's JSON as a first one, its
# bucket, TTL in ms, its JSON as a replacement. Answers {the one before or false, the
# bucket counted in}.
_SWAP = """
redis.call('HSETNX', KEYS[1], 'c:' .. ARGV[1], ARGV[3])
local bucket = redis.call('HGET', KEYS[1], 'c:' .. ARGV[1])
local old = redis.call('HGET', KEYS[1], 'e:' .. ARGV[1])
redis.call('HSET', KEYS[1], 'e:' .. ARGV[1], old and ARGV[5] or ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {old, bucket}
"""


class RedisFeedback:
    def __init__(self, client: RedisClient, prefix: str) -> None:
        self._client = client
        self.prefix = prefix
        self._swap = client.register_script(_SWAP)

    def given_key(self, request_id: str) -> str:
        return f"{self.prefix}feedback:given:{request_id}"

    def bucket_key(self, prompt: str, version: str, bucket: int) -> str:
        return f"{self.prefix}feedback:{{{prompt}}}:{version}:{bucket}"

    @property
    def events_key(self) -> str:
        return f"{self.prefix}feedback:events"

    async def give(self, entry: FeedbackEntry) -> FeedbackEntry | None:
        ttl_ms = (FEEDBACK_RETENTION_S + FEEDBACK_BUCKET_S) * 1000
        first = msgspec.json.encode(msgspec.structs.replace(entry, replaced=False))
        replacing = msgspec.json.encode(msgspec.structs.replace(entry, replaced=True))
        with unavailable_on_error():
            reply = await self._swap(
                keys=[self.given_key(entry.request_id)],
                args=[entry.key, first, bucket_of(entry.at), ttl_ms, replacing],
            )
        before, bucket = reply[0], int(reply[1])
        old = decode_entry(before) if before else None
        change = entry.counts() if old is None else entry.change_from(old)
        key = self.bucket_key(entry.prompt, entry.version, bucket)
        pipe = self._client.pipeline(transaction=False)
        for field, step in (("positive", change.positive), ("negative", change.negative)):
            if step:
                pipe.hincrby(key, field, step)
        if change.total:
            pipe.hincrby(key, "total", change.total)
        pipe.hincrbyfloat(key, "score_sum", change.score_sum)
        pipe.expire(key, FEEDBACK_RETENTION_S + FEEDBACK_BUCKET_S)
        event = replacing if old is not None else first
        pipe.xadd(self.events_key, {"e": event}, maxlen=FEEDBACK_EVENTS, approximate=True)
        with unavailable_on_error():
            await pipe.execute()
        return old

    async def counts(self, prompt: str, version: str, since_s: float) -> FeedbackCounts:
        pipe = self._client.pipeline(transaction=False)
        for bucket in buckets_since(since_s, time.time()):
            pipe.hgetall(self.bucket_key(prompt, version, bucket))
        total = FeedbackCounts()
        with unavailable_on_error():
            replies = await pipe.execute()
        for raw in replies:
            fields = {_text(k): _text(v) for k, v in (raw or {}).items()}
            total += FeedbackCounts(
                int(fields.get("positive", 0)),
                int(fields.get("negative", 0)),
                int(fields.get("total", 0)),
                float(fields.get("score_sum", 0.0)),
            )
        return total

    async def of_requests(self, request_ids: list[str]) -> dict[str, list[FeedbackEntry]]:
        if not request_ids:
            return {}
        pipe = self._client.pipeline(transaction=False)
        for request_id in request_ids:
            pipe.hgetall(self.given_key(request_id))
        with unavailable_on_error():
            replies = await pipe.execute()
        found = {}
        for request_id, raw in zip(request_ids, replies, strict=True):
            entries = [decode_entry(v) for k, v in (raw or {}).items() if _text(k)[:2] == "e:"]
            if entries:
                found[request_id] = sorted(entries, key=lambda e: e.key)
        return found

    async def latest(self, since: float | None) -> list[FeedbackEntry]:
        low = f"{int(since * 1000)}-0" if since is not None else "-"
        with unavailable_on_error():
            page: list[Any] = (
                await self._client.xrevrange(self.events_key, "+", low, count=FEEDBACK_EVENTS) or []
            )
        entries = (_event(fields) for _, fields in page)
        return newest_each(e for e in entries if since is None or e.at >= since)


def _event(fields: dict[Any, Any]) -> FeedbackEntry:
    return decode_entry(fields.get(b"e", fields.get("e")) or b"{}")


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw
