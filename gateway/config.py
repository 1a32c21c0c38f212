"""Config file → validated, frozen objects.

Raw TOML is read by `config_source`; this module checks every key, rejects unknown
ones, and builds an immutable `GatewayConfig` with a content hash. A request uses one
`GatewayConfig` for its whole life; a reload builds a new one and swaps it whole.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from gateway.config_source import ConfigError, Loader, Table, interpolate, plain, read_toml
from gateway.prompts import PROMPT_NAME

log = logging.getLogger("gateway.config")

ProviderType = Literal["openai", "azure", "anthropic", "mock"]
PROVIDER_TYPES: tuple[str, ...] = ("openai", "azure", "anthropic", "mock")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")


class Secret:
    """A credential: usable by the code that needs it, shown as *** everywhere else."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    __str__ = __repr__


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    max_body_bytes: int = 4 * 1024 * 1024
    request_timeout_s: float = 600.0
    allow_unauthenticated: bool = False
    admin_token: Secret = field(default_factory=lambda: Secret(""))
    drain_timeout_s: float = 30.0
    # Slow clients: a connection must send its headers (and an idle keep-alive
    # connection its next request) within this; a body must arrive within body_timeout_s.
    keepalive_timeout_s: float = 60.0
    body_timeout_s: float = 30.0


@dataclass(frozen=True)
class RedisConfig:
    url: str = ""
    prefix: str = "gw:"
    socket_timeout_s: float = 0.25
    connect_timeout_s: float = 0.5
    resync_interval_s: float = 30.0
    poll_interval_s: float = 0.5  # change-counter check, in case a pub/sub notice was lost
    cluster: bool = False


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
    """Targets that get a sampled copy of the route's traffic (see gateway.shadow)."""

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
    shadow: RouteShadow = field(default_factory=RouteShadow)


@dataclass(frozen=True)
class Pricing:
    input_per_mtok: float
    output_per_mtok: float
    cached_input_per_mtok: float
    cache_write_per_mtok: float  # Anthropic prompt-cache writes cost more than input


@dataclass(frozen=True)
class ClientKey:
    name: str
    sha256: str
    routes: frozenset[str] | None  # None: every route

    def allows(self, route: str) -> bool:
        return self.routes is None or route in self.routes


@dataclass(frozen=True)
class PromptConfig:
    name: str
    model: str
    messages: tuple[Mapping[str, Any], ...]
    params: Mapping[str, Any]
    require_passing_suite: bool = False


@dataclass(frozen=True)
class LoggingConfig:
    level: str = "info"
    access_log: bool = True


@dataclass(frozen=True)
class MetricsConfig:
    enabled: bool = True


@dataclass(frozen=True)
class ShadowConfig:
    max_concurrency: int = 8  # worker tasks running shadow requests
    queue_size: int = 256  # waiting shadow requests; more are dropped
    timeout_s: float = 30.0  # one shadow request, start to end


@dataclass(frozen=True)
class CaptureConfig:
    """Request capture for replay and suites (see gateway.capture)."""

    enabled: bool = False
    sample_rate: float = 1.0
    routes: tuple[str, ...] = ()  # with `prompts`: capture what matches either; both empty: all
    prompts: tuple[str, ...] = ()
    redact: tuple[str, ...] = ()  # regexes replaced by [REDACTED] before anything is stored
    max_records: int = 10_000  # Redis stream length (approximate) or in-memory ring
    file: str = ""  # embedded store: rotating JSONL here; empty: in memory
    max_file_bytes: int = 64 * 1024 * 1024
    max_files: int = 5  # the file and its rotated copies .1 .. .N-1
    batch_size: int = 100
    flush_interval_s: float = 1.0


@dataclass(frozen=True)
class RolloutConfig:
    """Gradual rollouts (see gateway.rollout). Read at start: same on every replica."""

    lease_s: float = 10.0  # a dead driver's rollout is taken over after this
    check_interval_s: float = 1.0  # how often the driver looks (renewing its lease)
    flush_interval_s: float = 1.0  # per-version counts sent to the store
    bucket_s: float = 10.0  # time bucket of those counts
    stats_ttl_s: float = 3600.0  # how long the counts are kept


@dataclass(frozen=True)
class GatewayConfig:
    path: str
    hash: str
    server: ServerConfig
    redis: RedisConfig
    providers: Mapping[str, ProviderConfig]
    models: Mapping[str, RouteConfig]
    pricing: Mapping[str, Pricing]
    keys: tuple[ClientKey, ...]
    prompts: Mapping[str, PromptConfig]
    logging: LoggingConfig
    metrics: MetricsConfig
    capture: CaptureConfig
    shadow: ShadowConfig = field(default_factory=ShadowConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)


def load_config(path: str | Path, env: dict[str, str] | None = None) -> GatewayConfig:
    """Read, interpolate and validate a config file; raises `ConfigError`."""
    file = Path(path)
    data, text = read_toml(file)
    root = Table(Loader(file, text), interpolate(data, env), "")
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    server = _server(root.table("server"))
    redis = _redis(root.table("redis"))
    providers, unusable = _providers(root.table("providers"))
    models = _models(root.table("models"), providers, unusable)
    pricing = _pricing(root.table("pricing"))
    keys = _keys(root, set(models))
    prompts = _prompts(root.table("prompts"), models)
    logging_ = root.table("logging")
    log_cfg = LoggingConfig(
        level=logging_.text("level", "info"), access_log=logging_.flag("access_log", True)
    )
    logging_.done()
    metrics_ = root.table("metrics")
    metrics = MetricsConfig(enabled=metrics_.flag("enabled", True))
    metrics_.done()
    capture = _capture(root.table("capture"), file, set(models))
    shadow = _shadow(root.table("shadow"))
    rollout = _rollout(root.table("rollout"))
    root.done()
    return GatewayConfig(
        path=str(file),
        hash=digest,
        server=server,
        redis=redis,
        providers=providers,
        models=models,
        pricing=pricing,
        keys=keys,
        prompts=prompts,
        logging=log_cfg,
        metrics=metrics,
        capture=capture,
        shadow=shadow,
        rollout=rollout,
    )


def _server(t: Table) -> ServerConfig:
    d = ServerConfig()
    cfg = ServerConfig(
        host=t.text("host", d.host),
        port=t.integer("port", d.port),
        workers=t.integer("workers", d.workers, minimum=1),
        max_body_bytes=t.integer("max_body_bytes", d.max_body_bytes, minimum=1),
        request_timeout_s=t.number("request_timeout_s", d.request_timeout_s, minimum=0.001),
        allow_unauthenticated=t.flag("allow_unauthenticated", d.allow_unauthenticated),
        admin_token=Secret(t.text("admin_token", "")),
        drain_timeout_s=t.number("drain_timeout_s", d.drain_timeout_s),
        keepalive_timeout_s=t.number("keepalive_timeout_s", d.keepalive_timeout_s, minimum=0.1),
        body_timeout_s=t.number("body_timeout_s", d.body_timeout_s, minimum=0.1),
    )
    if cfg.port > 65535:
        raise t.loader.error(t.key("port"), "must be at most 65535")
    t.done()
    return cfg


def _redis(t: Table) -> RedisConfig:
    d = RedisConfig()
    cfg = RedisConfig(
        url=t.text("url", d.url),
        prefix=t.text("prefix", d.prefix),
        socket_timeout_s=t.number("socket_timeout_s", d.socket_timeout_s),
        connect_timeout_s=t.number("connect_timeout_s", d.connect_timeout_s, minimum=0.001),
        resync_interval_s=t.number("resync_interval_s", d.resync_interval_s, minimum=0.1),
        poll_interval_s=t.number("poll_interval_s", d.poll_interval_s, minimum=0.05),
        cluster=t.flag("cluster", d.cluster),
    )
    if cfg.url and not cfg.url.startswith(
        ("redis://", "rediss://", "unix://", "redis+sentinel://")
    ):
        raise t.loader.error(
            t.key("url"), "must be a redis://, rediss://, unix:// or redis+sentinel:// URL"
        )
    t.done()
    return cfg


def _providers(t: Table) -> tuple[dict[str, ProviderConfig], dict[str, ConfigError]]:
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


def _models(
    t: Table, providers: Mapping[str, ProviderConfig], unusable: Mapping[str, ConfigError]
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
            shadow=_route_shadow(r, providers, unusable),
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


def _shadow(t: Table) -> ShadowConfig:
    d = ShadowConfig()
    cfg = ShadowConfig(
        max_concurrency=t.integer("max_concurrency", d.max_concurrency, minimum=1),
        queue_size=t.integer("queue_size", d.queue_size, minimum=1),
        timeout_s=t.number("timeout_s", d.timeout_s, minimum=0.001),
    )
    t.done()
    return cfg


def _rollout(t: Table) -> RolloutConfig:
    d = RolloutConfig()
    cfg = RolloutConfig(
        lease_s=t.number("lease_s", d.lease_s, minimum=0.1),
        check_interval_s=t.number("check_interval_s", d.check_interval_s, minimum=0.01),
        flush_interval_s=t.number("flush_interval_s", d.flush_interval_s, minimum=0.01),
        bucket_s=t.number("bucket_s", d.bucket_s, minimum=0.01),
        stats_ttl_s=t.number("stats_ttl_s", d.stats_ttl_s, minimum=1),
    )
    if cfg.check_interval_s * 2 >= cfg.lease_s:
        raise t.loader.error(t.key("check_interval_s"), "must be less than half of lease_s")
    t.done()
    return cfg


def _pricing(t: Table) -> dict[str, Pricing]:
    prices: dict[str, Pricing] = {}
    for model in t.data:
        t.seen.add(model)
        p = t.table(model)
        input_ = p.number("input_per_mtok")
        prices[model] = Pricing(
            input_per_mtok=input_,
            output_per_mtok=p.number("output_per_mtok"),
            cached_input_per_mtok=p.number("cached_input_per_mtok", input_),
            cache_write_per_mtok=p.number("cache_write_per_mtok", input_),
        )
        p.done()
    return prices


def _keys(root: Table, route_names: set[str]) -> tuple[ClientKey, ...]:
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
        keys.append(
            ClientKey(
                name=name, sha256=digest, routes=None if routes is None else frozenset(routes)
            )
        )
        k.done()
    return tuple(keys)


def _prompts(t: Table, routes: Mapping[str, RouteConfig]) -> dict[str, PromptConfig]:
    prompts: dict[str, PromptConfig] = {}
    for name in t.data:
        t.seen.add(name)
        p = t.table(name)
        if not PROMPT_NAME.match(name):
            raise p.loader.error(p.path, "a prompt name is letters, digits, '.', '_' and '-'")
        model = p.text("model")
        if model not in routes:
            raise p.loader.error(p.key("model"), f"unknown route {model!r}")
        messages = []
        for i, raw in enumerate(p.array("messages")):
            m = Table(p.loader, raw, f"{p.key('messages')}[{i}]")
            role = m.text("role")
            if role not in ("system", "user", "assistant", "developer"):
                raise m.loader.error(m.key("role"), "must be system, developer, user or assistant")
            messages.append({"role": role, "content": m.text("content")})
            m.done()
        params = plain(p.raw("params", {}))
        if not isinstance(params, dict):
            raise p.loader.error(p.key("params"), "must be a table")
        prompts[name] = PromptConfig(
            name=name,
            model=model,
            messages=tuple(messages),
            params=params,
            require_passing_suite=p.flag("require_passing_suite", False),
        )
        p.done()
    return prompts


def _capture(t: Table, file: Path, route_names: set[str]) -> CaptureConfig:
    d = CaptureConfig()
    lists: dict[str, tuple[str, ...]] = {}
    for name in ("routes", "prompts", "redact"):
        items = t.array(name, [])
        for i, item in enumerate(items):
            if not isinstance(item, str):
                raise t.loader.error(f"{t.key(name)}[{i}]", "must be a string")
            if name == "routes" and item not in route_names:
                raise t.loader.error(f"{t.key(name)}[{i}]", f"unknown route {item!r}")
            if name == "redact":
                try:
                    re.compile(item)
                except re.error as exc:
                    raise t.loader.error(f"{t.key(name)}[{i}]", f"bad regex: {exc}") from None
        lists[name] = tuple(items)
    path = t.text("file", d.file)
    cfg = CaptureConfig(
        enabled=t.flag("enabled", d.enabled),
        sample_rate=t.number("sample_rate", d.sample_rate),
        routes=lists["routes"],
        prompts=lists["prompts"],
        redact=lists["redact"],
        max_records=t.integer("max_records", d.max_records, minimum=1),
        # Relative to the config file's directory, like every path in it.
        file=str(file.parent / path) if path else "",
        max_file_bytes=t.integer("max_file_bytes", d.max_file_bytes, minimum=1024),
        max_files=t.integer("max_files", d.max_files, minimum=1),
        batch_size=t.integer("batch_size", d.batch_size, minimum=1),
        flush_interval_s=t.number("flush_interval_s", d.flush_interval_s, minimum=0.001),
    )
    if cfg.sample_rate > 1:
        raise t.loader.error(t.key("sample_rate"), "must be from 0 to 1")
    t.done()
    return cfg
