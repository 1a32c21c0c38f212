"""The spend tally of this replica, added to the store's daily sums every second."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

from gateway.store.spend import Batch, By, SpendLog, Usage
from gateway.telemetry.spend_tally import SpendTally

log = logging.getLogger("gateway.limits")


def batch_of(taken: dict[tuple[str, str, str], list[float]], day: str) -> Batch:
    batch: Batch = {}
    for (key, team, user), sums in taken.items():
        usage = Usage(int(sums[0]), int(sums[1]), int(sums[2]), sums[3], int(sums[4]))
        names: tuple[tuple[By, str], ...] = (("key", key), ("team", team), ("user", user))
        for by, name in names:
            if name:
                batch.setdefault((day, by, name), Usage()).add(usage)
    return batch


class SpendWriter:
    def __init__(self, tally: SpendTally, log_: SpendLog, interval_s: float = 1.0) -> None:
        self.tally, self.log, self.interval_s = tally, log_, interval_s
        self._held: Batch = {}  # what the store did not take yet

    async def flush(self) -> None:
        day = dt.datetime.now(dt.UTC).date().isoformat()
        for where, usage in batch_of(self.tally.take(), day).items():
            self._held.setdefault(where, Usage()).add(usage)
        if not self._held:
            return
        batch, self._held = self._held, {}
        try:
            async with asyncio.timeout(2.0):
                await self.log.add(batch)
        except Exception as exc:  # the store is down: keep the sums for the next try
            log.warning("spend not written yet (%s)", type(exc).__name__)
            for where, usage in batch.items():
                self._held.setdefault(where, Usage()).add(usage)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.flush()
