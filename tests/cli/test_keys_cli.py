"""`gateway keys create|list|show|rotate|revoke` against a real `gateway serve`."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.served_gateway import Served, serve

CONFIG = """
[server]
port = {port}
admin_token = "break-glass"
[providers.mock]
type = "mock"
[models.chat]
targets = [{ provider = "mock", model = "demo" }]
[teams.ops]
"""


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Served]:
    served = await serve(tmp_path / "gateway.toml", CONFIG)
    yield served
    await served.stop()


async def cli(gateway: Served, *args: str) -> tuple[int, str]:
    env = {**os.environ, "GATEWAY_URL": gateway.root, "GATEWAY_ADMIN_TOKEN": "break-glass"}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "keys",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode()


async def status_of(gateway: Served, token: str) -> int:
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(gateway.url("/v1/chat/completions"), json=body, headers=headers) as r,
    ):
        return r.status


def token_in(out: str) -> str:
    found = re.search(r"^\s+(sk-gw-\S+)$", out, re.M)
    assert found is not None, out
    return found.group(1)


async def test_the_key_commands_drive_the_admin_api(gateway: Served) -> None:
    code, out = await cli(
        gateway, "create", "app", "--team", "ops", "--rpm", "30", "--meta", "owner=me"
    )
    assert code == 0, out
    token = token_in(out)
    assert out.count(token) == 1 and "shown once" in out
    assert await status_of(gateway, token) == 200

    code, out = await cli(gateway, "list")
    assert code == 0 and re.search(r"^app\s+store\s+active\s+team=ops", out, re.M), out
    code, out = await cli(gateway, "show", "app")
    assert code == 0 and '"rpm": 30' in out and '{"owner": "me"}' in out and token not in out

    code, out = await cli(gateway, "rotate", "app", "--grace", "0")
    assert code == 0, out
    rotated = token_in(out)
    assert await status_of(gateway, token) == 401 and await status_of(gateway, rotated) == 200

    code, out = await cli(gateway, "revoke", "app")
    assert code == 0 and "revoked" in out
    assert await status_of(gateway, rotated) == 401

    code, out = await cli(gateway, "create", "app")
    assert code == 4 and "409" in out and "exists already" in out
