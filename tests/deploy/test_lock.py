"""requirements.lock, which the image installs: current with pyproject (every runtime
dependency pinned within its range, with hashes) and complete for the image's Python
(Debian bookworm's 3.11.2 needs async-timeout, a newer Python does not)."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path
from types import ModuleType

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCK = (ROOT / "requirements.lock").read_text()


def wheelhouse() -> ModuleType:
    spec = importlib.util.spec_from_file_location("wheelhouse", ROOT / "deploy/image/wheelhouse.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pins() -> dict[str, tuple[str, str]]:
    """name -> (version, entry) of every pin in the lock."""
    found: dict[str, tuple[str, str]] = {}
    for entry in wheelhouse().entries(LOCK):
        match = re.match(r"([A-Za-z0-9._-]+)==([^ ;]+)", entry)
        assert match, entry
        found[canonicalize_name(match[1])] = (match[2], entry)
    return found


def test_every_dependency_is_pinned_within_its_range_with_hashes() -> None:
    """`make lock` after a change of pyproject's dependencies, or this fails."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    locked = pins()
    for line in project["dependencies"]:
        requirement = Requirement(line)
        version, _ = locked[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(version, prereleases=True), (line, version)
    for name, (_, entry) in locked.items():
        assert "--hash=sha256:" in entry, name


def test_the_image_python_gets_what_its_version_needs() -> None:
    module = wheelhouse()
    old = {r.split("==")[0] for r in module.for_python(LOCK, "3.11.2")}
    new = {r.split("==")[0] for r in module.for_python(LOCK, "3.12.4")}
    assert "async-timeout" in old and "async-timeout" not in new
    assert {"aiohttp", "redis", "orjson", "uvloop"} <= old & new
    for requirement in module.for_python(LOCK, "3.11.2"):
        assert ";" not in requirement and "--hash=sha256:" in requirement
