"""`[limits]`: how the limits and budgets of keys and teams are enforced (the limits
themselves are on `[[keys]]` and `[teams.NAME]`, see gateway.config.keys)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gateway.config.source import Table

Unpriced = Literal["allow", "deny", "estimate"]
OnStoreError = Literal["open", "closed"]


@dataclass(frozen=True)
class LimitsConfig:
    # A budgeted request whose model has no `[pricing]` entry: "allow" serves it at no
    # charge (counted in gateway_budget_unpriced_requests_total and in the spend
    # report), "deny" refuses it before any call (403 unpriced_model), "estimate"
    # charges its tokens at `estimate_per_mtok`.
    unpriced: Unpriced = "allow"
    estimate_per_mtok: float = 10.0
    # Redis unreachable or too slow to hand out more capacity: "open" serves on, each
    # replica counting alone; "closed" refuses what the capacity in hand does not cover.
    on_store_error: OnStoreError = "open"
    # Share of a limit a replica draws from Redis at once: the overshoot bound is
    # replicas x this share of the limit per window.
    lease_fraction: float = 0.05
    default_max_tokens: int = 1024  # the estimate of a request that names none
    sync_interval_s: float = 1.0  # use reported to Redis at least this often
    store_timeout_s: float = 0.5  # a draw taking longer is a store error


def limits_section(t: Table) -> LimitsConfig:
    d = LimitsConfig()
    unpriced = t.text("unpriced", d.unpriced)
    if unpriced not in ("allow", "deny", "estimate"):
        raise t.loader.error(t.key("unpriced"), "must be 'allow', 'deny' or 'estimate'")
    on_error = t.text("on_store_error", d.on_store_error)
    if on_error not in ("open", "closed"):
        raise t.loader.error(t.key("on_store_error"), "must be 'open' or 'closed'")
    fraction = t.number("lease_fraction", d.lease_fraction, minimum=0.0001)
    if fraction > 1:
        raise t.loader.error(t.key("lease_fraction"), "must be at most 1")
    cfg = LimitsConfig(
        unpriced=unpriced,  # type: ignore[arg-type]  # checked above
        estimate_per_mtok=t.number("estimate_per_mtok", d.estimate_per_mtok),
        on_store_error=on_error,  # type: ignore[arg-type]  # checked above
        lease_fraction=fraction,
        default_max_tokens=t.integer("default_max_tokens", d.default_max_tokens, minimum=1),
        sync_interval_s=t.number("sync_interval_s", d.sync_interval_s, minimum=0.01),
        store_timeout_s=t.number("store_timeout_s", d.store_timeout_s, minimum=0.01),
    )
    t.done()
    return cfg
