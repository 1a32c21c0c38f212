"""`[[keys]]` and `[teams]`: teams, limits and budgets read and checked."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.config.keys import Budget, Limits
from gateway.config.loader import load_config
from gateway.config.source import ConfigError

WriteConfig = Callable[..., Path]
DIGEST = "a" * 64
BASE = """
[providers.mock]
type = "mock"

[models.demo]
targets = [{ provider = "mock", model = "demo" }]
"""


def test_keys_carry_team_limits_and_budget(write_config: WriteConfig) -> None:
    path = write_config(
        BASE
        + f"""
[teams.search]
limits = {{ rpm = 600, tpm = 100000 }}
budget = {{ usd = 250.0, period = "month" }}

[[keys]]
name = "indexer"
sha256 = "{DIGEST}"
team = "search"
limits = {{ rpm = 60, max_concurrent = 4 }}
budget = {{ usd = 5, period = "day" }}

[[keys]]
name = "plain"
sha256 = "{"b" * 64}"
"""
    )
    config = load_config(path, env={})
    indexer, plain = config.keys
    assert indexer.team == "search"
    assert indexer.limits == Limits(rpm=60, max_concurrent=4)
    assert indexer.budget == Budget(usd=5.0, period="day")
    assert config.teams["search"].limits == Limits(rpm=600, tpm=100000)
    assert config.teams["search"].budget == Budget(usd=250.0, period="month")
    assert plain.team is None and not plain.limits.any() and plain.budget is None


@pytest.mark.parametrize(
    ("extra", "key", "message"),
    [
        (
            f'[[keys]]\nname = "k"\nsha256 = "{DIGEST}"\nteam = "nope"\n',
            "keys[0].team",
            "unknown team",
        ),
        (
            f'[[keys]]\nname = "k"\nsha256 = "{DIGEST}"\nlimits = {{ rpm = 0 }}\n',
            "keys[0].limits.rpm",
            "at least 1",
        ),
        (
            f'[[keys]]\nname = "k"\nsha256 = "{DIGEST}"\nbudget = {{ usd = 1, period = "week" }}\n',
            "keys[0].budget.period",
            "'day' or 'month'",
        ),
        ("[teams.t]\nlimits = { rps = 3 }\n", "teams.t.limits.rps", "unknown key"),
    ],
)
def test_bad_limits_are_named(
    write_config: WriteConfig, extra: str, key: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(BASE + extra), env={})
    assert caught.value.key == key
    assert message in str(caught.value)
