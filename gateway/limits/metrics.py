"""The metrics of limits and budgets, in the app's registry. Labels: the key's and the
team's configured names, the limit or the period; never an end user."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class LimitMetrics:
    def __init__(self, r: CollectorRegistry) -> None:
        self.limited = Counter(
            "gateway_limited_requests_total",
            "Requests refused by a limit or a budget (limit: rpm, tpm, max_concurrent, "
            "budget; team_… for a team's).",
            ("key", "team", "limit"),
            registry=r,
        )
        self.spent = Gauge(
            "gateway_budget_spent_usd",
            "Spent in the budget's current period (key empty: a team's budget).",
            ("key", "team", "period"),
            registry=r,
            multiprocess_mode="livemax",
        )
        self.budget = Gauge(
            "gateway_budget_limit_usd",
            "The budget of the current period (key empty: a team's budget).",
            ("key", "team", "period"),
            registry=r,
            multiprocess_mode="livemax",
        )
        self.unpriced = Counter(
            "gateway_budget_unpriced_requests_total",
            "Answers to budgeted keys whose model has no price ([limits] unpriced decides "
            "what they are charged).",
            ("key", "team"),
            registry=r,
        )
        self.store_errors = Counter(
            "gateway_limit_store_errors_total",
            "Draws of capacity from the store that failed or took too long.",
            registry=r,
        )
