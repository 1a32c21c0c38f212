"""A guard's `json_schema` held to the same rule as the suites' checks: every keyword
must be JSON Schema 2020-12's, so a typo is a config error rather than a check that
always passes (the config layer checks the schema against the metaschema only)."""

from __future__ import annotations

from pathlib import Path

from gateway.config.loader import GatewayConfig, load_config
from gateway.config.source import ConfigError
from gateway.evaluation.json_schema import BadSchema, check_schema


def check_guard_schemas(config: GatewayConfig) -> GatewayConfig:
    for name, guard in config.guards.items():
        if guard.json_schema is None:
            continue
        try:
            check_schema(guard.json_schema)
        except BadSchema as exc:
            raise ConfigError(config.path, str(exc), key=f"guards.{name}.json_schema") from None
    return config


def load_checked(path: str | Path, text: str | None = None) -> GatewayConfig:
    """`load_config` with the guards' schemas checked in full."""
    return check_guard_schemas(load_config(path, text=text))
