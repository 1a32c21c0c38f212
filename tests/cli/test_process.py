"""The process model, run for real: `gateway serve` as a subprocess, with workers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import orjson
import pytest

CONFIG = """
[server]
port = {port}
workers = {workers}
allow_unauthenticated = true
drain_timeout_s = 20
drain_delay_s = {drain_delay_s}
[providers.mock]
type = "mock"
[models.demo]
targets = [{{ provider = "mock", model = "demo" }}]
[models.slow-stream]
targets = [{{ provider = "mock", model = "chunk_delay=60+words=12" }}]
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self.process = process
        self.port = port
        self.lines: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            self.lines.append(line.decode())

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def access_pids(self) -> set[int]:
        pids = set()
        for line in self.lines:
            if '"request_id"' in line:
                pids.add(orjson.loads(line)["pid"])
        return pids

    def children(self) -> set[int]:
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return {int(p) for p in path.read_text().split()}

    async def wait_until(
        self, check: Callable[[], Awaitable[bool]], within_s: float = 15.0
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        while not await check():
            assert loop.time() < deadline, "condition not reached in time"
            await asyncio.sleep(0.05)


async def serve(tmp_path: Path, workers: int, drain_delay_s: float = 0) -> Served:
    port = free_port()
    path = tmp_path / "gateway.toml"
    path.write_text(CONFIG.format(port=port, workers=workers, drain_delay_s=drain_delay_s))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "serve",
        "--config",
        str(path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,  # teardown stops the supervisor and its workers at once
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    served = Served(process, port)

    async def ready() -> bool:
        try:
            async with aiohttp.ClientSession() as session, session.get(served.url("/readyz")) as r:
                return r.status == 200
        except aiohttp.ClientError:
            return False

    await served.wait_until(ready)
    return served


@pytest.fixture
async def stop_all() -> AsyncIterator[list[Served]]:
    started: list[Served] = []
    yield started
    for served in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(served.process.pid, signal.SIGKILL)
        await served.process.wait()


async def total_requests(session: aiohttp.ClientSession, served: Served) -> float:
    async with session.get(served.url("/metrics")) as r:
        page = await r.text()
    return sum(
        float(v)
        for v in re.findall(r'^gateway_requests_total\{.*route="demo".*\} (\S+)$', page, re.M)
    )


async def chat(session: aiohttp.ClientSession, served: Served) -> int:
    async with session.post(
        served.url("/v1/chat/completions"),
        json={"model": "demo", "messages": [{"role": "user", "content": "hi"}]},
    ) as r:
        await r.read()
        return r.status


@pytest.mark.timeout(90)
async def test_two_workers_share_the_port_metrics_and_reloads(
    tmp_path: Path, stop_all: list[Served]
) -> None:
    served = await serve(tmp_path, workers=2)
    stop_all.append(served)
    assert len(served.children()) == 2
    # A new connection per request: the kernel spreads them over both workers.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
        # (The second worker may still be starting: send until both have answered.)
        sent = 0

        async def both_served() -> bool:
            nonlocal sent
            for _ in range(20):
                assert await chat(s, served) == 200
                sent += 1
            await asyncio.sleep(0.05)  # let the access-log lines arrive
            return len(served.access_pids()) == 2

        await served.wait_until(both_served)

        async def all_counted() -> bool:
            return await total_requests(s, served) == sent

        # Whichever worker answers /metrics reports both: its own counts at once, the
        # other's once that worker has flushed them (every second).
        await served.wait_until(all_counted)
        for _ in range(4):
            assert await total_requests(s, served) == sent

        # SIGHUP to the supervisor reaches both workers.
        os.kill(served.process.pid, signal.SIGHUP)

        async def both_reloaded() -> bool:
            async with s.get(served.url("/metrics")) as r:
                return 'gateway_config_reloads_total{result="success"} 2.0' in await r.text()

        await served.wait_until(both_reloaded)

        # A killed worker is replaced, and counters never go back.
        before = await total_requests(s, served)
        victim = next(iter(served.children()))
        os.kill(victim, signal.SIGKILL)
        await served.wait_until(
            lambda: _true(len(served.children()) == 2 and victim not in served.children())
        )
        for _ in range(10):
            assert await chat(s, served) == 200
        assert await total_requests(s, served) >= before + 10

    served.process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(served.process.wait(), 30) == 0


@pytest.mark.timeout(60)
@pytest.mark.parametrize("workers", [1, 2])
async def test_sigterm_lets_a_stream_in_flight_finish(
    tmp_path: Path, stop_all: list[Served], workers: int
) -> None:
    served = await serve(tmp_path, workers=workers)
    stop_all.append(served)
    body = {"model": "slow-stream", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    async with (
        aiohttp.ClientSession() as session,
        session.post(served.url("/v1/chat/completions"), json=body) as response,
    ):
        first = await response.content.readuntil(b"\n\n")
        assert first.startswith(b"data: ")
        served.process.send_signal(signal.SIGTERM)
        rest = await response.content.read()
    assert rest.endswith(b"data: [DONE]\n\n")
    assert rest.count(b"data: ") >= 10
    assert await asyncio.wait_for(served.process.wait(), 30) == 0


@pytest.mark.timeout(60)
@pytest.mark.parametrize("workers", [1, 2])
async def test_sigterm_drains_in_steps_answering_readyz_503_before_the_listener_closes(
    tmp_path: Path, stop_all: list[Served], workers: int
) -> None:
    """During the drain delay the replica still answers, `/readyz` with 503 (a load
    balancer takes it out), new requests with 200; then it stops accepting; the stream
    open since before SIGTERM still ends with [DONE]; the process exits 0."""
    served = await serve(tmp_path, workers=workers, drain_delay_s=2)
    stop_all.append(served)
    body = {"model": "slow-stream", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    async with aiohttp.ClientSession() as session:
        async with session.post(served.url("/v1/chat/completions"), json=body) as response:
            assert (await response.content.readuntil(b"\n\n")).startswith(b"data: ")
            served.process.send_signal(signal.SIGTERM)

            async def readyz_503() -> bool:
                async with aiohttp.ClientSession() as fresh, fresh.get(served.url("/readyz")) as r:
                    return r.status == 503

            await served.wait_until(readyz_503, within_s=2)
            async with aiohttp.ClientSession() as fresh:  # a new connection: still accepted
                assert await chat(fresh, served) == 200
            rest = await response.content.read()
        assert rest.endswith(b"data: [DONE]\n\n")

        async def refused() -> bool:
            try:
                async with aiohttp.ClientSession() as fresh, fresh.get(served.url("/healthz")):
                    return False
            except aiohttp.ClientConnectionError:
                return True

        await served.wait_until(refused, within_s=10)
    assert await asyncio.wait_for(served.process.wait(), 30) == 0


@pytest.mark.timeout(60)
async def test_sigint_skips_the_drain_delay(tmp_path: Path, stop_all: list[Served]) -> None:
    """Ctrl-C at a terminal: nobody routes to it, so no 30 s of /readyz at 503 first."""
    served = await serve(tmp_path, workers=1, drain_delay_s=30)
    stop_all.append(served)
    served.process.send_signal(signal.SIGINT)
    assert await asyncio.wait_for(served.process.wait(), 20) == 0


async def _true(value: bool) -> bool:
    return value
