"""Spend and usage summed per UTC day by key, team and end user: the embedded store's
and Redis's. Replicas add their sums in batches; `GET /admin/spend` reads them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from gateway.store.redis_connect import RedisClient, unavailable_on_error

By = Literal["key", "team", "user"]
BYS: tuple[By, ...] = ("key", "team", "user")
FIELDS = ("requests", "input_tokens", "output_tokens", "cost_usd", "unpriced")
KEPT_DAYS = 400
MAX_DAYS = 366  # one read spans at most this many days


@dataclass(slots=True)
class Usage:
    """What one name spent on one day; these add up across replicas."""

    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    unpriced: int = 0  # answers whose model has no price: not in cost_usd

    def add(self, other: Usage) -> None:
        self.requests += other.requests
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cost_usd += other.cost_usd
        self.unpriced += other.unpriced

    def row(self, by: str, name: str) -> dict[str, Any]:
        return {
            by: name,
            "requests": self.requests,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": round(self.cost_usd, 6),
            "unpriced_requests": self.unpriced,
        }


# (day "YYYY-MM-DD", by, name) -> usage
Batch = dict[tuple[str, By, str], Usage]


class SpendLog(Protocol):
    async def add(self, batch: Batch) -> None: ...

    async def totals(self, by: By, days: list[str]) -> dict[str, Usage]: ...


def days_since(since: dt.date, today: dt.date) -> list[str]:
    start = max(since, today - dt.timedelta(days=MAX_DAYS - 1))
    count = (today - start).days + 1
    return [(start + dt.timedelta(days=i)).isoformat() for i in range(max(count, 0))]


def top(totals: dict[str, Usage], by: str, limit: int) -> list[dict[str, Any]]:
    ranked = sorted(totals.items(), key=lambda item: (-item[1].cost_usd, -item[1].requests))
    return [usage.row(by, name) for name, usage in ranked[:limit]]


class MemorySpendLog:
    def __init__(self) -> None:
        self._days: dict[tuple[str, By], dict[str, Usage]] = {}

    async def add(self, batch: Batch) -> None:
        for (day, by, name), usage in batch.items():
            self._days.setdefault((day, by), {}).setdefault(name, Usage()).add(usage)

    async def totals(self, by: By, days: list[str]) -> dict[str, Usage]:
        found: dict[str, Usage] = {}
        for day in days:
            for name, usage in self._days.get((day, by), {}).items():
                found.setdefault(name, Usage()).add(usage)
        return found


class RedisSpendLog:
    """A hash per (by, day): field `NAME\\x00what` → the sum."""

    def __init__(self, client: RedisClient, prefix: str) -> None:
        self._client = client
        self._prefix = prefix

    def _key(self, by: str, day: str) -> str:
        return f"{self._prefix}spend:{{{by}}}:{day}"

    async def add(self, batch: Batch) -> None:
        pipe: Any
        with unavailable_on_error():
            async with self._client.pipeline(transaction=False) as pipe:
                for (day, by, name), u in batch.items():
                    key = self._key(by, day)
                    for what, value in _values(u):
                        if value:
                            if isinstance(value, float):
                                pipe.hincrbyfloat(key, f"{name}\x00{what}", value)
                            else:
                                pipe.hincrby(key, f"{name}\x00{what}", value)
                    pipe.expire(key, KEPT_DAYS * 86400)
                await pipe.execute()

    async def totals(self, by: By, days: list[str]) -> dict[str, Usage]:
        pipe: Any
        with unavailable_on_error():
            async with self._client.pipeline(transaction=False) as pipe:
                for day in days:
                    pipe.hgetall(self._key(by, day))
                hashes = await pipe.execute()
        found: dict[str, Usage] = {}
        for fields in hashes:
            for raw_field, raw_value in fields.items():
                name, _, what = _text(raw_field).partition("\x00")
                usage = found.setdefault(name, Usage())
                value = _text(raw_value)
                if what == "cost_usd":
                    usage.cost_usd += float(value)
                elif what in FIELDS:
                    setattr(usage, what, getattr(usage, what) + int(value))
        return found


def _values(u: Usage) -> Iterable[tuple[str, int | float]]:
    return (
        ("requests", u.requests),
        ("input_tokens", u.input_tokens),
        ("output_tokens", u.output_tokens),
        ("cost_usd", float(u.cost_usd)),
        ("unpriced", u.unpriced),
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
