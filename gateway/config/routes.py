"""Config sections for where requests go: providers, and model routes with their
ordered targets. Types and their validation, like gateway.config.loader's."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from gateway.config.guards import GuardConfig, guard_names
from gateway.config.source import ConfigError, Secret, Table

log = logging.getLogger("gateway.config")

ProviderType = Literal["openai", "azure", "anthropic", "mock"]
PROVIDER_TYPES: tuple[str, ...] = ("openai", "azure", "anthropic", "mock")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")


@dataclass(frozen=True)
class ProviderConfig:
    name: str
    type: ProviderType
    base_url: str = ""
    api_key: Secret = field(default_factory=lambda: Secret(""))
    api_version: str = ""  # azure
    connect_timeout_s: float = 5.0
    first_token_timeout_s: float = 60.0
    idle_timeout_s: float = 60.0
    total_timeout_s: float = 600.0
    max_connections: int = 100
    # Circuit breaker, one per target (provider + model).
    breaker_consecutive_failures: int = 5
    breaker_error_rate: float = 0.5
    breaker_min_requests: int = 20
    breaker_window_s: float = 30.0
    breaker_cooldown_s: float = 30.0


@dataclass(frozen=True)
class Target:
    provider: str
    model: str
    weight: int = 1

    @property
    def label(self) -> str:
        return f"{self.provider}/{self.model}"


@dataclass(frozen=True)
class RouteShadow:
    """Targets that get a sampled copy of the route's traffic (see gateway.shadow.runner)."""

    targets: tuple[Target, ...] = ()
    sample_rate: float = 0.0


@dataclass(frozen=True)
class RouteConfig:
    name: str
    targets: tuple[Target, ...]
    strategy: Literal["failover", "weighted"] = "failover"
    retries_per_target: int = 1
    backoff_initial_s: float = 0.1
    backoff_max_s: float = 2.0
    retry_after_max_s: float = 5.0
    retry_budget_ratio: float = 0.2
    # One attempt's limit before its first byte (non-streamed: its answer); 0: its share
    # of what is left of the deadline, split between the targets not yet tried.
    per_try_timeout_s: float = 0.0
    shadow: RouteShadow = field(default_factory=RouteShadow)
    guards: tuple[str, ...] = ()  # [guards.NAME] checked on every answer of the route


def providers_section(t: Table) -> tuple[dict[str, ProviderConfig], dict[str, ConfigError]]:
    """Providers by name, and those that cannot be built (an unset `${VAR}`): those are
    an error only once a route uses them."""
    providers: dict[str, ProviderConfig] = {}
    unusable: dict[str, ConfigError] = {}
    for name in t.data:
        t.seen.add(name)
        try:
            providers[name] = _provider(t.table(name), name)
        except ConfigError as exc:
            if "environment variable" not in str(exc):
                raise
            unusable[name] = exc
            log.warning("provider %s unusable until its variable is set: %s", name, exc)
    return providers, unusable


def _provider(t: Table, name: str) -> ProviderConfig:
    d = ProviderConfig(name=name, type="mock")
    type_ = t.text("type")
    if type_ not in PROVIDER_TYPES:
        raise t.loader.error(t.key("type"), f"must be one of {', '.join(PROVIDER_TYPES)}")
    base_url = t.text("base_url", "").rstrip("/")
    if type_ != "mock" and not base_url.startswith(("http://", "https://")):
        raise t.loader.error(t.key("base_url"), "must be an http:// or https:// URL")
    cfg = ProviderConfig(
        name=name,
        type=type_,  # type: ignore[arg-type]
        base_url=base_url,
        api_key=Secret(t.text("api_key", "")),
        api_version=t.text("api_version", "2024-10-21" if type_ == "azure" else ""),
        connect_timeout_s=t.number("connect_timeout_s", d.connect_timeout_s, minimum=0.001),
        first_token_timeout_s=t.number(
            "first_token_timeout_s", d.first_token_timeout_s, minimum=0.001
        ),
        idle_timeout_s=t.number("idle_timeout_s", d.idle_timeout_s, minimum=0.001),
        total_timeout_s=t.number("total_timeout_s", d.total_timeout_s, minimum=0.001),
        max_connections=t.integer("max_connections", d.max_connections, minimum=1),
        breaker_consecutive_failures=t.integer(
            "breaker_consecutive_failures", d.breaker_consecutive_failures, minimum=1
        ),
        breaker_error_rate=t.number("breaker_error_rate", d.breaker_error_rate),
        breaker_min_requests=t.integer("breaker_min_requests", d.breaker_min_requests, minimum=1),
        breaker_window_s=t.number("breaker_window_s", d.breaker_window_s, minimum=0.1),
        breaker_cooldown_s=t.number("breaker_cooldown_s", d.breaker_cooldown_s),
    )
    if not 0 < cfg.breaker_error_rate <= 1:
        raise t.loader.error(t.key("breaker_error_rate"), "must be in (0, 1]")
    t.done()
    return cfg


def models_section(
    t: Table,
    providers: Mapping[str, ProviderConfig],
    unusable: Mapping[str, ConfigError],
    guards: Mapping[str, GuardConfig] | None = None,
) -> dict[str, RouteConfig]:
    routes: dict[str, RouteConfig] = {}
    for alias in t.data:
        t.seen.add(alias)
        r = t.table(alias)
        if not _NAME.match(alias) or alias.startswith("prompt:"):
            raise r.loader.error(r.path, "route alias must be a plain name (no 'prompt:')")
        raw_targets = r.array("targets")
        if not raw_targets:
            raise r.loader.error(r.key("targets"), "must list at least one target")
        targets = [
            _target(Table(r.loader, raw, f"{r.key('targets')}[{i}]"), providers, unusable)
            for i, raw in enumerate(raw_targets)
        ]
        strategy = r.text("strategy", "failover")
        if strategy not in ("failover", "weighted"):
            raise r.loader.error(r.key("strategy"), "must be 'failover' or 'weighted'")
        if strategy == "weighted" and not any(x.weight for x in targets):
            raise r.loader.error(r.key("targets"), "weighted route needs a positive weight")
        d = RouteConfig(name=alias, targets=())
        routes[alias] = RouteConfig(
            name=alias,
            targets=tuple(targets),
            strategy=strategy,  # type: ignore[arg-type]
            retries_per_target=r.integer("retries_per_target", d.retries_per_target),
            backoff_initial_s=r.number("backoff_initial_s", d.backoff_initial_s),
            backoff_max_s=r.number("backoff_max_s", d.backoff_max_s),
            retry_after_max_s=r.number("retry_after_max_s", d.retry_after_max_s),
            retry_budget_ratio=r.number("retry_budget_ratio", d.retry_budget_ratio),
            per_try_timeout_s=r.number("per_try_timeout_s", d.per_try_timeout_s),
            shadow=_route_shadow(r, providers, unusable),
            guards=guard_names(r, guards or {}),
        )
        r.done()
    return routes


def _target(
    t: Table, providers: Mapping[str, ProviderConfig], unusable: Mapping[str, ConfigError]
) -> Target:
    provider = t.text("provider")
    if provider in unusable:
        raise unusable[provider]
    if provider not in providers:
        raise t.loader.error(t.key("provider"), f"unknown provider {provider!r}")
    target = Target(provider=provider, model=t.text("model"), weight=t.integer("weight", 1))
    t.done()
    return target


def _route_shadow(
    r: Table, providers: Mapping[str, ProviderConfig], unusable: Mapping[str, ConfigError]
) -> RouteShadow:
    """`shadow = { targets = [{provider, model}], sample_rate = 0.1 }` on a route."""
    if r.raw("shadow", None) is None:
        return RouteShadow()
    s = r.table("shadow")
    raw_targets = s.array("targets")
    if not raw_targets:
        raise s.loader.error(s.key("targets"), "must list at least one target")
    targets = tuple(
        _target(Table(s.loader, raw, f"{s.key('targets')}[{i}]"), providers, unusable)
        for i, raw in enumerate(raw_targets)
    )
    rate = s.number("sample_rate", 1.0)
    if rate > 1:
        raise s.loader.error(s.key("sample_rate"), "must be from 0 to 1")
    s.done()
    return RouteShadow(targets=targets, sample_rate=rate)
