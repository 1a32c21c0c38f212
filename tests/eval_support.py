"""Shared by the capture, feedback, suite and replay tests: a gateway config with a
prompt on a fake upstream, an admin API caller, and the CLI run as a subprocess (never
blocking the event loop the test's gateway runs on)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import Gateway

ADMIN = "admin-secret-token"
ROOT = Path(__file__).resolve().parent.parent


def gateway_config(
    upstream_url: str, capture: str = "", redis_url: str = "", extra: str = ""
) -> str:
    """Routes `chat` (mock-gpt) and `other` (mock-other) on the fake upstream, prompt
    `support` on `chat`, prices for mock-gpt, the test key, and the given sections."""
    text = """
        [server]
        admin_token = "@ADMIN@"
        request_timeout_s = 30

        [providers.fake]
        type = "openai"
        base_url = "@UPSTREAM@"
        api_key = "sk-upstream-secret"

        [models.chat]
        targets = [{ provider = "fake", model = "mock-gpt" }]

        [models.other]
        targets = [{ provider = "fake", model = "mock-other" }]

        [pricing."mock-gpt"]
        input_per_mtok = 1.0
        output_per_mtok = 2.0

        [[keys]]
        name = "test-app"
        sha256 = "{key_sha256}"

        [prompts.support]
        model = "chat"
        messages = [{ role = "system", content = "You answer for {{product}}." }]
        params = { temperature = 0.2 }
    """
    text = text.replace("@ADMIN@", ADMIN).replace("@UPSTREAM@", upstream_url)
    if redis_url:
        text += f"""
        [redis]
        url = "{redis_url}"
        prefix = "gwtest:"
        poll_interval_s = 0.05
        socket_timeout_s = 2
        """
    if capture:
        text += "\n        [capture]\n" + capture
    return text + extra


class Admin:
    def __init__(self, gw: Gateway, session: aiohttp.ClientSession) -> None:
        self.gw, self.session = gw, session

    async def call(self, method: str, path: str, json: Any = None) -> tuple[int, Any]:
        async with self.session.request(
            method,
            self.gw.url("/admin" + path),
            json=json,
            headers={"Authorization": f"Bearer {ADMIN}"},
        ) as response:
            return response.status, await response.json()


async def run_cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """`python -m gateway ARGS` in a subprocess; (exit status, stdout, stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=50)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def cli_connection(gw: Gateway, key: str = "") -> list[str]:
    args = ["--url", gw.url("/").rstrip("/"), "--token", ADMIN]
    return [*args, "--key", key] if key else args
