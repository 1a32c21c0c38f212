"""A real `redis-server` per test on a free loopback port, and stores connected to it.

`redis-server` missing is a failure, never a skip: CI installs it, and a suite that
quietly skips its Redis tests proves nothing."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gateway.config.loader import RedisConfig
from gateway.store.redis import RedisStore

START_TIMEOUT_S = 10.0
SENTINEL_SERVICE = "gwmaster"


class ServerExited(Exception):
    pass


@dataclass
class RedisServer:
    """One `redis-server` process: no persistence, loopback only."""

    binary: str
    directory: Path
    port: int
    cluster: bool = False
    bus_port: int = 0
    sentinel_of: RedisServer | None = None  # this is a Sentinel watching that server
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        if self.sentinel_of is not None:
            return f"redis+sentinel://127.0.0.1:{self.port}/{SENTINEL_SERVICE}/0"
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        assert self.process is not None, "redis-server is not running"
        return self.process.pid

    def start(self) -> None:
        """Start (again, on the same port after `stop`) and wait until it answers."""
        assert self.process is None, "redis-server is already running"
        log = (self.directory / "redis.log").open("ab")
        self.process = subprocess.Popen(self._args(), stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self._wait_ready()
        if self.cluster:  # one node serving every slot
            self.command("CLUSTER", "ADDSLOTSRANGE", "0", "16383")
            self._wait_until(lambda: b"cluster_state:ok" in self.command("CLUSTER", "INFO"))

    def _args(self) -> list[str]:
        if self.sentinel_of is not None:  # Sentinel rewrites its config file: one per run
            conf = self.directory / "sentinel.conf"
            conf.write_text(
                f"port {self.port}\nbind 127.0.0.1\ndir {self.directory}\n"
                f"sentinel monitor {SENTINEL_SERVICE} 127.0.0.1 {self.sentinel_of.port} 1\n"
            )
            return [self.binary, str(conf), "--sentinel"]
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no", "--dir", str(self.directory)]
        if self.cluster:
            args += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
            args += ["--cluster-port", str(self.bus_port)]  # else port + 10000: may not exist
        return args

    def stop(self) -> None:
        """Kill it (even when frozen): clients see refused connections."""
        if self.process is None:
            return
        self.process.kill()
        self.process.wait(timeout=10)
        self.process = None

    def freeze(self) -> None:
        """SIGSTOP: connections still open, nothing answers."""
        os.kill(self.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def command(self, *args: str) -> bytes:
        """One command over a plain socket (RESP), its raw reply."""
        request = f"*{len(args)}\r\n".encode()
        for arg in args:
            request += f"${len(arg.encode())}\r\n{arg}\r\n".encode()
        with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as conn:
            conn.sendall(request)
            return conn.recv(65536)

    def _wait_ready(self) -> None:
        def answers() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                self.process = None
                log = (self.directory / "redis.log").read_text(errors="replace")
                raise ServerExited(f"redis-server exited at start:\n{log[-2000:]}")
            try:
                return self.command("PING").startswith(b"+PONG")
            except OSError:
                return False

        self._wait_until(answers)

    @staticmethod
    def _wait_until(ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        delay = 0.002
        while not ready():
            if time.monotonic() > deadline:
                pytest.fail(f"redis-server not ready after {START_TIMEOUT_S:.0f} s")
            time.sleep(delay)  # polling the socket, backing off a little
            delay = min(delay * 2, 0.05)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start_server(
    tmp_path_factory: pytest.TempPathFactory,
    cluster: bool = False,
    sentinel_of: RedisServer | None = None,
) -> RedisServer:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail(
            "redis-server is not on PATH: the Redis tests need a real server "
            "(Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis)."
        )
    directory = tmp_path_factory.mktemp("redis")
    for attempt in range(3):  # a free port can be taken before the server binds it
        bus_port = free_port() if cluster else 0
        server = RedisServer(binary, directory, free_port(), cluster, bus_port, sentinel_of)
        try:
            server.start()
            return server
        except ServerExited as exc:
            if attempt == 2:
                pytest.fail(str(exc))
    raise AssertionError("unreachable")


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = _start_server(tmp_path_factory, cluster=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_sentinel(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RedisServer]:
    """A Sentinel monitoring `redis_server` as SENTINEL_SERVICE; `.url` is the
    gateway's `redis+sentinel://` URL for it."""
    sentinel = _start_server(tmp_path_factory, sentinel_of=redis_server)
    try:
        yield sentinel
    finally:
        sentinel.stop()


@pytest.fixture(scope="session")
def _redis_cluster_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    # Shared: a new cluster node takes 2 s before it accepts writes.
    server = _start_server(tmp_path_factory, cluster=True)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_cluster_server(_redis_cluster_session: RedisServer) -> RedisServer:
    """A one-node Redis Cluster, emptied for each test: enough to run the store's
    cluster code paths. Shared by the session, so never stop or freeze it."""
    assert _redis_cluster_session.command("FLUSHALL").startswith(b"+OK")
    return _redis_cluster_session


def make_redis_config(
    url: str, cluster: bool = False, timeout_s: float | None = None
) -> RedisConfig:
    """Short timeouts and a fast poll, so outages show within the tests' patience
    (yet not so short that a loaded CI machine misses them with Redis up). A cluster
    client opens a connection to every node at its first command: no outage test
    uses one, so it gets time for that on a loaded machine."""
    if timeout_s is None:
        timeout_s = 3.0 if cluster else 0.5
    return RedisConfig(
        url=url,
        prefix="gwtest:",
        socket_timeout_s=timeout_s,
        connect_timeout_s=timeout_s,
        resync_interval_s=30.0,
        poll_interval_s=0.05,
        cluster=cluster,
    )


@pytest.fixture
def redis_config(redis_server: RedisServer) -> RedisConfig:
    return make_redis_config(redis_server.url)


@pytest.fixture
async def redis_store(redis_config: RedisConfig) -> AsyncIterator[RedisStore]:
    store = RedisStore.from_config(redis_config)
    try:
        yield store
    finally:
        await store.close()
