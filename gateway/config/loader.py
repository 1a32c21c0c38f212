"""Config file → validated, frozen objects.

Raw TOML is read by `config_source`; this module checks every key, rejects unknown
ones, and builds an immutable `GatewayConfig` with a content hash. A request uses one
`GatewayConfig` for its whole life; a reload builds a new one and swaps it whole.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gateway.config.control import Control, admins_section, change_control_section
from gateway.config.features import (
    CaptureConfig,
    RolloutConfig,
    ShadowConfig,
    capture_section,
    rollout_section,
    shadow_section,
)
from gateway.config.feedback import FeedbackConfig, feedback_section
from gateway.config.guards import GuardConfig, ReviewConfig, guards_section, review_section
from gateway.config.keys import ClientKey, Team, keys_section, teams_section
from gateway.config.prompts import PromptConfig, prompts_section
from gateway.config.responses import ResponsesConfig, responses_section
from gateway.config.routes import (
    PROVIDER_TYPES,
    ProviderConfig,
    RouteConfig,
    RouteShadow,
    Target,
    models_section,
    providers_section,
)
from gateway.config.source import Loader, Secret, Table, interpolate, read_toml

# Types defined beside this module, imported from here by the rest of the code.
__all__ = [
    "PROVIDER_TYPES",
    "CaptureConfig",
    "ClientKey",
    "Control",
    "GatewayConfig",
    "GuardConfig",
    "LoggingConfig",
    "MetricsConfig",
    "Pricing",
    "PromptConfig",
    "ProviderConfig",
    "RedisConfig",
    "ResponsesConfig",
    "ReviewConfig",
    "RolloutConfig",
    "RouteConfig",
    "RouteShadow",
    "Secret",
    "ServerConfig",
    "ShadowConfig",
    "Target",
    "Team",
    "load_config",
]


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
    # After SIGTERM: how long to keep serving with /readyz at 503, so that load balancers
    # stop sending before the listener closes.
    drain_delay_s: float = 5.0
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
class Pricing:
    input_per_mtok: float
    output_per_mtok: float
    cached_input_per_mtok: float
    cache_write_per_mtok: float  # Anthropic prompt-cache writes cost more than input


@dataclass(frozen=True)
class LoggingConfig:
    level: str = "info"
    access_log: bool = True


@dataclass(frozen=True)
class MetricsConfig:
    enabled: bool = True


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
    control: Control = field(default_factory=Control)
    responses: ResponsesConfig = field(default_factory=ResponsesConfig)
    teams: Mapping[str, Team] = field(default_factory=dict)
    guards: Mapping[str, GuardConfig] = field(default_factory=dict)
    review: ReviewConfig = field(default_factory=ReviewConfig)
    feedback: FeedbackConfig = field(default_factory=FeedbackConfig)


def load_config(
    path: str | Path, env: dict[str, str] | None = None, text: str | None = None
) -> GatewayConfig:
    """Read, interpolate and validate a config file (`text`: its content, read already);
    raises `ConfigError`."""
    file = Path(path)
    data, text = read_toml(file, text)
    root = Table(Loader(file, text), interpolate(data, env), "")
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    server = _server(root.table("server"))
    redis = _redis(root.table("redis"))
    providers, unusable = providers_section(root.table("providers"))
    guards = guards_section(root.table("guards"))
    models = models_section(root.table("models"), providers, unusable, guards)
    pricing = _pricing(root.table("pricing"))
    teams = teams_section(root.table("teams"))
    keys = keys_section(root, set(models), teams)
    prompts = prompts_section(root.table("prompts"), models, providers, guards)
    review = review_section(root.table("review"))
    logging_ = root.table("logging")
    log_cfg = LoggingConfig(
        level=logging_.text("level", "info"), access_log=logging_.flag("access_log", True)
    )
    logging_.done()
    metrics_ = root.table("metrics")
    metrics = MetricsConfig(enabled=metrics_.flag("enabled", True))
    metrics_.done()
    capture = capture_section(root.table("capture"), file, set(models))
    shadow = shadow_section(root.table("shadow"))
    rollout = rollout_section(root.table("rollout"))
    control = Control(admins_section(root), change_control_section(root.table("change_control")))
    responses = responses_section(root.table("responses"))
    feedback = feedback_section(root.table("feedback"))
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
        control=control,
        responses=responses,
        teams=teams,
        guards=guards,
        review=review,
        feedback=feedback,
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
        drain_delay_s=t.number("drain_delay_s", d.drain_delay_s),
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
