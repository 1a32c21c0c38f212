"""Download every wheel of requirements.lock that an image's Python needs into a
wheelhouse, so that `docker build` installs with no network at all.

    python deploy/image/wheelhouse.py --python-version 3.11.2 [--lock FILE] [--dest DIR]

pip evaluates a lock's environment markers against the interpreter that runs it, not
the one given by --python-version: Debian bookworm's Python 3.11.2 needs async-timeout
(redis-py asks for it below 3.11.3) where a newer 3.11 does not. So the markers are
evaluated here, for the image's version, and pip gets the pins (with their hashes)
that apply. Also fetched: setuptools, which builds the gateway's own wheel."""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from packaging.markers import Marker

BUILD_BACKEND = "setuptools>=68"


def entries(lock: str) -> list[str]:
    """The lock's requirements, one string each, continuation lines joined."""
    joined: list[str] = []
    current = ""
    for line in lock.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        current += " " + stripped.removesuffix("\\").strip()
        if not stripped.endswith("\\"):
            joined.append(current.strip())
            current = ""
    if current.strip():
        joined.append(current.strip())
    return joined


def for_python(lock: str, python_version: str) -> list[str]:
    """The lock's entries that apply to `python_version`, without their markers."""
    major_minor = ".".join(python_version.split(".")[:2])
    env = {"python_full_version": python_version, "python_version": major_minor}
    kept: list[str] = []
    for entry in entries(lock):
        pin, _, rest = entry.partition(" --hash")
        hashes = "--hash" + rest if rest else ""
        requirement, has_marker, marker = pin.partition(";")
        if has_marker and not Marker(marker.strip()).evaluate(env):
            continue
        kept.append(f"{requirement.strip()} {hashes}".strip())
    return kept


def download(lock: Path, dest: Path, python_version: str) -> None:
    requirements = for_python(lock.read_text(), python_version)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(requirements) + "\n")
    common = ["--dest", str(dest), "--only-binary=:all:", "--python-version", python_version]
    pip = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", *common]
    subprocess.run([*pip, "--require-hashes", "-r", f.name], check=True)
    subprocess.run([*pip, BUILD_BACKEND], check=True)
    Path(f.name).unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python-version", required=True, help="the image's Python, e.g. 3.11.2")
    parser.add_argument("--lock", type=Path, default=Path("requirements.lock"))
    parser.add_argument("--dest", type=Path, default=Path("wheelhouse"))
    args = parser.parse_args()
    download(args.lock, args.dest, args.python_version)


if __name__ == "__main__":
    main()
