"""Capacity of a limit, handed out in leases: the embedded store's and Redis's.

A meter (a key's or a team's rpm, tpm or budget) has two counters per window: the
capacity granted to replicas so far (never past the limit) and the use they reported.
One Lua script per meter reports use and draws more in one step, and a replica sends
all its meters' draws in one pipeline: one round trip per sync, never per request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from gateway.store.redis_connect import RedisClient, unavailable_on_error


@dataclass(frozen=True, slots=True)
class Draw:
    meter: str  # e.g. "key:support-app:rpm" (names are config names, never secrets)
    window: str  # e.g. "29412345" (a minute), "2026-12-02", "2026-12"
    limit: int
    used: int  # use since this replica's last report, added to the window's use
    want: int  # capacity asked for, granted as far as the limit allows
    ttl_s: int  # the window's counters outlive it by this much


@dataclass(frozen=True, slots=True)
class Drawn:
    granted: int  # of `want`
    granted_total: int  # to every replica in this window
    used_total: int  # reported by every replica in this window


class Leases(Protocol):
    # True: draws are answered in this process at once (`draw_now`), so limits are exact.
    local: bool

    def draw_now(self, draw: Draw) -> Drawn: ...

    async def draw(self, draws: list[Draw]) -> list[Drawn]: ...

    async def used(self, meter: str, window: str) -> int: ...


class MemoryLeases:
    """One process: every draw is answered at once."""

    local = True

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str], list[int]] = {}

    def draw_now(self, draw: Draw) -> Drawn:
        window = (draw.meter, draw.window)
        counts = self._counts.get(window)
        if counts is None:
            # Only the current windows matter: older ones go when a new one starts.
            stale = [w for w in self._counts if w[0] == draw.meter]
            for w in stale:
                del self._counts[w]
            counts = self._counts[window] = [0, 0]
        counts[1] += draw.used
        grant = min(draw.want, max(draw.limit - counts[0], 0))
        counts[0] += grant
        return Drawn(grant, counts[0], counts[1])

    async def draw(self, draws: list[Draw]) -> list[Drawn]:
        return [self.draw_now(d) for d in draws]

    async def used(self, meter: str, window: str) -> int:
        counts = self._counts.get((meter, window))
        return 0 if counts is None else counts[1]


# KEYS: granted, used. ARGV: limit, used, want, ttl. Returns {grant, granted, used}.
_DRAW = """
local granted = tonumber(redis.call('GET', KEYS[1]) or '0')
local used = redis.call('INCRBY', KEYS[2], ARGV[2])
local grant = math.min(tonumber(ARGV[3]), math.max(tonumber(ARGV[1]) - granted, 0))
if grant > 0 then granted = redis.call('INCRBY', KEYS[1], grant) end
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return {grant, granted, used}
"""


class RedisLeases:
    local = False

    def __init__(self, client: RedisClient, prefix: str) -> None:
        self._client = client
        self._prefix = prefix
        self._script = client.register_script(_DRAW)

    def _keys(self, meter: str, window: str) -> list[str]:
        base = f"{self._prefix}limit:{{{meter}:{window}}}"  # one Cluster slot per window
        return [f"{base}:granted", f"{base}:used"]

    def draw_now(self, draw: Draw) -> Drawn:
        raise NotImplementedError("Redis draws are asynchronous")

    async def draw(self, draws: list[Draw]) -> list[Drawn]:
        pipe: Any
        # `async with`: a draw cut short by its timeout gives its connection back.
        with unavailable_on_error():
            async with self._client.pipeline(transaction=False) as pipe:
                for d in draws:
                    args = [d.limit, d.used, d.want, d.ttl_s]
                    await self._script(keys=self._keys(d.meter, d.window), args=args, client=pipe)
                results = await pipe.execute()
        return [Drawn(int(r[0]), int(r[1]), int(r[2])) for r in results]

    async def used(self, meter: str, window: str) -> int:
        with unavailable_on_error():
            value = await self._client.get(self._keys(meter, window)[1])
        return int(value or 0)
