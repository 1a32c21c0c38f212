"""One limit of one key or team, as one replica sees it: the capacity it drew from the
store for the current window, and what it used of it.

A replica admits a request while its use stays within what it was granted plus one
batch (`slack`): it never waits for the store, and asks for the next batch in the
background before the last one is gone. Once the store grants less than asked, the
window is spent for this replica and only what it holds is served. So each replica
overshoots a window by at most one batch (and, for tokens, one request's estimate
and what requests in flight use beyond their estimates)."""

from __future__ import annotations

from gateway.limits.windows import ttl_s
from gateway.store.leases import Draw, Drawn, Leases


class Meter:
    __slots__ = (
        "batch",
        "exhausted",
        "granted",
        "granted_total",
        "kind",
        "limit",
        "name",
        "unreported",
        "used",
        "used_total",
        "window",
    )

    def __init__(self, name: str, kind: str, limit: int, batch: int) -> None:
        self.name = name  # e.g. "key:support-app:rpm"
        self.kind = kind  # "minute", "day", "month": which window it counts in
        self.limit = limit
        self.batch = batch
        self.window = ""
        self.granted = self.used = self.unreported = 0
        self.granted_total = self.used_total = 0  # every replica's, as last reported
        self.exhausted = False

    def set_limit(self, limit: int, batch: int) -> None:
        if limit != self.limit:  # a reload: the store's grants are judged anew
            self.limit, self.batch, self.exhausted = limit, batch, False

    def roll(self, window: str) -> None:
        if window != self.window:
            self.window = window
            self.granted = self.used = self.unreported = 0
            self.granted_total = self.used_total = 0
            self.exhausted = False

    def fits(self, cost: int, leases: Leases, store_ok: bool, fail_open: bool) -> bool:
        """Whether `cost` more fits now (the window rolled already)."""
        if leases.local:  # one process: the store answers at once, the limit is exact
            need = self.used + cost - self.granted
            if need > 0 and not self.exhausted:
                # A batch at a time (never past the limit): fewer draws, still exact.
                want = max(need, self.batch)
                self.apply(leases.draw_now(self.draw(want)), want)
            return self.used + cost <= self.granted
        if not store_ok:
            # Open: each replica counts alone against the whole limit; closed: only
            # what it holds.
            return self.used + cost <= (self.limit if fail_open else self.granted)
        if self.exhausted:
            return self.used + cost <= self.granted
        return self.used - self.granted < self.batch

    def charge(self, amount: int) -> None:
        self.used += amount
        self.unreported += amount

    def low(self) -> bool:
        """Less than half a batch left: time to draw the next one."""
        return not self.exhausted and self.granted - self.used < self.batch // 2 + 1

    def want(self) -> int:
        return 0 if self.exhausted else max(self.used - self.granted, 0) + self.batch

    def draw(self, want: int) -> Draw:
        draw = Draw(self.name, self.window, self.limit, self.unreported, want, ttl_s(self.kind))
        self.unreported = 0
        return draw

    def apply(self, drawn: Drawn, want: int) -> None:
        self.granted += drawn.granted
        self.granted_total, self.used_total = drawn.granted_total, drawn.used_total
        if drawn.granted < want:
            self.exhausted = True

    def remaining(self) -> int:
        """Of the limit, as far as this replica knows: other replicas' grants count as used."""
        others = max(self.granted_total - self.granted, 0)
        return max(self.limit - others - self.used, 0)
