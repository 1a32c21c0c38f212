"""The distribution's name on PyPI (`pip install llm-canary-gateway`) is not the import
package's (`gateway`) nor the command's (`gateway`): all three are checked as installed."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

import gateway

ROOT = Path(__file__).resolve().parents[1]
NAME = "llm-canary-gateway"


def test_the_distribution_is_installed_under_its_name_with_the_gateway_command() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == NAME
    assert project["scripts"] == {"gateway": "gateway.cli.main:main"}
    installed = metadata.distribution(NAME)
    assert installed.version == gateway.__version__
    scripts = [e for e in installed.entry_points if e.group == "console_scripts"]
    assert [(e.name, e.value) for e in scripts] == [("gateway", "gateway.cli.main:main")]
    assert "dev" in (installed.metadata.get_all("Provides-Extra") or [])
