"""Client keys, teams and their limits: `[[keys]]` and `[teams.NAME]`.

One `ClientKey` type serves keys from the config and keys kept in the store, so the
request path asks one snapshot and never knows where a key came from.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from gateway.config.source import Table

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
BudgetPeriod = Literal["day", "month"]
BUDGET_PERIODS: tuple[BudgetPeriod, ...] = ("day", "month")


@dataclass(frozen=True, slots=True)
class Limits:
    """Rates a key or a team may use; None: no such limit."""

    rpm: int | None = None  # requests per minute
    tpm: int | None = None  # input + output tokens per minute
    max_concurrent: int | None = None

    def any(self) -> bool:
        return self.rpm is not None or self.tpm is not None or self.max_concurrent is not None


@dataclass(frozen=True, slots=True)
class Budget:
    """Spend allowed per calendar period (UTC), priced from `[pricing]`."""

    usd: float
    period: BudgetPeriod = "month"


@dataclass(frozen=True, slots=True)
class Team:
    name: str
    limits: Limits = field(default_factory=Limits)
    budget: Budget | None = None


@dataclass(frozen=True, slots=True)
class ClientKey:
    name: str
    sha256: str
    routes: frozenset[str] | None = None  # None: every route
    team: str | None = None
    limits: Limits = field(default_factory=Limits)
    budget: Budget | None = None
    expires_at: float | None = None  # unix seconds; None: never
    metadata: Mapping[str, str] = field(default_factory=dict)
    source: Literal["config", "store"] = "config"
    # Precomputed: the request path asks this one attribute of every key. A team may
    # carry limits of its own, so a key in a team is looked at further.
    limited: bool = field(init=False, default=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        limited = self.limits.any() or self.budget is not None or self.team is not None
        object.__setattr__(self, "limited", limited)

    def allows(self, route: str) -> bool:
        return self.routes is None or route in self.routes


def limits_table(t: Table) -> Limits:
    limits = Limits(
        rpm=_optional_count(t, "rpm"),
        tpm=_optional_count(t, "tpm"),
        max_concurrent=_optional_count(t, "max_concurrent"),
    )
    t.done()
    return limits


def _optional_count(t: Table, name: str) -> int | None:
    return t.integer(name, minimum=1) if name in t.data else t.raw(name, None)


def budget_table(t: Table) -> Budget | None:
    if not t.data:
        return None
    period = t.text("period", "month")
    if period not in BUDGET_PERIODS:
        raise t.loader.error(t.key("period"), "must be 'day' or 'month'")
    budget = Budget(usd=t.number("usd"), period=period)
    t.done()
    return budget


def teams_section(t: Table) -> Mapping[str, Team]:
    teams: dict[str, Team] = {}
    for name in t.data:
        team = t.table(name)
        teams[name] = Team(
            name=name,
            limits=limits_table(team.table("limits")),
            budget=budget_table(team.table("budget")),
        )
        team.done()
    t.done()
    return teams


def keys_section(
    root: Table, route_names: set[str], teams: Mapping[str, Team]
) -> tuple[ClientKey, ...]:
    keys: list[ClientKey] = []
    names: set[str] = set()
    for i, raw in enumerate(root.array("keys", [])):
        k = Table(root.loader, raw, f"keys[{i}]")
        name = k.text("name")
        if name in names:
            raise k.loader.error(k.key("name"), f"duplicate key name {name!r}")
        names.add(name)
        digest = k.text("sha256").lower()
        if not _SHA256.match(digest):
            raise k.loader.error(k.key("sha256"), "must be 64 hex digits (sha256 of the token)")
        routes = k.array("routes", None)
        if routes is not None:
            for j, route in enumerate(routes):
                if not isinstance(route, str):
                    raise k.loader.error(f"{k.key('routes')}[{j}]", "must be a string")
                if not route.startswith("prompt:") and route not in route_names:
                    raise k.loader.error(f"{k.key('routes')}[{j}]", f"unknown route {route!r}")
        team = k.text("team", None)
        if team is not None and team not in teams:
            raise k.loader.error(k.key("team"), f"unknown team {team!r} (see [teams])")
        keys.append(
            ClientKey(
                name=name,
                sha256=digest,
                routes=None if routes is None else frozenset(routes),
                team=team,
                limits=limits_table(k.table("limits")),
                budget=budget_table(k.table("budget")),
            )
        )
        k.done()
    return tuple(keys)
