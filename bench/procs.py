"""Processes the benchmark starts, and what it reads about them from /proc.

Every process is started in its own session (process group id == pid), so stopping
it by group also stops whatever it forked (the gateway's workers, nginx's worker).
`Procs.stop_all` runs on every exit path of `run.py`.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

CLK_TCK = os.sysconf("SC_CLK_TCK")


class Abort(Exception):
    """Stop the run: a signal, the time budget, or a process that died."""


def log(*parts: object) -> None:
    print(time.strftime("%H:%M:%S"), *parts, file=sys.stderr, flush=True)


class Budget:
    def __init__(self, minutes: float) -> None:
        self.deadline = time.monotonic() + minutes * 60
        self.minutes = minutes

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def check(self, need_s: float) -> None:
        if self.left() < need_s:
            raise Abort(f"--max-minutes {self.minutes:g} reached (partial results kept)")


class Procs:
    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.items: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._logs: list[IO[bytes]] = []

    def start(
        self,
        name: str,
        argv: Sequence[str],
        cpus: str | None = None,
        env: Mapping[str, str] | None = None,
        stdout_pipe: bool = False,
        announce: bool = True,
    ) -> subprocess.Popen[bytes]:
        """Starts `argv` in its own session, pinned to `cpus` (taskset list) if given."""
        full = ["taskset", "-c", cpus, *argv] if cpus else list(argv)
        logf = open(self.logdir / f"{name}.log", "ab")  # noqa: SIM115 (closed in stop_all)
        self._logs.append(logf)
        p = subprocess.Popen(
            full,
            stdout=subprocess.PIPE if stdout_pipe else logf,
            stderr=logf,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        self.items.append((name, p))
        if announce:
            log(f"started {name} pid={p.pid}: {shlex.join(full)[:160]}")
        return p

    def run(
        self,
        name: str,
        argv: Sequence[str],
        timeout: float,
        cpus: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> str:
        """Runs a bounded tool (wrk, a client) to its end; returns its stdout."""
        p = self.start(name, argv, cpus=cpus, env=env, stdout_pipe=True, announce=False)
        try:
            out, _ = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop(p, grace=2)
            raise Abort(f"{name} did not finish within {timeout:.0f}s") from None
        except BaseException:  # a signal (Abort) while it runs: stop it too
            self.stop(p, grace=2)
            raise
        self.forget(p)
        return out.decode(errors="replace")

    def check_alive(self) -> None:
        """Raises Abort when a long-lived process (a proxy, an upstream) has died."""
        dead = [f"{n} (exit {p.returncode})" for n, p in self.items if p.poll() is not None]
        if dead:
            raise Abort(f"died during the run: {', '.join(dead)}; see its log")

    def forget(self, p: subprocess.Popen[bytes]) -> None:
        self.items = [(n, q) for n, q in self.items if q is not p]

    def stop(self, p: subprocess.Popen[bytes], grace: float = 10.0) -> None:
        _signal_group(p.pid, signal.SIGTERM)
        try:
            p.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _signal_group(p.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=5)
        _signal_group(p.pid, signal.SIGKILL)  # members that outlived their leader
        self.forget(p)

    def stop_all(self) -> None:
        for _, p in reversed(self.items):
            _signal_group(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for name, p in reversed(self.items):
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log(f"{name} pid={p.pid} ignored SIGTERM: SIGKILL")
            _signal_group(p.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=5)
        self.items = []
        for f in self._logs:
            f.close()
        self._logs = []


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def proc_tree(pid: int) -> list[int]:
    """`pid` and all its descendants."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        x = todo.pop()
        out.append(x)
        todo.extend(children.get(x, []))
    return out


def rss_kb(pid: int) -> int:
    """Resident memory of the whole process tree (taskset has exec'd, so pid is the app)."""
    total = 0
    for x in proc_tree(pid):
        with contextlib.suppress(OSError, ValueError, IndexError):
            for line in Path(f"/proc/{x}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def cpu_ticks(pid: int) -> int:
    total = 0
    for x in proc_tree(pid):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{x}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
    return total


def wait_quiet(pids: Sequence[int], max_wait: float = 60.0, window: float = 0.5) -> float:
    """Waits until no proxy tree uses more than 5% CPU (e.g. still draining a backlog
    left by the previous run), so it cannot steal CPU from the next measurement."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < max_wait:
        before = {p: cpu_ticks(p) for p in pids}
        time.sleep(window)
        if all((cpu_ticks(p) - before[p]) / CLK_TCK / window < 0.05 for p in pids):
            return time.monotonic() - t0
    log(f"proxies still busy after {max_wait:.0f}s; going on")
    return max_wait


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def http(
    method: str,
    url: str,
    body: bytes | None = None,
    token: str = "",
    timeout: float = 30.0,
) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status: int = r.status
            return status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_ready(
    name: str, proc: subprocess.Popen[bytes], url: str, body: bytes, token: str, timeout: float
) -> float:
    """Polls with a real request until it answers 200; the process must stay alive."""
    t0 = time.monotonic()
    last = ""
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise Abort(f"{name} exited with code {proc.returncode} while starting (see its log)")
        try:
            status, answer = http("POST", url, body, token, timeout=5)
            if status == 200:
                return time.monotonic() - t0
            last = f"HTTP {status}: {answer[:200]!r}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.3)
    raise Abort(f"{name} not ready after {timeout:.0f}s (last: {last})")
