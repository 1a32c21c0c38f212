"""CPU instructions per request, counted by valgrind's callgrind: the same figure on every
run of the same code, whatever else the machine does (requests/s on a shared 2-core
machine drift by tens of percent between runs). The ratio bare/gateway is what the
throughput ratio would be if both were CPU-bound on user-space work (it leaves out the
kernel's share: sockets and system calls, about the same for both).

A third count is a live stream: a mock provider writes 50 words one event at a time,
30 ms apart, so each network read holds one event, as in production (nginx sends the
fixed 30-chunk stream in one piece, which the first two counts measure). Few clients and
a wide gap keep one event per read even at valgrind's pace."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

import aiohttp
from procs import Abort, free_port, log, wait_ready
from scenarios import Bench

HERE = Path(__file__).resolve().parent
SHARED_BARE = HERE.parent.parent / "shared" / "bench" / "bare_proxy.py"
WARM = 200  # requests before counting starts (imports, caches, connection pools)
CLIENTS = 8  # concurrent requests: a slow (instrumented) server still sees concurrency
LIVE_WORDS, LIVE_GAP_MS, LIVE_CLIENTS, LIVE_WARM = 50, 30, 4, 8
LIVE_MODEL = f"words={LIVE_WORDS}"  # the mock's model syntax: answer with that many words


def _body(stream: bool, model: str | None = None) -> bytes:
    body: dict[str, object] = {
        "model": model or ("bench-model-stream" if stream else "bench-model"),
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Explain in two sentences what a reverse proxy does."},
        ],
        "max_tokens": 128,
    }
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    return json.dumps(body).encode()


async def _drive(body: bytes, url: str, key: str, n: int, clients: int = CLIENTS) -> int:
    """`n` requests over `clients` connections; returns how many did not answer 200."""
    left, bad = [n], [0]
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def client() -> None:
            while left[0] > 0:
                left[0] -= 1
                async with session.post(url, data=body, headers=headers) as r:
                    await r.read()
                    bad[0] += r.status != 200

        await asyncio.gather(*(client() for _ in range(clients)))
    return bad[0]


def _count(
    b: Bench, name: str, argv: list[str], url: str, body: bytes, n: int, live: bool = False
) -> int:
    """Instructions per request of one server, started under callgrind."""
    out = b.tmp / f"callgrind-{name}.out"
    vg = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
    # PYTHONHASHSEED: the same dict layouts, so the same count, on every run.
    env = {"PYTHONHASHSEED": "0"}
    proc = b.procs.start(name, [*vg, *argv], cpus="0" if b.a.pin else None, env=env)
    try:
        wait_ready(name, proc, url, body, b.key, 180)
        warm, clients = (LIVE_WARM, LIVE_CLIENTS) if live else (WARM, CLIENTS)
        bad = asyncio.run(_drive(body, url, b.key, warm, clients))
        subprocess.run(["callgrind_control", "-i", "on", str(proc.pid)], check=True, timeout=60)
        bad += asyncio.run(_drive(body, url, b.key, n, clients))
        subprocess.run(["callgrind_control", "-i", "off", str(proc.pid)], check=True, timeout=60)
        subprocess.run(["callgrind_control", "-d", str(proc.pid)], check=True, timeout=60)
    finally:
        b.procs.stop(proc, grace=10)
    if bad:
        raise Abort(f"{name}: {bad} requests failed under callgrind")
    total = 0
    for dump in out.parent.glob(out.name + "*"):
        for line in dump.read_text(errors="replace").splitlines():
            if line.startswith("totals:"):
                total += int(line.split()[1])
    return total // n


def instructions(b: Bench, n: int) -> None:
    if not (shutil.which("valgrind") and shutil.which("callgrind_control")):
        raise Abort("valgrind is not installed (Debian package valgrind)")
    nginx = b.direct.url.removesuffix("/v1/chat/completions")
    config = b.gw.config.read_text()
    for stream in (False, True):
        endpoint = "stream" if stream else "chat"
        if endpoint not in b.a.instr_kinds:
            continue
        port = free_port()
        bare_url = f"http://127.0.0.1:{port}/v1/chat/completions"
        bare = [sys.executable, str(HERE / "bare_proxy.py"), "--port", str(port)]
        bare += [f"--route=bench-model@{nginx}/v1", f"--route=bench-model-stream@{nginx}/stream/v1"]
        port = free_port()
        gw_config = b.tmp / f"gateway-callgrind-{endpoint}.toml"
        gw_config.write_text(config.replace(f"port = {b.gw.port}", f"port = {port}", 1))
        gw_url = f"http://127.0.0.1:{port}/v1/chat/completions"
        gw = [sys.executable, "-m", "gateway", "serve", "--config", str(gw_config)]
        peers = [("bare", bare, bare_url), ("gateway", gw, gw_url)]
        if "gateway-tracing" in b.a.instr_peers:  # the same with [tracing] on
            peers.append(("gateway-tracing", *_traced_gateway(b, config, endpoint)))
        if SHARED_BARE.exists():  # the team's bare-parse: stdlib json, its own paths
            port = free_port()
            path = "/stream/v1/chat/completions" if stream else "/v1/chat/completions"
            shared = [sys.executable, str(SHARED_BARE), "--port", str(port), "--parse"]
            shared += ["--upstream", nginx]
            peers.insert(1, ("bare-shared", shared, f"http://127.0.0.1:{port}{path}"))
        for peer, argv, url in peers:
            if peer not in b.a.instr_peers:
                continue
            per_request = _count(b, f"{peer}-callgrind-{endpoint}", argv, url, _body(stream), n)
            log(f"instructions {endpoint} {peer}: {per_request:,} per request")
            b.add(test="instructions", kind=endpoint, peer=peer, instructions=per_request, n=n)


def _traced_gateway(b: Bench, config: str, endpoint: str) -> tuple[list[str], str]:
    """The gateway's config with every request traced (sample_ratio 1) to a local sink,
    on a port of its own; the sink runs outside callgrind, on the load generators' CPU."""
    sink_port, port = free_port(), free_port()
    sink = [sys.executable, str(HERE / "otlp_sink.py"), "--port", str(sink_port)]
    b.procs.start(f"otlp-sink-{endpoint}", sink, cpus="1" if b.a.pin else None)
    traced = config.replace(f"port = {b.gw.port}", f"port = {port}", 1)
    traced += f'\n[tracing]\notlp_endpoint = "http://127.0.0.1:{sink_port}/v1/traces"\n'
    path = b.tmp / f"gateway-tracing-callgrind-{endpoint}.toml"
    path.write_text(traced)
    argv = [sys.executable, "-m", "gateway", "serve", "--config", str(path)]
    return argv, f"http://127.0.0.1:{port}/v1/chat/completions"


def live_stream(b: Bench, n: int) -> None:
    """Instructions per live stream (one event per read), bare and gateway."""
    if "live" not in b.a.instr_kinds:
        return
    port = free_port()
    mock = [sys.executable, "-m", "gateway", "mock-provider", "--port", str(port)]
    mock += ["--chunk-delay-ms", str(LIVE_GAP_MS)]
    proc = b.procs.start("mock-live", mock, cpus="1" if b.a.pin else None)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        wait_ready("mock-live", proc, base + "/chat/completions", _body(False), "", 60)
        port = free_port()
        bare = [sys.executable, str(HERE / "bare_proxy.py"), "--port", str(port)]
        bare += [f"--route={LIVE_MODEL}@{base}"]
        bare_url = f"http://127.0.0.1:{port}/v1/chat/completions"
        port = free_port()
        gw_config = b.tmp / "gateway-callgrind-live.toml"
        config = b.gw.config.read_text().replace(f"port = {b.gw.port}", f"port = {port}", 1)
        config += (
            f'\n[providers.live]\ntype = "openai"\nbase_url = "{base}"\napi_key = "sk-live"\n'
            "\n[models.bench-model-live]\n"
            f'targets = [{{ provider = "live", model = "{LIVE_MODEL}" }}]\n'
        )
        gw_config.write_text(config)
        gw = [sys.executable, "-m", "gateway", "serve", "--config", str(gw_config)]
        gw_url = f"http://127.0.0.1:{port}/v1/chat/completions"
        peers = [
            ("bare", bare, bare_url, _body(True, LIVE_MODEL)),
            ("gateway", gw, gw_url, _body(True, "bench-model-live")),
        ]
        for peer, argv, url, body in [p for p in peers if p[0] in b.a.instr_peers]:
            per_stream = _count(b, f"{peer}-callgrind-live", argv, url, body, n, live=True)
            log(f"instructions live stream {peer}: {per_stream:,} per stream")
            b.add(test="instructions", kind="live", peer=peer, instructions=per_stream, n=n)
    finally:
        b.procs.stop(proc, grace=5)
