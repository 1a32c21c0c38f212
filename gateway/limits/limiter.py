"""Limits and budgets on the request path: `admit` before the call (429 when a limit
or a budget is reached), `Ticket.settle` after it with the real usage, and `run`, the
background loop that reports use to the store and draws the next batches.

The request path never waits on the store: capacity is drawn ahead (see
gateway.limits.meter), so a request costs dictionary work only."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from gateway.config.keys import ClientKey
from gateway.config.loader import GatewayConfig
from gateway.errors import ApiError
from gateway.limits.estimate import estimate_tokens
from gateway.limits.meter import Meter
from gateway.limits.metrics import LimitMetrics
from gateway.limits.plan import USD, KeyPlan, Rule, Slots, plan_of
from gateway.limits.refusal import WHAT, rate_headers, refused
from gateway.limits.windows import Calendar
from gateway.store.leases import Draw, Leases
from gateway.telemetry.recorder import RequestRecord

log = logging.getLogger("gateway.limits")


class Ticket:
    """One admitted request: what it was charged, to settle when it is over."""

    __slots__ = ("estimate", "headers", "limiter", "plan", "windows")

    def __init__(
        self, limiter: Limiter, plan: KeyPlan, estimate: int, headers: dict[str, str]
    ) -> None:
        self.limiter, self.plan, self.estimate, self.headers = limiter, plan, estimate, headers
        self.windows = [rule.meter.window for rule in plan.rules]

    def settle(self, record: RequestRecord) -> None:
        self.limiter.settle(self, record)


class Limiter:
    def __init__(
        self, leases: Leases, metrics: LimitMetrics, config: Callable[[], GatewayConfig]
    ) -> None:
        self.leases = leases
        self.metrics = metrics
        self._config = config  # the live one, for the loop
        self.meters: dict[str, Meter] = {}
        self._slots: dict[str, Slots] = {}
        self._plans: dict[int, KeyPlan] = {}  # by id(key): the plan keeps the key alive
        self._calendar = Calendar()
        self._wake = asyncio.Event()
        self.store_ok = True

    def _plan(self, key: ClientKey, config: GatewayConfig) -> KeyPlan:
        plan = self._plans.get(id(key))
        if plan is None or plan.key is not key or plan.config_hash != config.hash:
            if len(self._plans) > 10_000:  # keys come and go (rotation): start over
                self._plans.clear()
            plan = self._plans[id(key)] = plan_of(key, config, self.meters, self._slots)
        return plan

    def admit(
        self,
        key: ClientKey,
        config: GatewayConfig,
        body: Mapping[str, Any],
        prices: Callable[[], bool],
    ) -> Ticket | None:
        """A ticket for the request, or a 429; None when the key's team has no limits.
        `prices`: whether every target of the route has a price (asked only if needed)."""
        plan = self._plan(key, config)
        if plan.empty:
            return None
        cfg = config.limits
        estimate = estimate_tokens(body, cfg.default_max_tokens) if plan.tokens else 0
        now = time.time()
        headers: dict[str, str] = {}
        fail_open = cfg.on_store_error == "open"
        costs = []
        for rule in plan.rules:
            meter = rule.meter
            window, reset_s = self._window(rule, now)
            meter.roll(window)
            cost = estimate if rule.limit == "tpm" else 1
            if not meter.fits(cost, self.leases, self.store_ok, fail_open):
                raise self._refuse(plan, rule, reset_s, headers)
            costs.append(cost if rule.limit != "budget" else 0)
        for slots, scope in plan.slots:
            if slots.busy >= slots.limit:
                headers["Retry-After"] = "1"
                self._count(plan, "max_concurrent", scope)
                raise refused("max_concurrent", scope, 1.0, headers)
        if plan.budgeted and cfg.unpriced == "deny" and not prices():
            raise ApiError(
                403,
                "This key has a budget, and a target of this route has no price in [pricing].",
                code="unpriced_model",
            )
        low = False
        for rule, cost in zip(plan.rules, costs, strict=True):
            rule.meter.charge(cost)
            low |= rule.meter.low()
        for slots, _ in plan.slots:
            slots.busy += 1
        if low and not self.leases.local:
            self._wake.set()
        for rule in plan.rules:  # the tightest of the key's and the team's
            what = WHAT.get(rule.limit)
            if what is not None:
                shown = headers.get(f"x-ratelimit-remaining-{what}")
                if shown is None or rule.meter.remaining() < int(shown):
                    rate_headers(rule.meter, what, self._window(rule, now)[1], headers)
        return Ticket(self, plan, estimate, headers)

    def _window(self, rule: Rule, now: float) -> tuple[str, float]:
        if rule.period == "minute":
            return self._calendar.minute(now)
        return self._calendar.period(rule.period, now)

    def _refuse(
        self, plan: KeyPlan, rule: Rule, reset_s: float, headers: dict[str, str]
    ) -> ApiError:
        if rule.limit in WHAT:
            rate_headers(rule.meter, WHAT[rule.limit], reset_s, headers)
        if not self.store_ok and self._config().limits.on_store_error == "closed":
            reset_s = 1.0  # the store may be back in a second
        self._count(plan, rule.limit, rule.scope)
        return refused(rule.limit, rule.scope, reset_s, headers)

    def _count(self, plan: KeyPlan, limit: str, scope: str) -> None:
        name = limit if scope == "key" else f"team_{limit}"
        self.metrics.limited.labels(plan.key.name, plan.team, name).inc()

    def settle(self, ticket: Ticket, record: RequestRecord) -> None:
        plan = ticket.plan
        usage = record.usage
        tokens = usage.input_tokens + usage.output_tokens if usage is not None else 0
        low = False
        for rule, window in zip(plan.rules, ticket.windows, strict=True):
            meter = rule.meter
            if meter.window != window:  # charged to a window that is over
                continue
            if rule.limit == "tpm":
                meter.charge(tokens - ticket.estimate)
            elif rule.limit == "budget":
                meter.charge(self._cost_micro(plan, record, tokens))
            low |= meter.low()
        for slots, _ in plan.slots:
            slots.busy -= 1
        if low and not self.leases.local:
            self._wake.set()

    def _cost_micro(self, plan: KeyPlan, record: RequestRecord, tokens: int) -> int:
        cost = record.cost_usd
        if cost is None:
            if record.usage is None:
                return 0
            cfg = self._config().limits
            if cfg.unpriced != "estimate":
                self.metrics.unpriced.labels(plan.key.name, plan.team).inc()
                return 0
            cost = tokens * cfg.estimate_per_mtok / 1_000_000
        return round(cost * USD)

    # -- the background loop ---------------------------------------------------------

    async def run(self) -> None:
        """Until cancelled: report use and draw capacity, at once when a meter runs low,
        else every `sync_interval_s`."""
        while True:
            interval = self._config().limits.sync_interval_s
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._wake.wait()
            self._wake.clear()
            if not await self.sync():
                await asyncio.sleep(interval)  # the store is down: no retry storm

    async def sync(self) -> bool:
        """One round trip: every meter reports its use, those running low draw more."""
        now = time.time()
        asked: list[tuple[Meter, int, Draw]] = []
        for meter in self.meters.values():
            rule = Rule(meter, "", "", meter.kind)
            meter.roll(self._window(rule, now)[0])
            # Every meter, so that each replica learns what the others used.
            want = meter.want() if meter.low() else 0
            asked.append((meter, want, meter.draw(want)))
        if asked:
            try:
                async with asyncio.timeout(self._config().limits.store_timeout_s):
                    results = await self.leases.draw([draw for _, _, draw in asked])
            except Exception as exc:  # down, frozen or failing: serve on, as configured
                for meter, _, draw in asked:
                    meter.unreported += draw.used
                if self.store_ok:
                    log.warning("limits: the store did not answer (%s)", type(exc).__name__)
                self.store_ok = False
                self.metrics.store_errors.inc()
                return False
            for (meter, want, draw), drawn in zip(asked, results, strict=True):
                if meter.window == draw.window:
                    meter.apply(drawn, want)
        self.store_ok = True
        self._export()
        return True

    def _export(self) -> None:
        """The budget gauges: what is spent (as far as this replica knows) and allowed."""
        config = self._config()
        budgets = [(k.name, k.team or "", k.budget) for k in config.keys if k.budget]
        budgets += [("", t.name, t.budget) for t in config.teams.values() if t.budget]
        for key, team, budget in budgets:
            assert budget is not None
            self.metrics.budget.labels(key, team, budget.period).set(budget.usd)
            name = f"key:{key}" if key else f"team:{team}"
            meter = self.meters.get(f"{name}:budget:{budget.period}")
            spent = 0 if meter is None else max(meter.used_total + meter.unreported, meter.used)
            self.metrics.spent.labels(key, team, budget.period).set(spent / USD)
