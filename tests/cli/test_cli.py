"""The `gateway` command line."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys


def test_keys_create_prints_a_token_once_and_its_hash() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway",
            "keys",
            "create",
            "--name",
            "support-app",
            "--routes",
            "fast,prompt:support",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    token = re.search(r"^\s+(gw-\S+)$", result.stdout, re.M)
    assert token is not None
    digest = hashlib.sha256(token.group(1).encode()).hexdigest()
    assert f'sha256 = "{digest}"' in result.stdout
    assert 'name = "support-app"' in result.stdout
    assert 'routes = ["fast", "prompt:support"]' in result.stdout
    assert result.stdout.count(token.group(1)) == 1
