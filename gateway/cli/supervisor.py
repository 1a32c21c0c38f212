"""`server.workers = N`: N worker processes share the port (SO_REUSEPORT) under this
supervisor, which restarts a worker that dies, passes SIGHUP on, and on SIGTERM lets
every worker drain before it exits. Metrics of all workers are summed through
prometheus-client's multiprocess mode, in a fresh private directory per start."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from types import FrameType

from aiohttp import web
from prometheus_client import multiprocess

log = logging.getLogger("gateway.supervisor")
WORKER_ENV = "GATEWAY_WORKER"


class Supervisor:
    def __init__(
        self, config_path: str, host: str, port: int, workers: int, drain_timeout_s: float
    ) -> None:
        self.argv = [
            sys.executable,
            "-m",
            "gateway",
            "serve",
            "--config",
            config_path,
            "--host",
            host,
            "--port",
            str(port),
        ]
        self.count = workers
        self.drain_timeout_s = drain_timeout_s
        self.workers: dict[int, subprocess.Popen[bytes]] = {}
        self.stopping = False
        self.metrics_dir = tempfile.mkdtemp(prefix="gateway-metrics-")
        self.env = {**os.environ, WORKER_ENV: "1", "PROMETHEUS_MULTIPROC_DIR": self.metrics_dir}
        self._recent_deaths: list[float] = []

    def run(self) -> int:
        signal.signal(signal.SIGHUP, self._forward)
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        signal.signal(signal.SIGALRM, self._kill_all)
        try:
            for _ in range(self.count):
                self._spawn()
            log.info(
                "supervising %d workers (pids %s)", self.count, ", ".join(map(str, self.workers))
            )
            while self.workers:
                try:
                    pid, status = os.wait()
                except ChildProcessError:
                    break
                self._reap(pid, status)
        finally:
            shutil.rmtree(self.metrics_dir, ignore_errors=True)
        return 0

    def _spawn(self) -> None:
        process = subprocess.Popen(self.argv, env=self.env)
        self.workers[process.pid] = process

    def _reap(self, pid: int, status: int) -> None:
        if self.workers.pop(pid, None) is None:
            return
        multiprocess.mark_process_dead(pid, self.metrics_dir)  # type: ignore[no-untyped-call]
        if self.stopping:
            return
        code = os.waitstatus_to_exitcode(status)
        log.warning("worker %d exited (%d); starting a new one", pid, code)
        now = time.monotonic()
        self._recent_deaths = [t for t in self._recent_deaths if now - t < 10] + [now]
        if len(self._recent_deaths) > 5 * self.count:
            log.error("workers keep dying; stopping")
            self._stop(signal.SIGTERM, None)
            return
        self._spawn()

    def _forward(self, signum: int, frame: FrameType | None) -> None:
        for pid in list(self.workers):
            _signal(pid, signum)

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        if self.stopping:
            return
        self.stopping = True
        log.info(
            "stopping: draining %d workers (up to %gs)", len(self.workers), self.drain_timeout_s
        )
        for pid in list(self.workers):
            _signal(pid, signal.SIGTERM)
        signal.alarm(int(self.drain_timeout_s) + 5)  # then _kill_all

    def _kill_all(self, signum: int, frame: FrameType | None) -> None:
        for pid in list(self.workers):
            _signal(pid, signal.SIGKILL)


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def exit_with_parent(interval_s: float = 1.0) -> Callable[[web.Application], AsyncIterator[None]]:
    """For a worker: drain and exit if the supervisor goes away (no orphan keeps the
    port, whatever killed the supervisor)."""
    parent = os.getppid()

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        async def watch() -> None:
            while os.getppid() == parent:  # noqa: ASYNC110 - no event tells of a parent's death
                await asyncio.sleep(interval_s)
            log.warning("supervisor %d is gone; worker %d stopping", parent, os.getpid())
            os.kill(os.getpid(), signal.SIGTERM)

        task = asyncio.create_task(watch())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return ctx
