"""`gateway serve` run for real as a subprocess on a free loopback port: what tests of
several replicas (one process each, on one Redis) and of the command line drive."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

from tests.redis_fixtures import free_port

READY_WITHIN_S = 30.0  # a loaded machine starts Python slowly


class Served:
    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self.process = process
        self.port = port
        self.output: list[str] = []  # stdout and stderr: logs and the access log
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            self.output.append(line.decode(errors="replace"))

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.root + path

    async def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        await self.process.wait()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


async def wait_until(check: Callable[[], Awaitable[bool]], within_s: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not await check():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def serve(config_path: Path, text: str) -> Served:
    """Write `text` (with `{port}` filled in) to `config_path` and serve it."""
    port = free_port()
    await asyncio.to_thread(config_path.write_text, text.replace("{port}", str(port)))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "serve",
        "--config",
        str(config_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,  # a kill of the group stops it, whatever it started
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    served = Served(process, port)

    async def ready() -> bool:
        assert process.returncode is None, "".join(served.output)[-3000:]
        try:
            async with aiohttp.ClientSession() as session, session.get(served.url("/readyz")) as r:
                return r.status == 200
        except aiohttp.ClientError:
            return False

    try:
        await wait_until(ready, READY_WITHIN_S)
    except BaseException:
        await served.stop()
        raise
    return served
