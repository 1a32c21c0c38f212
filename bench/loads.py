"""The load generators, driven as child processes: wrk (throughput, bounded runs), the
fixed-rate latency client and the stream holder. Load runs on CPU 1 when pinned."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from procs import CLK_TCK, Abort, Procs, cpu_ticks, rss_kb

HERE = Path(__file__).resolve().parent
LOAD_CPU = "1"


def _json_line(tag: str, out: str, what: str) -> dict[str, Any]:
    m = re.search(rf"^{tag} (\{{.*\}})$", out, re.M)
    if not m:
        raise RuntimeError(f"{what} printed no {tag} line: {out[-400:]!r}")
    data: dict[str, Any] = json.loads(m.group(1))
    return data


def _wrk_argv(url: str, conns: int, seconds: float) -> list[str]:
    lua = str(HERE / "chat.lua")
    # wrk takes whole seconds only
    return [
        "wrk",
        "-t1",
        f"-c{conns}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "30s",
        "-s",
        lua,
        url,
    ]


def _wrk_env(
    model: str, key: str, stream: bool, extra: str, max_requests: int = 0
) -> dict[str, str]:
    return {
        "BENCH_MODEL": model,
        "BENCH_API_KEY": key,
        "BENCH_STREAM": "1" if stream else "0",
        "BENCH_EXTRA": extra,
        "BENCH_MAX_REQUESTS": str(max_requests),
    }


def wrk(
    procs: Procs,
    url: str,
    model: str,
    key: str,
    conns: int,
    seconds: float,
    stream: bool = False,
    extra: str = "",
    pin: bool = True,
    proxy_pid: int | None = None,
) -> dict[str, Any]:
    """One wrk run; adds `errors` and, given the proxy's pid, its CPU use in %."""
    c0, t0 = (cpu_ticks(proxy_pid), time.monotonic()) if proxy_pid else (0, 0.0)
    out = procs.run(
        "wrk",
        _wrk_argv(url, conns, seconds),
        timeout=seconds + 60,
        cpus=LOAD_CPU if pin else None,
        env=_wrk_env(model, key, stream, extra),
    )
    d = _json_line("BENCHJSON", out, "wrk")
    d["errors"] = sum(d[k] for k in ("err_connect", "err_read", "err_write", "err_status"))
    d["errors"] += d["err_timeout"]
    if proxy_pid:
        elapsed = time.monotonic() - t0
        d["proxy_cpu_pct"] = round(100 * (cpu_ticks(proxy_pid) - c0) / CLK_TCK / elapsed, 1)
    return d


class _Lines:
    """Lines of a child's stdout, read with a deadline (no thread, no blocking forever)."""

    def __init__(self, p: subprocess.Popen[bytes]) -> None:
        assert p.stdout is not None
        self.fd = p.stdout.fileno()
        self.buf = b""
        self.text = ""

    def next(self, deadline: float) -> str | None:
        """The next line, or None at EOF; raises Abort past the deadline."""
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Abort("a load generator stopped answering")
            ready, _, _ = select.select([self.fd], [], [], min(left, 1.0))
            if ready:
                chunk = os.read(self.fd, 65536)
                if not chunk:
                    rest, self.buf = self.buf.decode(errors="replace"), b""
                    self.text += rest
                    return rest or None
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        text = line.decode(errors="replace")
        self.text += text + "\n"
        return text


def wrk_count(
    procs: Procs,
    url: str,
    model: str,
    key: str,
    n: int,
    stream: bool,
    pin: bool,
    max_s: float,
    extra: str = "",
) -> dict[str, Any]:
    """wrk stopped after `n` responses (64 connections): a bounded run."""
    p = procs.start(
        "wrk-count",
        _wrk_argv(url, 64, max_s),
        cpus=LOAD_CPU if pin else None,
        env=_wrk_env(model, key, stream, extra, max_requests=n),
        stdout_pipe=True,
        announce=False,
    )
    lines = _Lines(p)
    deadline = time.monotonic() + max_s + 30
    try:
        while (line := lines.next(deadline)) is not None:
            if line.strip() == "BENCHSTOP":
                p.send_signal(signal.SIGINT)  # wrk prints its summary and exits
        p.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        procs.stop(p, grace=2)
    d = _json_line("BENCHJSON", lines.text, "wrk")
    d["errors"] = sum(d[k] for k in ("err_connect", "err_read", "err_write", "err_status"))
    return d


def latency(
    procs: Procs, url: str, model: str, key: str, rate: float, seconds: float, pin: bool
) -> dict[str, Any]:
    argv = [
        sys.executable,
        str(HERE / "latency_client.py"),
        "--url",
        url,
        "--model",
        model,
        "--api-key",
        key,
        "--rate",
        f"{rate:g}",
        "--duration",
        f"{seconds:g}",
        "--warmup",
        "1",
        "--grace",
        "10",
    ]
    out = procs.run("latency", argv, timeout=seconds + 45, cpus=LOAD_CPU if pin else None)
    return _json_line("LATJSON", out, "latency client")


def hold_streams(
    procs: Procs,
    url: str,
    model: str,
    key: str,
    streams: int,
    hold_s: float,
    proxy_pid: int,
    pin: bool,
) -> dict[str, Any]:
    """Holds `streams` streams open through the proxy; the proxy tree's peak RSS while
    all of them are open is `rss_open_kb`."""
    argv = [
        sys.executable,
        str(HERE / "stream_holder.py"),
        "--url",
        url,
        "--model",
        model,
        "--api-key",
        key,
        "--streams",
        str(streams),
        "--hold",
        f"{hold_s:g}",
    ]
    rss_before = rss_kb(proxy_pid)
    p = procs.start(
        "holder", argv, cpus=LOAD_CPU if pin else None, stdout_pipe=True, announce=False
    )
    lines = _Lines(p)
    deadline = time.monotonic() + 60 + hold_s
    samples: list[int] = []
    opened: dict[str, Any] = {}
    try:
        while (line := lines.next(deadline)) is not None:
            if line.startswith("OPEN "):
                opened = json.loads(line[5:])
                end = time.monotonic() + max(0.5, hold_s - 0.5)
                while time.monotonic() < end:
                    samples.append(rss_kb(proxy_pid))
                    time.sleep(0.25)
        p.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        procs.stop(p, grace=2)
    d = _json_line("HOLDJSON", lines.text, "stream holder")
    d.update(opened=opened.get("opened", d.get("opened")), rss_before_kb=rss_before)
    d["rss_open_kb"] = max(samples) if samples else None
    return d
