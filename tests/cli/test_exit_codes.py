"""One exit-code scheme for every command (gateway.cli.exits), each code seen from a
real `gateway` process: against a real gateway (refusals, its 5xx while its Redis is
down), against a port nobody listens on, and on bad input."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable

import pytest

from gateway.cli.exits import FAILED, GATEWAY_ERROR, OK, REFUSED, UNREACHABLE, USAGE
from tests.conftest import Gateway, Upstream
from tests.redis_fixtures import RedisServer, free_port

ADMIN = "admin-token-for-exit-codes"


def config(upstream: Upstream, redis_url: str) -> str:
    return f"""
        [server]
        admin_token = "{ADMIN}"

        [redis]
        url = "{redis_url}"
        prefix = "exits:"
        socket_timeout_s = 5
        connect_timeout_s = 5

        [providers.fake]
        type = "openai"
        base_url = "{upstream.base_url}"

        [models.chat]
        targets = [{{ provider = "fake", model = "mock-gpt" }}]

        [prompts.support]
        model = "chat"
        messages = [{{ role = "system", content = "You help." }}]
    """


async def gateway(*args: str, stdin: bytes = b"", token: str = ADMIN) -> tuple[int, str]:
    """`gateway ARGS` as a process, GATEWAY_ADMIN_TOKEN set: its status and stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "GATEWAY_ADMIN_TOKEN": token},
    )
    _, err = await asyncio.wait_for(process.communicate(stdin), timeout=150)  # a safety net
    assert process.returncode is not None
    assert "Traceback" not in err.decode()
    return process.returncode, err.decode()


@pytest.mark.timeout(600)  # a dozen processes, on a loaded machine
async def test_every_exit_code_of_the_scheme(
    gateway_factory: Callable[[str], Awaitable[Gateway]],
    upstream: Upstream,
    redis_server: RedisServer,
) -> None:
    gw = await gateway_factory(config(upstream, redis_server.url))
    url = ["--url", gw.url("").rstrip("/")]

    assert await gateway("prompts", "list", *url) == (OK, "")

    # 1: a check's verdict (a config that does not load, read from stdin).
    code, err = await gateway("check-config", "-", stdin=b"[models.broken\n")
    assert code == FAILED and "config error" in err

    # 2: usage and input, found before (or without) asking the gateway.
    runs = await asyncio.gather(
        gateway("prompts", "weights", "support", "v1=lots", *url),
        gateway("prompts", "push", "/nonexistent/prompts.toml", *url),
        gateway("prompts", "list", "--no-such-option", *url),
        gateway("prompts", "list", "--url", "not a url"),
    )
    said = ("weights look like v1=90", "cannot read", "unrecognized arguments", "not a gateway")
    for (code, err), words in zip(runs, said, strict=True):
        assert code == USAGE and words in err, err

    # 3: nobody listens there.
    code, err = await gateway("prompts", "list", "--url", f"http://127.0.0.1:{free_port()}")
    assert code == UNREACHABLE and "cannot reach" in err

    # 4: the gateway refuses: authentication, not found, a body it will not take.
    runs = await asyncio.gather(
        gateway("prompts", "list", *url, token="wrong"),
        gateway("prompts", "show", "nope", *url),
        gateway("prompts", "weights", "support", "v9=100", *url),
        gateway("rollout", "status", "support", *url),
    )
    for (code, err), status in zip(runs, ("401", "404", "400", "404"), strict=True):
        assert code == REFUSED and err.startswith(f"error: {status}: "), err

    # 5: the gateway fails: its store is gone and the history lives only there.
    assert (await gateway("prompts", "history", "support", *url))[0] == OK
    redis_server.stop()
    code, err = await gateway("prompts", "history", "support", *url)
    assert code == GATEWAY_ERROR and err.startswith("error: 503: "), err


async def test_the_help_lists_every_exit_code() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "--help", stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout=150)  # a safety net
    assert process.returncode == 0
    listed = out.decode().split("exit codes:\n")[1]
    codes = [int(line.split()[0]) for line in listed.splitlines() if line.strip()]
    assert codes == [OK, FAILED, USAGE, UNREACHABLE, REFUSED, GATEWAY_ERROR]
