"""Two gateway processes on one real Redis share one review queue: an answer held on
one replica is decided on the other (through the `gateway review` CLI) and read back
by its client on the first; items past their time are decided exactly once between
the two sweeping replicas. The access log line names the guard's verdict."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import openai
import orjson
import pytest

from tests.conftest import CLIENT_TOKEN, AiohttpServer, key_sha256
from tests.eval_support import ADMIN, run_cli
from tests.guards.support import admin_call, client_review, config, scripted_upstream
from tests.redis_fixtures import RedisServer, free_port

ANSWER = "Your account number is 1234."
HOLD = """
        [guards.accounts]
        regex_deny = ["account number"]
        on_fail = "hold"

        [models.chat]
        targets = [@TARGETS@]
        guards = ["accounts"]
"""
TIMEOUT = """
        [review]
        timeout_s = 0.3
        on_timeout = "release"
        sweep_interval_s = 0.05
"""


@dataclass
class Replica:
    process: asyncio.subprocess.Process
    port: int
    lines: list[bytes] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.base + "/v1", api_key=CLIENT_TOKEN, max_retries=0)

    async def read(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            self.lines.append(line)


async def until(check: Callable[[], Awaitable[bool]], within_s: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not await check():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def start(path: Path) -> Replica:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "serve",
        "--config",
        str(path),
        "--port",
        str(port),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    replica = Replica(process, port)
    replica.reader = asyncio.create_task(replica.read())

    async def ready() -> bool:
        try:
            async with aiohttp.ClientSession() as s, s.get(replica.base + "/readyz") as r:
                return r.status == 200
        except aiohttp.ClientError:
            return False

    await until(ready)
    return replica


@pytest.fixture
async def replicas() -> AsyncIterator[list[Replica]]:
    started: list[Replica] = []
    yield started
    for replica in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(replica.process.pid, signal.SIGKILL)
        await replica.process.wait()
        if replica.reader is not None:
            await replica.reader


async def hold(replica: Replica) -> str:
    async with replica.client() as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="chat", messages=[{"role": "user", "content": "which account?"}]
        )
    assert raw.status_code == 202
    return str(orjson.loads(raw.content)["id"])


async def released_count(session: aiohttp.ClientSession, replica: Replica) -> float:
    async with session.get(replica.base + "/metrics") as r:
        page = await r.text()
    found = re.findall(r'^gateway_reviews_total\{outcome="released".*\} (\S+)$', page, re.M)
    return sum(float(v) for v in found)


@pytest.mark.timeout(120)
async def test_two_replicas_share_one_review_queue(
    aiohttp_server: AiohttpServer,
    redis_server: RedisServer,
    replicas: list[Replica],
    tmp_path: Path,
) -> None:
    url, _ = await scripted_upstream(aiohttp_server, ANSWER)
    path = tmp_path / "gateway.toml"
    text = config([url], HOLD, redis_server.url).replace("{key_sha256}", key_sha256())
    path.write_text(textwrap.dedent(text))
    a, b = await start(path), await start(path)
    replicas.extend([a, b])
    review_id = await hold(a)
    cli = ["--url", b.base, "--token", ADMIN]

    code, out, _ = await run_cli("review", "list", *cli)
    assert code == 0 and review_id in out and "held" in out and "accounts" in out
    code, out, _ = await run_cli("review", "show", review_id, *cli)
    assert code == 0 and ANSWER in out and "which account?" in out
    async with aiohttp.ClientSession() as session:
        status, view = await client_review(session, a.base, review_id, CLIENT_TOKEN)
        assert view["status"] == "pending" and ANSWER not in orjson.dumps(view).decode()
        code, out, _ = await run_cli(
            "review", "approve", review_id, "--note", "masked", "--edit", "Ask support.", *cli
        )
        assert code == 0 and "approved" in out
        status, view = await client_review(session, a.base, review_id, CLIENT_TOKEN)
        assert view["status"] == "approved"
        assert view["completion"]["choices"][0]["message"]["content"] == "Ask support."
        code, _, err = await run_cli("review", "reject", review_id, *cli)
        assert code == 4 and "409" in err

        # The access log line of the held request names the guard's verdict.
        logged = [orjson.loads(x) for x in a.lines if x.startswith(b"{") and b'"guards"' in x]
        assert logged and logged[0]["status"] == 202
        assert logged[0]["guards"][0]["guard"] == "accounts"
        assert logged[0]["guards"][0]["result"] == "fail"

        # Timeouts: both replicas sweep; each item is released once, by one of them.
        path.write_text(textwrap.dedent(text + TIMEOUT))
        for replica in (a, b):
            status, _ = await admin_call(session, replica.base, "POST", "/reload")
            assert status == 200
        ids = [await hold(a), await hold(b), await hold(a)]

        async def all_released() -> bool:
            views = [await client_review(session, a.base, i, CLIENT_TOKEN) for i in ids]
            return all(v["status"] == "approved" for _, v in views)

        await until(all_released)
        for i in ids:
            _, item = await admin_call(session, b.base, "GET", "/reviews/" + i)
            assert item["decided_by"] == "timeout" and item["timed_out"] is True

        async def counted() -> bool:
            return await released_count(session, a) + await released_count(session, b) >= 3

        await until(counted)
        assert await released_count(session, a) + await released_count(session, b) == 3
