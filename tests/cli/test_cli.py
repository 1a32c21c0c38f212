"""The `gateway` command line."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys

from gateway.admin.identity import identify
from gateway.config.loader import load_config


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


def test_admins_create_prints_a_token_once_and_a_block_that_authenticates() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway",
            "admins",
            "create",
            "--name",
            "ann",
            "--roles",
            "author,approver",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    token = re.search(r"^\s+(gwa-\S+)$", result.stdout, re.M)
    assert token is not None and result.stdout.count(token.group(1)) == 1
    block = result.stdout[result.stdout.index("[[admins]]") :]
    config = load_config("inline.toml", text=block)
    identity = identify(config, token.group(1))
    assert identity is not None and identity.name == "ann"
    assert identity.roles == {"author", "approver"}
    assert identify(config, token.group(1) + "x") is None
    bad = subprocess.run(
        [sys.executable, "-m", "gateway", "admins", "create", "--name", "x", "--roles", "boss"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "boss" in bad.stderr


def gateway(*args: str, **options: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", "gateway", *args], capture_output=True, text=True, **options
    )


def test_version_and_the_environment_in_help() -> None:
    from gateway import __version__

    assert gateway("--version").stdout.strip() == f"gateway {__version__}"
    shown = gateway("--help").stdout
    for name in ("GATEWAY_URL", "GATEWAY_ADMIN_TOKEN", "GATEWAY_CLIENT_KEY"):
        assert name in shown
    assert "GATEWAY_URL" in gateway("prompts", "list", "--help").stdout


def test_check_config_reads_standard_input_for_a_dash() -> None:
    good = '[providers.mock]\ntype = "mock"\n[models.chat]\ntargets = [{provider = "mock"}]\n'
    done = gateway("check-config", "-", input=good)
    assert done.returncode == 1 and "-:4" in done.stderr  # the target has no model
    fixed = good.replace('provider = "mock"}', 'provider = "mock", model = "demo"}')
    done = gateway("check-config", "-", input=fixed)
    assert done.returncode == 0 and done.stdout.startswith("-: ok")


def test_a_reader_that_closes_the_pipe_gets_no_traceback() -> None:
    read, write = os.pipe()
    os.close(read)  # `| head` that has already gone: every write fails with EPIPE
    try:
        done = subprocess.run(
            [sys.executable, "-m", "gateway", "keys", "create", "--name", "app"],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
        )
    finally:
        os.close(write)
    assert done.returncode == 0
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr
