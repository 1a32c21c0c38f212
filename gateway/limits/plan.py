"""A key's limits as meters: its own and its team's, made once per key and config."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.config.keys import Budget, ClientKey, Limits
from gateway.config.loader import GatewayConfig
from gateway.limits.meter import Meter

USD = 1_000_000  # budgets count micro-dollars: the store adds integers


@dataclass(slots=True)
class Rule:
    meter: Meter
    limit: str  # "rpm", "tpm", "budget"
    scope: str  # "key" or "team"
    period: str  # "minute", "day", "month"


@dataclass(slots=True)
class Slots:
    """max_concurrent, counted by each replica."""

    limit: int
    busy: int = 0


@dataclass(slots=True)
class KeyPlan:
    key: ClientKey
    config_hash: str
    team: str
    rules: list[Rule] = field(default_factory=list)
    slots: list[tuple[Slots, str]] = field(default_factory=list)  # with the scope
    tokens: bool = False  # a tpm rule: estimate the tokens
    budgeted: bool = False

    @property
    def empty(self) -> bool:
        return not self.rules and not self.slots


def plan_of(
    key: ClientKey,
    config: GatewayConfig,
    meters: dict[str, Meter],
    slots: dict[str, Slots],
) -> KeyPlan:
    team = config.teams.get(key.team) if key.team else None
    plan = KeyPlan(key, config.hash, key.team or "")
    fraction = config.limits.lease_fraction
    scopes: list[tuple[str, str, Limits, Budget | None]] = [
        ("key", f"key:{key.name}", key.limits, key.budget)
    ]
    if team is not None:
        scopes.append(("team", f"team:{team.name}", team.limits, team.budget))
    for scope, prefix, limits, budget in scopes:
        for what, value in (("rpm", limits.rpm), ("tpm", limits.tpm)):
            if value is not None:
                meter = _meter(meters, f"{prefix}:{what}", "minute", value, fraction)
                plan.rules.append(Rule(meter, what, scope, "minute"))
                plan.tokens |= what == "tpm"
        if budget is not None:
            amount = int(budget.usd * USD)
            name = f"{prefix}:budget:{budget.period}"
            meter = _meter(meters, name, budget.period, amount, fraction)
            plan.rules.append(Rule(meter, "budget", scope, budget.period))
            plan.budgeted = True
        if limits.max_concurrent is not None:
            found = slots.get(prefix)
            if found is None:
                found = slots[prefix] = Slots(limits.max_concurrent)
            found.limit = limits.max_concurrent
            plan.slots.append((found, scope))
    return plan


def _meter(meters: dict[str, Meter], name: str, kind: str, limit: int, fraction: float) -> Meter:
    batch = max(int(limit * fraction), 1)
    meter = meters.get(name)
    if meter is None:
        meter = meters[name] = Meter(name, kind, limit, batch)
    meter.set_limit(limit, batch)
    return meter
