"""Spend and usage of the requests answered, summed per (key, team, end user) until
the next flush hands them to the store (gateway.limits.spend_writer)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.telemetry.recorder import RequestRecord

# requests, input tokens, output tokens, cost in USD, answers with no price
Sums = list[float]


class SpendTally:
    __slots__ = ("pending",)

    def __init__(self) -> None:
        self.pending: dict[tuple[str, str, str], Sums] = {}

    def add(self, r: RequestRecord) -> None:
        who = (r.key, r.team, r.user)
        sums = self.pending.get(who)
        if sums is None:
            sums = self.pending[who] = [0, 0, 0, 0.0, 0]
        sums[0] += 1
        usage = r.usage
        if usage is not None:
            sums[1] += usage.input_tokens
            sums[2] += usage.output_tokens
            if r.cost_usd is None:
                sums[4] += 1
            else:
                sums[3] += r.cost_usd

    def take(self) -> dict[tuple[str, str, str], Sums]:
        taken, self.pending = self.pending, {}
        return taken
