"""Three real gateway processes on one real redis-server: a key's rpm and a budget hold
within the stated overshoot (replicas x batch per window), a frozen Redis answers every
request within a second in the configured mode, and tpm is corrected across replicas."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.cli.test_process import free_port
from tests.conftest import CLIENT_TOKEN, key_sha256
from tests.redis_fixtures import RedisServer

ADMIN = "admin-secret-token"
REPLICAS = 3
CONFIG = f"""
[server]
port = {{port}}
admin_token = "{ADMIN}"
[redis]
url = "{{redis}}"
connect_timeout_s = 5
[providers.mock]
type = "mock"
[models.chat]
targets = [{{{{ provider = "mock", model = "words=5" }}}}]
[pricing."words=5"]
input_per_mtok = 1000
output_per_mtok = 1000
[[keys]]
name = "app"
sha256 = "{key_sha256()}"
limits = {{{{ {{limits}} }}}}
{{budget}}
[limits]
lease_fraction = 0.1
on_store_error = "open"
"""


class Replica:
    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self.process, self.port = process, port

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


async def start(
    tmp_path: Path, redis: RedisServer, n: int, limits: str, budget: str = ""
) -> Replica:
    port = free_port()
    path = tmp_path / f"replica{n}.toml"
    path.write_text(CONFIG.format(port=port, redis=redis.url, limits=limits, budget=budget))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "serve", "--config", str(path),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    replica = Replica(process, port)
    deadline = time.monotonic() + 60
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError):
                async with s.get(replica.url("/readyz")) as r:
                    if r.status == 200:
                        return replica
            await asyncio.sleep(0.1)
    raise AssertionError("a replica did not get ready")


@pytest.fixture
async def replicas() -> AsyncIterator[list[Replica]]:
    started: list[Replica] = []
    yield started
    for replica in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(replica.process.pid, signal.SIGKILL)
        await replica.process.wait()


async def chat(s: aiohttp.ClientSession, replica: Replica) -> tuple[int, float]:
    began = time.monotonic()
    async with s.post(
        replica.url("/v1/chat/completions"),
        json={"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10},
        headers={"Authorization": f"Bearer {CLIENT_TOKEN}"},
    ) as r:
        await r.read()
        return r.status, time.monotonic() - began


async def burst(replicas: list[Replica], count: int) -> list[tuple[int, float]]:
    """`count` requests spread over the replicas, a few at a time."""
    async with aiohttp.ClientSession() as s:
        results: list[tuple[int, float]] = []
        for i in range(0, count, 6):
            batch = [chat(s, replicas[(i + j) % len(replicas)]) for j in range(min(6, count - i))]
            results += await asyncio.gather(*batch)
        return results


async def limits_view(replica: Replica) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as s,
        s.get(replica.url("/admin/limits"), headers={"Authorization": f"Bearer {ADMIN}"}) as r,
    ):
        found: dict[str, Any] = await r.json()
        return found


def windows_touched(began: float, ended: float, length: float) -> int:
    return int(ended // length) - int(began // length) + 1


async def test_rpm_holds_within_replicas_times_batch(
    tmp_path: Path, redis_server: RedisServer, replicas: list[Replica]
) -> None:
    limit, batch = 40, 4  # lease_fraction 0.1
    replicas += [await start(tmp_path, redis_server, n, f"rpm = {limit}") for n in range(REPLICAS)]
    began = time.time()
    results = await burst(replicas, 150)
    ended = time.time()
    ok = sum(1 for status, _ in results if status == 200)
    bound = limit + REPLICAS * batch
    assert ok <= bound * windows_touched(began, ended, 60), (ok, bound)
    assert ok >= limit - REPLICAS * batch  # unused leases are all that is lost
    assert {status for status, _ in results} <= {200, 429}


async def test_a_budget_stops_within_the_bound(
    tmp_path: Path, redis_server: RedisServer, replicas: list[Replica]
) -> None:
    # At $1000 per Mtok an answer of a few tokens costs a few thousandths.
    budget = '[keys.budget]\nusd = 0.2\nperiod = "day"'
    replicas += [
        await start(tmp_path, redis_server, n, "rpm = 100000", budget) for n in range(REPLICAS)
    ]
    first = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
    async with (  # what one answer costs, as priced
        aiohttp.ClientSession() as s,
        s.post(
            replicas[0].url("/v1/chat/completions"),
            json=first,
            headers={"Authorization": f"Bearer {CLIENT_TOKEN}"},
        ) as r,
    ):
        per_answer = (await r.json())["usage"]["total_tokens"] * 1000 / 1_000_000
    results = await burst(replicas, 120)
    ok = 1 + sum(1 for status, _ in results if status == 200)
    batch = 0.02  # lease_fraction 0.1 of $0.2
    in_flight = 6 * per_answer  # a burst's requests admitted before their cost was known
    assert ok * per_answer <= 0.2 + REPLICAS * batch + in_flight, ok
    assert 429 in {status for status, _ in results}


async def test_a_frozen_redis_answers_within_a_second_in_the_open_mode(
    tmp_path: Path, redis_server: RedisServer, replicas: list[Replica]
) -> None:
    replicas += [await start(tmp_path, redis_server, n, "rpm = 30") for n in range(REPLICAS)]
    redis_server.freeze()
    try:
        early = await burst(replicas, 30)  # while the replicas' draws hang
        deadline = time.monotonic() + 20
        while any([(await limits_view(r))["store_ok"] for r in replicas]):
            assert time.monotonic() < deadline, "a replica never noticed the frozen store"
            await asyncio.sleep(0.05)
        late = await burst(replicas, 60)
    finally:
        redis_server.thaw()
    results = early + late
    assert max(seconds for _, seconds in results) < 1.0
    # Open: once a replica knows the store is gone it counts alone against the whole
    # limit, so more than the 30 of one window are served across the three.
    assert sum(1 for status, _ in results if status == 200) > 30


async def test_tpm_is_corrected_from_real_usage_across_replicas(
    tmp_path: Path, redis_server: RedisServer, replicas: list[Replica]
) -> None:
    replicas += [await start(tmp_path, redis_server, n, "tpm = 100000") for n in range(REPLICAS)]
    used = [0] * REPLICAS
    async with aiohttp.ClientSession() as s:
        for i in range(9):
            async with s.post(
                replicas[i % REPLICAS].url("/v1/chat/completions"),
                json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]},
                headers={"Authorization": f"Bearer {CLIENT_TOKEN}"},
            ) as r:
                assert r.status == 200
                used[i % REPLICAS] += (await r.json())["usage"]["total_tokens"]
    # Each replica counts the tokens its answers used, not their estimates (1024+).
    for replica, tokens in zip(replicas, used, strict=True):
        view = await limits_view(replica)
        (meter,) = [m for m in view["meters"] if m["meter"] == "key:app:tpm"]
        assert meter["used"] == tokens
    deadline = time.monotonic() + 10  # reported within the sync interval (1 s)
    while time.monotonic() < deadline:
        view = await limits_view(replicas[0])
        (meter,) = [m for m in view["meters"] if m["meter"] == "key:app:tpm"]
        if meter["used_total"] == sum(used):
            break
        await asyncio.sleep(0.1)
    assert meter["used_total"] == sum(used)
