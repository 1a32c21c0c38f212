"""The windows limits count in: the minute of rpm and tpm, the UTC day or month of a
budget. A window has an id (the same on every replica) and seconds left."""

from __future__ import annotations

import datetime as dt

MINUTE_S = 60


class Calendar:
    """The current day and month, worked out again only when one ends."""

    __slots__ = ("_day", "_day_end", "_month", "_month_end")

    def __init__(self) -> None:
        self._day_end = self._month_end = 0.0
        self._day = self._month = ""

    def minute(self, now: float) -> tuple[str, float]:
        index = int(now // MINUTE_S)
        return str(index), (index + 1) * MINUTE_S - now

    def period(self, period: str, now: float) -> tuple[str, float]:
        if now >= self._day_end:
            self._roll(now)
        if period == "day":
            return self._day, self._day_end - now
        return self._month, self._month_end - now

    def _roll(self, now: float) -> None:
        today = dt.datetime.fromtimestamp(now, dt.UTC).date()
        tomorrow = today + dt.timedelta(days=1)
        first = today.replace(day=1)
        next_month = (first + dt.timedelta(days=32)).replace(day=1)
        self._day, self._month = today.isoformat(), today.strftime("%Y-%m")
        self._day_end = _midnight(tomorrow)
        self._month_end = _midnight(next_month)


def _midnight(day: dt.date) -> float:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()


def ttl_s(kind: str) -> int:
    """How long a window's counters are kept in the store: past its end, for reports."""
    return {"day": 2 * 86400, "month": 32 * 86400}.get(kind, 2 * MINUTE_S)


def reset_text(seconds: float) -> str:
    """OpenAI's form of x-ratelimit-reset-*: `6m0s`, `20s`, `1h2m3s`."""
    total = max(int(seconds + 0.999), 1)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"
