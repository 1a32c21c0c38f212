"""Labels reviewers put on captured requests (`good`, `wrong-tone`, …), each with who,
when and a note; several per request. Kept beside the capture log (which only ever
appends), keyed by request id, and never expiring: a label is somebody's work.

In memory for the embedded store; in Redis, under the configured prefix:

- `{prefix}capture:labels:{request_id}`: HASH, label → `{note, by, at}` (JSON);
- `{prefix}capture:labelled:{label}`: ZSET of the request ids with that label, by when
  it was put on."""

from __future__ import annotations

import time
from typing import Any, Protocol

import msgspec

from gateway.prompts.versions import iso
from gateway.store.redis_connect import RedisClient, unavailable_on_error


class CaptureLabel(msgspec.Struct, frozen=True, kw_only=True):
    label: str
    note: str = ""
    by: str
    at: float

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "note": self.note, "by": self.by, "at": iso(self.at)}


class CaptureLabels(Protocol):
    async def put(self, request_id: str, label: str, note: str, by: str) -> bool:
        """Put `label` on the request (again: a new note, by and at); True when new."""
        ...

    async def remove(self, request_id: str, label: str) -> bool:
        """False when the request has no such label."""
        ...

    async def of_requests(self, request_ids: list[str]) -> dict[str, list[CaptureLabel]]:
        """Each request's labels, by name, for those that have some."""
        ...

    async def requests_with(self, label: str) -> set[str]: ...


class MemoryCaptureLabels:
    def __init__(self) -> None:
        self._labels: dict[str, dict[str, CaptureLabel]] = {}

    async def put(self, request_id: str, label: str, note: str, by: str) -> bool:
        labels = self._labels.setdefault(request_id, {})
        new = label not in labels
        labels[label] = CaptureLabel(label=label, note=note, by=by, at=time.time())
        return new

    async def remove(self, request_id: str, label: str) -> bool:
        labels = self._labels.get(request_id, {})
        if labels.pop(label, None) is None:
            return False
        if not labels:
            del self._labels[request_id]
        return True

    async def of_requests(self, request_ids: list[str]) -> dict[str, list[CaptureLabel]]:
        return {
            rid: [labels[name] for name in sorted(labels)]
            for rid in request_ids
            if (labels := self._labels.get(rid))
        }

    async def requests_with(self, label: str) -> set[str]:
        return {rid for rid, labels in self._labels.items() if label in labels}


class RedisCaptureLabels:
    def __init__(self, client: RedisClient, prefix: str) -> None:
        self._client = client
        self.prefix = prefix

    def labels_key(self, request_id: str) -> str:
        return f"{self.prefix}capture:labels:{request_id}"

    def labelled_key(self, label: str) -> str:
        return f"{self.prefix}capture:labelled:{label}"

    async def put(self, request_id: str, label: str, note: str, by: str) -> bool:
        now = time.time()
        entry = msgspec.json.encode(CaptureLabel(label=label, note=note, by=by, at=now))
        pipe = self._client.pipeline(transaction=False)
        pipe.hset(self.labels_key(request_id), label, entry)
        pipe.zadd(self.labelled_key(label), {request_id: now})
        with unavailable_on_error():
            added, _ = await pipe.execute()
        return bool(added)

    async def remove(self, request_id: str, label: str) -> bool:
        pipe = self._client.pipeline(transaction=False)
        pipe.hdel(self.labels_key(request_id), label)
        pipe.zrem(self.labelled_key(label), request_id)
        with unavailable_on_error():
            removed, _ = await pipe.execute()
        return bool(removed)

    async def of_requests(self, request_ids: list[str]) -> dict[str, list[CaptureLabel]]:
        if not request_ids:
            return {}
        pipe = self._client.pipeline(transaction=False)
        for request_id in request_ids:
            pipe.hgetall(self.labels_key(request_id))
        with unavailable_on_error():
            replies = await pipe.execute()
        found = {}
        for request_id, raw in zip(request_ids, replies, strict=True):
            if raw:
                labels = [msgspec.json.decode(v, type=CaptureLabel) for v in raw.values()]
                found[request_id] = sorted(labels, key=lambda label: label.label)
        return found

    async def requests_with(self, label: str) -> set[str]:
        with unavailable_on_error():
            members: list[Any] = await self._client.zrange(self.labelled_key(label), 0, -1)
        return {m.decode() if isinstance(m, bytes) else str(m) for m in members}
