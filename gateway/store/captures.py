"""Where captured requests are kept (see gateway.evaluation.capture for what a record holds).

- Redis: one stream, `{prefix}captures`, shared by every replica and capped by length
  (`XADD … MAXLEN ~ capture.max_records`). Each entry has the fields `id` (request
  id), `p` (prompt, "" for a plain route) and `r` (the record as JSON).
- Embedded store with `capture.file`: JSON lines appended to the file; past
  `max_file_bytes` it is renamed `FILE.1` (`.1` to `.2`, …) and a new one begun,
  keeping `max_files` files in all.
- Embedded store without a file: the last `max_records` records, in memory.

Records are written already redacted. Reads answer newest first."""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import orjson

from gateway.config.loader import CaptureConfig
from gateway.store.redis_connect import RedisClient

Record = dict[str, Any]
Settings = Callable[[], CaptureConfig]
Fields = dict[str, Any]
Keep = Callable[[Record], bool]  # a filter beyond prompt, route and time
_PAGE = 200  # stream entries per read while searching


class CaptureLog(Protocol):
    kind: str

    async def append(self, records: list[Record]) -> None: ...

    async def get(self, request_id: str) -> Record | None: ...

    async def query(
        self,
        prompt: str | None,
        since: float | None,
        limit: int,
        route: str | None = None,
        keep: Keep | None = None,
    ) -> list[Record]:
        """Newest first: records at or after `since` (unix time), of `prompt` and
        `route` when given, that `keep` keeps, at most `limit`."""
        ...


def matches(record: Record, prompt: str | None, since: float | None, route: str | None) -> bool:
    return (
        (prompt is None or record.get("prompt") == prompt)
        and (route is None or record.get("route") == route)
        and (since is None or float(record.get("ts") or 0) >= since)
    )


class MemoryCaptureLog:
    kind = "memory"

    def __init__(self, settings: Settings) -> None:
        self._records: deque[Record] = deque(maxlen=settings().max_records)

    async def append(self, records: list[Record]) -> None:
        # Kept as JSON round-tripped copies: what a reader gets is what a store holds.
        self._records.extend(orjson.loads(orjson.dumps(r)) for r in records)

    async def get(self, request_id: str) -> Record | None:
        return next((r for r in reversed(self._records) if r["request_id"] == request_id), None)

    async def query(
        self,
        prompt: str | None,
        since: float | None,
        limit: int,
        route: str | None = None,
        keep: Keep | None = None,
    ) -> list[Record]:
        found = []
        for record in reversed(self._records):
            if since is not None and float(record.get("ts") or 0) < since:
                break  # appended in time order
            if matches(record, prompt, None, route) and (keep is None or keep(record)):
                found.append(record)
                if len(found) >= limit:
                    break
        return found


class FileCaptureLog:
    """Rotating JSON lines. Writes and reads run in a worker thread."""

    kind = "file"

    def __init__(self, path: str, settings: Settings) -> None:
        self.path = Path(path)
        self._settings = settings
        self._lock = asyncio.Lock()

    def files(self) -> list[Path]:
        """Newest first: FILE, FILE.1, …"""
        count = self._settings().max_files
        return [self.path, *(self.path.with_name(f"{self.path.name}.{i}") for i in range(1, count))]

    async def append(self, records: list[Record]) -> None:
        data = b"".join(orjson.dumps(r) + b"\n" for r in records)
        async with self._lock:
            await asyncio.to_thread(self._write, data)

    def _write(self, data: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            size = 0
        if size and size + len(data) > self._settings().max_file_bytes:
            self._rotate()
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    def _rotate(self) -> None:
        files = self.files()
        if len(files) == 1:
            self.path.unlink(missing_ok=True)
            return
        files[-1].unlink(missing_ok=True)
        for older, newer in zip(reversed(files[1:]), reversed(files[:-1]), strict=True):
            if newer.exists():
                newer.rename(older)

    async def get(self, request_id: str) -> Record | None:
        def find() -> Record | None:
            needle = orjson.dumps(request_id)
            for line in self._lines():
                if needle in line:  # cheap test before the parse
                    record: Record = orjson.loads(line)
                    if record.get("request_id") == request_id:
                        return record
            return None

        async with self._lock:
            return await asyncio.to_thread(find)

    async def query(
        self,
        prompt: str | None,
        since: float | None,
        limit: int,
        route: str | None = None,
        keep: Keep | None = None,
    ) -> list[Record]:
        def scan() -> list[Record]:
            found = []
            for line in self._lines():
                record: Record = orjson.loads(line)
                if since is not None and float(record.get("ts") or 0) < since:
                    break
                if matches(record, prompt, None, route) and (keep is None or keep(record)):
                    found.append(record)
                    if len(found) >= limit:
                        break
            return found

        async with self._lock:
            return await asyncio.to_thread(scan)

    def _lines(self) -> Iterator[bytes]:
        """Every record line, newest first."""
        for path in self.files():
            try:
                lines = path.read_bytes().splitlines()
            except FileNotFoundError:
                continue
            yield from (line for line in reversed(lines) if line.strip())


class RedisCaptureLog:
    kind = "redis"

    def __init__(self, client: RedisClient, prefix: str, settings: Settings) -> None:
        self._client = client
        self.key = f"{prefix}captures"  # STREAM: id, p (prompt), r (record JSON)
        self._settings = settings

    async def append(self, records: list[Record]) -> None:
        cap = self._settings().max_records
        pipe = self._client.pipeline(transaction=False)
        for record in records:
            fields = {
                "id": record["request_id"],
                "p": record.get("prompt") or "",
                "r": orjson.dumps(record),
            }
            pipe.xadd(self.key, fields, maxlen=cap, approximate=True)  # type: ignore[arg-type]
        await pipe.execute()

    async def _scan(self, since: float | None, visit: Callable[[Fields], bool]) -> None:
        """Stream entries newest first, a page at a time, down to `since`, until
        `visit` says it has found enough."""
        low = f"{int(since * 1000)}-0" if since is not None else "-"
        high = "+"
        while True:
            page: list[Any] = await self._client.xrevrange(self.key, high, low, count=_PAGE) or []
            for _, fields in page:
                if visit({_text(k): v for k, v in fields.items()}):
                    return
            if len(page) < _PAGE:
                return
            ms, _, seq = _text(page[-1][0]).partition("-")
            # The entry just before the last one read, in id order.
            high = f"{ms}-{int(seq) - 1}" if int(seq) else f"{int(ms) - 1}-18446744073709551615"

    async def get(self, request_id: str) -> Record | None:
        found: list[Record] = []

        def visit(fields: Fields) -> bool:
            if _text(fields.get("id", b"")) == request_id:
                found.append(orjson.loads(fields["r"]))
                return True
            return False

        await self._scan(None, visit)
        return found[0] if found else None

    async def query(
        self,
        prompt: str | None,
        since: float | None,
        limit: int,
        route: str | None = None,
        keep: Keep | None = None,
    ) -> list[Record]:
        found: list[Record] = []

        def visit(fields: Fields) -> bool:
            if prompt is not None and _text(fields.get("p", b"")) != prompt:
                return False
            record: Record = orjson.loads(fields["r"])
            if matches(record, prompt, since, route) and (keep is None or keep(record)):
                found.append(record)
            return len(found) >= limit

        if limit > 0:
            await self._scan(since, visit)
        return found


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw
