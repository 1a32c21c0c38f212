"""`make bench`: the gateway against a bare aiohttp pass-through, on one machine, in one run.

Starts, all on 127.0.0.1 (ports picked free at start), each in its own process group:
  nginx          the fixed upstream: one chat completion, one 30-chunk SSE stream
  mock-slow      `gateway mock-provider --latency-ms 50`         (latency runs)
  mock-hold      `gateway mock-provider --chunk-delay-ms 1000`   (open-streams memory)
  bare           bench/bare_proxy.py, the bare-parse ceiling
  gateway        `gateway serve` on a generated config (key, metrics, cost, access log,
                 a prompt with a 90/10 canary); also a 2-worker one and, when the
                 config accepts `[capture]`, a capturing one
Proxies run on CPU 0, upstreams and load generators on CPU 1 (--no-pin: none).
Scenarios (each repeated --reps times, bare and gateway interleaved; medians):
  throughput     wrk at --conns, non-streaming and streaming (30 chunks, include_usage)
  latency        fixed --lat-rate req/s over the 50 ms upstream: gateway - direct
  features       + prompt routing, + shadow 10%, + capture, 2 workers
  memory         RSS with --streams open streams; RSS growth over --requests requests
  soak           --soak-requests mixed requests (prompt canary + 10% shadow, streams,
                 failover): RSS, descriptors and sockets after warm-up vs at the end
  instructions   CPU instructions per request of bare and gateway under valgrind's
                 callgrind (--instr-requests each): the same on every run
Writes bench/results/latest.md (and prints it). Every process is stopped on exit,
error, timeout (--max-minutes) or Ctrl-C.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from types import FrameType

import gwsetup  # bench/ is sys.path[0]: run.py is started as a script
import instructions
import report
import scenarios
import upstream
from procs import Abort, Budget, Procs, free_port, http, log, wait_ready
from scenarios import Bench, Peer

HERE = Path(__file__).resolve().parent

QUICK = {"reps": 1, "warmup": 1, "duration": 3, "lat_duration": 4, "hold": 2.0}
QUICK |= {"requests": 10_000, "warm_requests": 1_000, "soak_requests": 20_000}
QUICK |= {"instr_requests": 300, "live_streams": 16}
FULL = {"reps": 3, "warmup": 3, "duration": 10, "lat_duration": 10, "hold": 3.0}
# The warm-up fills the bounded in-memory state (the feedback index keeps 20,000).
FULL |= {"requests": 100_000, "warm_requests": 25_000, "soak_requests": 200_000}
FULL |= {"instr_requests": 1_000, "live_streams": 40}
SCENARIOS = ("throughput", "latency", "features", "memory", "soak", "instructions")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="1 rep, short runs (about 3 minutes)")
    ap.add_argument("--reps", type=int, help="interleaved repetitions (3; quick 1)")
    ap.add_argument("--duration", type=float, help="measured seconds per wrk run (10; quick 3)")
    ap.add_argument("--warmup", type=float, help="warm-up seconds before each wrk run (3; 1)")
    ap.add_argument("--conns", default="16,64", help="wrk connection counts")
    ap.add_argument("--lat-rate", type=float, default=200.0, help="fixed rate, req/s")
    ap.add_argument("--lat-duration", type=float, help="seconds per latency run (10; 4)")
    ap.add_argument("--slow-ms", type=int, default=50, help="latency upstream delay")
    ap.add_argument("--streams", type=int, default=1000, help="streams held open at once")
    ap.add_argument("--hold", type=float, help="seconds the streams stay open (3; 2)")
    ap.add_argument("--requests", type=int, help="bounded run for RSS growth (100000; 10000)")
    ap.add_argument("--warm-requests", type=int, help="warm-up before it (25000; 1000)")
    ap.add_argument("--soak-requests", type=int, help="mixed soak run (200000; 20000)")
    ap.add_argument("--instr-requests", type=int, help="requests counted by callgrind (1000)")
    ap.add_argument("--live-streams", type=int, help="live streams counted by callgrind (40)")
    ap.add_argument("--only", default=",".join(SCENARIOS), help="comma list of scenarios")
    ap.add_argument(
        "--instr-peers",
        default="bare,bare-shared,gateway",
        help="instructions: whose to count (comma list; `gateway` alone while tuning; "
        "`gateway-tracing`: the gateway with [tracing] on, exporting to a local sink)",
    )
    ap.add_argument(
        "--instr-kinds", default="chat,stream,live", help="instructions: which kinds to count"
    )
    ap.add_argument("--no-pin", dest="pin", action="store_false", help="no CPU pinning")
    ap.add_argument("--max-minutes", type=float, default=30.0, help="bound on the whole run")
    ap.add_argument("--out", default=str(HERE / "results" / "latest.md"))
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (configs, logs)")
    a = ap.parse_args(argv)
    for k, v in (QUICK if a.quick else FULL).items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    a.conns = [int(c) for c in a.conns.split(",") if c]
    a.only = [s for s in a.only.split(",") if s]
    a.instr_peers = {s for s in a.instr_peers.split(",") if s}
    a.instr_kinds = {s for s in a.instr_kinds.split(",") if s}
    unknown = set(a.only) - set(SCENARIOS)
    if unknown:
        ap.error(f"unknown scenarios {sorted(unknown)}; choose from {SCENARIOS}")
    if a.pin and (os.cpu_count() or 1) < 2:
        a.pin = False
    return a


def _sh(cmd: list[str]) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return "?"
    text = (done.stdout + done.stderr).strip()
    return text.splitlines()[0] if text else "?"


def _loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def machine_meta(a: argparse.Namespace) -> dict[str, str]:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break

    def v(pkg: str) -> str:
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return "-"

    pin = "gateway and bare on CPU 0; nginx, mock providers, wrk and clients on CPU 1"
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "machine": f"{cpu}, {os.cpu_count()} CPUs, Linux {platform.release()}",
        "versions": f"llm-canary-gateway {v('llm-canary-gateway')}, Python {platform.python_version()}, "
        f"aiohttp {v('aiohttp')}, uvloop {v('uvloop')}, orjson {v('orjson')}, "
        f"prometheus-client {v('prometheus-client')}",
        "tools": f"{_sh(['nginx', '-v'])}; {_sh(['wrk', '-v'])}",
        "pinning": pin if a.pin else "none (--no-pin)",
        "baseline": "bench/bare_proxy.py: aiohttp pass-through that json-decodes the request "
        "and the non-streaming response (orjson), no auth/metrics/logging",
    }


def start_all(a: argparse.Namespace, procs: Procs, budget: Budget, tmp: Path) -> Bench:
    proxy_cpu, load_cpu = ("0", "1") if a.pin else (None, None)
    ports = {n: free_port() for n in ("nginx", "slow", "hold", "bare", "gw", "gw2", "gwc")}
    nginx_dir = tmp / "nginx"
    conf = upstream.write_nginx(nginx_dir, ports["nginx"])
    nginx_bin = shutil.which("nginx") or "/usr/sbin/nginx"
    argv = [nginx_bin, "-p", f"{nginx_dir}/", "-e", f"{nginx_dir}/error.log", "-c", str(conf)]
    nginx = procs.start("nginx", argv, cpus=load_cpu)
    py = sys.executable
    mock = [py, "-m", "gateway", "mock-provider", "--port"]
    slow = procs.start(
        "mock-slow", [*mock, str(ports["slow"]), "--latency-ms", str(a.slow_ms)], cpus=load_cpu
    )
    hold = procs.start(
        "mock-hold", [*mock, str(ports["hold"]), "--chunk-delay-ms", "1000"], cpus=load_cpu
    )
    base = {n: f"http://127.0.0.1:{ports[n]}" for n in ("nginx", "slow", "hold")}
    routes = {
        "bench-model": base["nginx"] + "/v1",
        "bench-model-stream": base["nginx"] + "/stream/v1",
        "bench-model-slow": base["slow"] + "/v1",
        "bench-model-hold": base["hold"] + "/v1",
    }
    bare_argv = [py, str(HERE / "bare_proxy.py"), "--port", str(ports["bare"])]
    bare_argv += [f"--route={m}@{u}" for m, u in routes.items()]
    bare = procs.start("bare", bare_argv, cpus=proxy_cpu)

    key, admin = "sk-bench-" + secrets.token_hex(12), secrets.token_hex(16)
    values = {
        "ADMIN_TOKEN": admin,
        "KEY_SHA256": hashlib.sha256(key.encode()).hexdigest(),
        "FIXED_BASE": base["nginx"],
        "SLOW_BASE": base["slow"],
        "HOLD_BASE": base["hold"],
        "TMP": str(tmp),
    }

    def gateway(
        name: str, port: int, workers: int = 1, capture: bool = False
    ) -> gwsetup.GatewayRun:
        path = gwsetup.render({**values, "PORT": str(port)}, tmp / f"{name}.toml", workers, capture)
        return gwsetup.GatewayRun(name, port, path)

    gw = gateway("gateway", ports["gw"])
    runs = [(gw, proxy_cpu)]
    gw2 = gwc = None
    message = ""
    if "features" in a.only:
        gw2 = gateway("gateway-2workers", ports["gw2"], workers=2)
        runs.append((gw2, None))  # the workers row: not pinned
        (tmp / "capture").mkdir()
        gwc = gateway("gateway-capture", ports["gwc"], capture=True)
        ok, message = gwsetup.check_config(gwc.config)
        if ok:
            runs.append((gwc, proxy_cpu))
            message = "configs/capture.toml accepted by check-config"
        else:
            log(f"capture config rejected: {message}")
            where = message.replace(f"{tmp}/", "")
            message = f"**not implemented** (check-config: {where})"
            gwc = None
    for run, cpus in runs:
        run.pid = procs.start(
            run.name, [py, "-m", "gateway", "serve", "--config", str(run.config)], cpus=cpus
        ).pid

    chat = json.dumps({"model": "bench-model", "messages": [{"role": "user", "content": "hi"}]})
    body = chat.encode()
    nginx_url = base["nginx"] + "/v1/chat/completions"
    wait_ready("nginx", nginx, nginx_url, body, "", 20)
    wait_ready("mock-slow", slow, base["slow"] + "/v1/chat/completions", body, "", 60)
    wait_ready("mock-hold", hold, base["hold"] + "/v1/chat/completions", body, "", 60)
    bare_url = f"http://127.0.0.1:{ports['bare']}/v1/chat/completions"
    wait_ready("bare", bare, bare_url, body, "", 30)
    by_pid = {p.pid: p for _, p in procs.items}
    for run, _ in runs:
        t = wait_ready(run.name, by_pid[run.pid], run.chat_url, body, key, 60)
        log(f"{run.name} ready after {t:.1f}s")
    b = Bench(
        a,
        procs,
        budget,
        tmp,
        key,
        admin,
        direct=Peer("direct", nginx_url, base["nginx"] + "/stream/v1/chat/completions", None),
        direct_slow=Peer("direct", base["slow"] + "/v1/chat/completions", "", None),
        bare=Peer("bare", bare_url, bare_url, bare.pid),
        gw=gw,
        gw_workers=gw2,
        gw_capture=gwc,
    )
    if message:
        b.meta["capture"] = message
    return b


def functional_check(b: Bench) -> str:
    """The answers must arrive whole through both proxies before anything is timed."""
    notes = []
    for peer in (b.bare, b.gateway):
        problems: list[str] = []
        for stream in (False, True):
            body: dict[str, object] = {
                "model": "bench-model-stream" if stream else "bench-model",
                "messages": [{"role": "user", "content": "hi"}],
            }
            if stream:
                body |= {"stream": True, "stream_options": {"include_usage": True}}
            status, answer = http("POST", peer.url, json.dumps(body).encode(), b.key)
            if status != 200:
                problems.append(f"{'stream' if stream else 'chat'} HTTP {status}")
            elif stream:
                found, chunks = upstream.check_stream(answer)
                problems += found + (
                    [f"{chunks} chunks"] if chunks != upstream.STREAM_CHUNKS else []
                )
            else:
                problems += upstream.check_completion(answer)
        notes.append(f"{peer.name} {'ok' if not problems else '; '.join(problems)}")
    return ", ".join(notes)


def main() -> int:
    a = parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    tmp = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    tmp.chmod(0o755)  # nginx's worker runs as an unprivileged user when started by root
    (tmp / "logs").mkdir()
    budget = Budget(a.max_minutes)
    procs = Procs(tmp / "logs")

    def on_signal(signum: int, frame: FrameType | None) -> None:
        raise Abort(f"signal {signal.Signals(signum).name}")

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGALRM):
        signal.signal(sig, on_signal)
    signal.alarm(int(a.max_minutes * 60) + 90)  # a hard stop even if a step hangs
    b: Bench | None = None
    rc = 0
    meta = machine_meta(a)
    load0 = _loadavg()
    try:
        b = start_all(a, procs, budget, tmp)
        b.meta = {**meta, **b.meta}
        b.meta["functional check"] = functional_check(b)
        log("functional check:", b.meta["functional check"])
        if "features" in a.only:
            gwsetup.setup_canary(b.gw, b.admin_token)
            if b.gw_capture:
                gwsetup.setup_canary(b.gw_capture, b.admin_token)
                gwsetup.set_shadow(b.gw_capture, b.admin_token, 0.1)
        for rep in range(a.reps):
            if "throughput" in a.only:
                scenarios.throughput(b, rep)
            if "latency" in a.only:
                scenarios.latency(b, rep)
            if "features" in a.only:
                scenarios.features(b, rep)
        if "memory" in a.only:
            if "features" in a.only:
                gwsetup.reset_routing(b.gw, b.admin_token)
            scenarios.growth(b)
        if "soak" in a.only:
            scenarios.soak(b)
        if "memory" in a.only:
            # Last: 1,000 open streams raise RSS's high-water mark, which would hide
            # any growth measured after them.
            scenarios.open_streams(b)
        if "instructions" in a.only:
            instructions.instructions(b, a.instr_requests)
            instructions.live_stream(b, a.live_streams)
    except Abort as exc:
        log(f"ABORT: {exc}")
        rc = 2
    except Exception as exc:  # report what was measured, then fail
        log(f"ERROR: {exc!r}")
        rc = 1
    finally:
        signal.alarm(0)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)  # let the cleanup finish
        procs.stop_all()
    results = b.results if b else []
    meta = b.meta if b else meta
    meta["run"] = (
        f"{'finished' if rc == 0 else 'stopped early (see log)'} in "
        f"{(a.max_minutes * 60 - budget.left()) / 60:.1f} min; temp dir {tmp}"
        + ("" if a.keep or rc else " (removed)")
    )
    meta["load average"] = f"{load0} at start, {_loadavg()} at end (other jobs on the machine)"
    text = report.page(a, results, meta)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    out.with_suffix(".jsonl").write_text("".join(json.dumps(r) + "\n" for r in results))
    print(text)
    log(f"wrote {out} and {out.with_suffix('.jsonl')}")
    if rc == 0 and not a.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
