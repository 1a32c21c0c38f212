"""Config loading: every error names the file, the line and the key path."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.config.loader import load_config
from gateway.config.source import ConfigError

WriteConfig = Callable[..., Path]

GOOD = """
[providers.mock]
type = "mock"

[models.demo]
targets = [{ provider = "mock", model = "demo" }]
"""


def test_shipped_config_loads_without_any_environment() -> None:
    config = load_config("config/gateway.toml", env={})
    assert "demo" in config.models
    assert config.redis.url == ""
    assert not config.providers["openai"].api_key  # works once OPENAI_API_KEY is exported


def test_values_come_from_the_environment(write_config: WriteConfig) -> None:
    path = write_config(
        GOOD
        + """
[server]
port = "${PORT:-9000}"
allow_unauthenticated = "${OPEN:-false}"
[providers.up]
type = "openai"
base_url = "${UP_URL}"
api_key = "${UP_KEY}"
[models.up]
targets = [{ provider = "up", model = "m" }]
"""
    )
    config = load_config(path, env={"UP_URL": "http://127.0.0.1:1/v1", "UP_KEY": "sk-x"})
    assert config.server.port == 9000
    assert config.server.allow_unauthenticated is False
    assert config.providers["up"].api_key.reveal() == "sk-x"
    assert "sk-x" not in repr(config)  # secrets never print


@pytest.mark.parametrize(
    ("extra", "key", "message", "line"),
    [
        ("[server]\nprot = 1\n", "server.prot", "unknown key", 9),
        ('[server]\nport = "eighty"\n', "server.port", "must be an integer", 9),
        ("[server]\nport = 70000\n", "server.port", "at most 65535", 9),
        (
            '[models.x]\ntargets = [{ provider = "nope", model = "m" }]\n',
            "models.x.targets[0].provider",
            "unknown provider 'nope'",
            9,
        ),
        ("[models.x]\ntargets = []\n", "models.x.targets", "at least one target", 9),
        (
            '[providers.p]\ntype = "openai"\nbase_url = "ftp://x"\n',
            "providers.p.base_url",
            "http://",
            10,
        ),
        ('[providers.p]\ntype = "soap"\n', "providers.p.type", "must be one of", 9),
        ('[[keys]]\nname = "a"\nsha256 = "abc"\n', "keys[0].sha256", "64 hex", 10),
        ('[prompts.p]\nmodel = "nope"\nmessages = []\n', "prompts.p.model", "unknown route", 9),
        ("[surprise]\nx = 1\n", "surprise", "unknown key", 8),
    ],
)
def test_errors_name_key_path_and_line(
    write_config: WriteConfig, extra: str, key: str, message: str, line: int | None
) -> None:
    path = write_config(GOOD + "\n" + extra)
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    error = caught.value
    assert error.key == key
    assert message in str(error)
    assert str(path) in str(error)
    if line is not None:
        assert error.line == line
        assert f"{path}:{line}: {key}" in str(error)


def test_missing_variable_is_named(write_config: WriteConfig) -> None:
    path = write_config(GOOD + '[server]\nadmin_token = "${GATEWAY_ADMIN_TOKEN}"\n')
    with pytest.raises(ConfigError, match="GATEWAY_ADMIN_TOKEN is not set") as caught:
        load_config(path, env={})
    assert caught.value.key == "server.admin_token"


def test_provider_missing_variable_only_matters_when_a_route_uses_it(
    write_config: WriteConfig,
) -> None:
    unused = GOOD + '[providers.o]\ntype = "openai"\nbase_url = "https://x"\napi_key = "${K}"\n'
    config = load_config(write_config(unused), env={})
    assert "o" not in config.providers
    used = unused + '[models.o]\ntargets = [{ provider = "o", model = "m" }]\n'
    with pytest.raises(ConfigError, match="environment variable K is not set") as caught:
        load_config(write_config(used), env={})
    assert caught.value.key == "providers.o.api_key"


def test_toml_syntax_error_gives_the_line(write_config: WriteConfig) -> None:
    path = write_config(GOOD + "\n[server\nport = 1\n")
    with pytest.raises(ConfigError, match="invalid TOML") as caught:
        load_config(path, env={})
    assert caught.value.line == 8  # where tomllib says


def test_check_config_command(write_config: WriteConfig) -> None:
    good = subprocess.run(
        [sys.executable, "-m", "gateway", "check-config", str(write_config(GOOD))],
        capture_output=True,
        text=True,
    )
    assert good.returncode == 0, good.stderr
    assert "ok" in good.stdout
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway",
            "check-config",
            str(write_config(GOOD + "[server]\nport = -1\n", "bad.toml")),
        ],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1
    assert "server.port" in bad.stderr


def test_serve_exits_non_zero_on_a_bad_config(write_config: WriteConfig) -> None:
    path = write_config("[models.x]\ntargets = []\n")
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert "models.x.targets" in result.stderr
