"""Tracing in a real `gateway serve` process: the access log names each request's
trace, the spans still waiting at SIGTERM are exported during the drain, the collector's
key never shows, and with tracing off the tracer is never even imported."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestServer

from gateway.config.loader import load_config
from gateway.config.source import ConfigError, Secret
from gateway.config.tracing import TracingConfig
from tests.cli.test_process import free_port
from tests.telemetry.otlp_receiver import SERVER, Receiver

AiohttpServer = Callable[..., Awaitable[TestServer]]
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{CLIENT_TRACE}-00f067aa0ba902b7-01"
COLLECTOR_KEY = "collector-secret-in-process"
CONFIG = """
[server]
port = {port}
allow_unauthenticated = true
drain_delay_s = 0
drain_timeout_s = 10
[providers.mock]
type = "mock"
[models.demo]
targets = [{{ provider = "mock", model = "demo" }}]
{tracing}
"""


class Process:
    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self.process, self.port = process, port
        self.lines: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            self.lines.append(line.decode())

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def stop(self) -> None:
        """SIGTERM, and the drain to its end."""
        self.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            await self.process.wait()
            await self._reader

    def access_lines(self) -> list[dict[str, object]]:
        return [orjson.loads(line) for line in self.lines if '"request_id"' in line]


@pytest.fixture
async def started() -> AsyncIterator[list[Process]]:
    running: list[Process] = []
    yield running
    for served in running:
        if served.process.returncode is None:
            served.process.kill()
            await served.process.wait()


async def serve(tmp_path: Path, tracing: str, running: list[Process]) -> Process:
    port = free_port()
    path = tmp_path / "gateway.toml"
    path.write_text(CONFIG.format(port=port, tracing=tracing))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "serve",
        "--config",
        str(path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        # Nothing is exported on a timer during the test: what arrives came with the drain.
        env={**os.environ, "PYTHONUNBUFFERED": "1", "OTEL_BSP_SCHEDULE_DELAY": "600000"},
    )
    served = Process(process, port)
    running.append(served)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    async with aiohttp.ClientSession() as session:
        while True:
            assert loop.time() < deadline, "the gateway did not become ready"
            try:
                async with session.get(served.url("/readyz")) as r:
                    if r.status == 200:
                        return served
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)


async def two_requests(served: Process) -> None:
    """One continuing the client's trace, one with none."""
    body = {"model": "demo", "messages": [{"role": "user", "content": "hi"}]}
    async with aiohttp.ClientSession() as session:
        for headers in ({"traceparent": TRACEPARENT, "X-Request-Id": "traced"}, {}):
            url = served.url("/v1/chat/completions")
            async with session.post(url, json=body, headers=headers) as r:
                assert r.status == 200
                await r.read()


async def test_the_access_log_names_the_trace_and_the_drain_exports_the_spans(
    tmp_path: Path, aiohttp_server: AiohttpServer, started: list[Process]
) -> None:
    receiver = Receiver()
    collector = await aiohttp_server(receiver.app())
    endpoint = str(collector.make_url("/v1/traces"))
    tracing = f'[tracing]\notlp_endpoint = "{endpoint}"\nheaders = {{ key = "{COLLECTOR_KEY}" }}'
    served = await serve(tmp_path, tracing, started)
    await two_requests(served)
    await served.stop()
    assert served.process.returncode == 0

    traced, fresh = served.access_lines()
    assert (traced["request_id"], traced["trace_id"]) == ("traced", CLIENT_TRACE)
    assert isinstance(fresh["trace_id"], str) and len(fresh["trace_id"]) == 32
    assert fresh["trace_id"] != CLIENT_TRACE
    servers = {s.trace_id: s for s in receiver.find(lambda s: s.kind == SERVER)}
    assert set(servers) == {CLIENT_TRACE, fresh["trace_id"]}
    assert servers[CLIENT_TRACE].attributes["gateway.request_id"] == "traced"
    assert all(h["key"] == COLLECTOR_KEY for h in receiver.headers)
    assert not any(COLLECTOR_KEY in line for line in served.lines)


async def test_with_tracing_off_the_access_log_names_the_clients_trace(
    tmp_path: Path, started: list[Process]
) -> None:
    served = await serve(tmp_path, "", started)
    await two_requests(served)
    await served.stop()
    traced, untraced = served.access_lines()
    assert traced["trace_id"] == CLIENT_TRACE
    assert untraced["trace_id"] is None


# (redis-py loads OpenTelemetry's API for its own metrics when it is installed: what
# must stay out is ours, the SDK's tracer, the exporter and their threads.)
OFF_PROBE = """
import asyncio, sys, threading
from aiohttp.test_utils import TestClient, TestServer
from gateway.app import create_app
from gateway.config.loader import load_config

async def main():
    app = create_app(load_config(sys.argv[1]))
    async with TestClient(TestServer(app)) as client:
        body = {"model": "demo", "messages": [{"role": "user", "content": "hi"}]}
        headers = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
        r = await client.post("/v1/chat/completions", json=body, headers=headers)
        assert r.status == 200, r.status
    ours = ("gateway.telemetry.tracing", "opentelemetry.sdk.trace", "opentelemetry.exporter")
    print(sorted(m for m in sys.modules if m.startswith(ours)))
    print(sorted(t.name for t in threading.enumerate() if "span" in t.name.lower()))

asyncio.run(main())
"""


def test_with_tracing_off_the_tracer_is_never_imported(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(CONFIG.format(port=0, tracing="[tracing]\nsample_ratio = 0.5"))
    done = subprocess.run(
        [sys.executable, "-c", OFF_PROBE, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip().splitlines()[-2:] == ["[]", "[]"]


def test_tracing_without_the_extra_installed_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "gateway.toml"
    tracing = '[tracing]\notlp_endpoint = "http://127.0.0.1:4318/v1/traces"'
    path.write_text(CONFIG.format(port=0, tracing=tracing))
    load_config(path)  # installed here: fine
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk", None)  # as if it were not
    with pytest.raises(ConfigError, match=r"tracing\.otlp_endpoint.*'otel' extra"):
        load_config(path)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ('otlp_endpoint = "collector:4318"', r"tracing\.otlp_endpoint.*http"),
        ("sample_ratio = 1.5", r"tracing\.sample_ratio.*at most 1"),
        ('service_name = ""', r"tracing\.service_name.*empty"),
        ("headers = { key = 3 }", r"tracing\.headers\.key.*string"),
        ("endpoint = 'x'", r"tracing\.endpoint.*unknown key"),
    ],
)
def test_bad_tracing_settings_are_config_errors(tmp_path: Path, section: str, message: str) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(textwrap.dedent(CONFIG.format(port=0, tracing=f"[tracing]\n{section}")))
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_the_collectors_key_never_shows_in_the_config() -> None:
    config = TracingConfig("http://c/v1/traces", headers={"key": Secret(COLLECTOR_KEY)})
    assert COLLECTOR_KEY not in repr(config)
