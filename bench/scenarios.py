"""The measurements. Each one runs the bare baseline and the gateway back to back
(interleaved) so their ratio is taken under the same machine load."""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gwsetup
import loads
from gwsetup import PROMPT, PROMPT_EXTRA, GatewayRun
from procs import Budget, Procs, log, rss_kb, wait_quiet


@dataclass
class Peer:
    """Something that answers chat completions: nginx or a mock directly, bare, gateway."""

    name: str
    url: str
    stream_url: str
    pid: int | None  # the proxy whose CPU and memory are read; None for an upstream


@dataclass
class Bench:
    a: argparse.Namespace
    procs: Procs
    budget: Budget
    tmp: Path
    key: str
    admin_token: str
    direct: Peer
    direct_slow: Peer
    bare: Peer
    gw: GatewayRun
    gw_workers: GatewayRun | None = None
    gw_capture: GatewayRun | None = None
    capture_note: str = ""
    results: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def gateway(self) -> Peer:
        return Peer("gateway", self.gw.chat_url, self.gw.chat_url, self.gw.pid)

    def proxy_pids(self) -> list[int]:
        runs = [self.gw, self.gw_workers, self.gw_capture]
        return [self.bare.pid or 0] + [g.pid for g in runs if g and g.pid]

    def quiet(self) -> None:
        self.procs.check_alive()
        wait_quiet(self.proxy_pids())

    def add(self, **record: Any) -> dict[str, Any]:
        self.results.append(record)
        return record


def _model(stream: bool) -> str:
    return "bench-model-stream" if stream else "bench-model"


def _tp(b: Bench, peer: Peer, model: str, conns: int, stream: bool, **kw: Any) -> dict[str, Any]:
    """Warm-up (discarded), then the measured wrk run."""
    a = b.a
    b.budget.check(a.warmup + a.duration + 15)
    b.quiet()
    url = peer.stream_url if stream else peer.url
    pin = kw.pop("pin", a.pin)
    loads.wrk(b.procs, url, model, b.key, conns, a.warmup, stream, pin=pin, **kw)
    return loads.wrk(
        b.procs, url, model, b.key, conns, a.duration, stream, pin=pin, proxy_pid=peer.pid, **kw
    )


def throughput(b: Bench, rep: int) -> None:
    for stream in (False, True):
        kind = "stream" if stream else "chat"
        for conns in b.a.conns:
            for peer in (b.direct, b.bare, b.gateway):
                d = _tp(b, peer, _model(stream), conns, stream)
                b.add(test="throughput", kind=kind, conns=conns, peer=peer.name, rep=rep, **d)
                log(
                    f"rep{rep} {kind:6} c{conns:<3} {peer.name:8} {d['rps']:9.1f} req/s "
                    f"p99 {d['p99_us'] / 1000:7.2f} ms  errors {d['errors']}  "
                    f"proxy CPU {d.get('proxy_cpu_pct', '-')}%"
                )


def latency(b: Bench, rep: int) -> None:
    a = b.a
    for peer in (b.direct_slow, b.bare, b.gateway):
        b.budget.check(a.lat_duration + 20)
        b.quiet()
        d = loads.latency(
            b.procs, peer.url, "bench-model-slow", b.key, a.lat_rate, a.lat_duration, a.pin
        )
        b.add(test="latency", peer=peer.name, rep=rep, **d)
        log(
            f"rep{rep} latency {a.lat_rate:g}/s {peer.name:8} p50 {d['p50_ms']} ms "
            f"p99 {d['p99_ms']} ms  errors {d['errors']} unfinished {d['unfinished']}"
        )


@dataclass
class Row:
    name: str
    gw: GatewayRun
    model: str
    extra: str = ""
    pin: bool = True
    before: Callable[[], None] | None = None
    after: Callable[[], None] | None = None


def feature_rows(b: Bench) -> list[Row]:
    token, gw = b.admin_token, b.gw
    rows = [
        Row("prompt", gw, f"prompt:{PROMPT}", PROMPT_EXTRA),
        Row(
            "shadow",
            gw,
            f"prompt:{PROMPT}",
            PROMPT_EXTRA,
            before=lambda: gwsetup.set_shadow(gw, token, 0.1),
            after=lambda: gwsetup.set_shadow(gw, token, 0.0),
        ),
    ]
    if b.gw_capture:
        rows.append(Row("capture", b.gw_capture, f"prompt:{PROMPT}", PROMPT_EXTRA))
    if b.gw_workers:
        rows.append(Row("workers", b.gw_workers, "bench-model", pin=False))
    return rows


def features(b: Bench, rep: int) -> None:
    """The plain route is the throughput scenario's chat row at the largest conns."""
    conns = max(b.a.conns)
    for row in feature_rows(b):
        d = _tp(b, b.bare, "bench-model", conns, False)
        b.add(test="feature", row=row.name, peer="bare", rep=rep, **d)
        if row.before:
            row.before()
        shadow0 = gwsetup.metric_total(row.gw, "gateway_shadow_requests_total") or 0.0
        captured0 = gwsetup.captured(b.tmp / "capture")
        peer = Peer(row.name, row.gw.chat_url, row.gw.chat_url, row.gw.pid)
        try:
            d = _tp(b, peer, row.model, conns, False, extra=row.extra, pin=row.pin)
        finally:
            if row.after:
                row.after()
        shadow = gwsetup.metric_total(row.gw, "gateway_shadow_requests_total")
        d["shadow_requests"] = None if shadow is None else shadow - shadow0
        d["captured"] = gwsetup.captured(b.tmp / "capture") - captured0
        b.add(test="feature", row=row.name, peer="gateway", rep=rep, **d)
        log(f"rep{rep} feature {row.name:8} {d['rps']:9.1f} req/s errors {d['errors']}")


def open_streams(b: Bench) -> None:
    for peer in (b.bare, b.gateway):
        assert peer.pid
        b.budget.check(70 + b.a.hold)
        b.quiet()
        d = loads.hold_streams(
            b.procs, peer.url, "bench-model-hold", b.key, b.a.streams, b.a.hold, peer.pid, b.a.pin
        )
        b.add(test="streams", peer=peer.name, **d)
        log(f"{peer.name}: {d['opened']} streams open, RSS {d['rss_open_kb']} kB, {d['errors']}")


def growth(b: Bench) -> None:
    """RSS after a warm-up vs after a bounded run, half non-streaming, half streaming."""
    for peer in (b.gateway, b.bare):
        assert peer.pid
        b.budget.check(b.a.requests / 400)  # a generous bound on the run's length

        errors = 0

        def bounded(total: int, peer: Peer = peer) -> int:
            nonlocal errors
            done = 0
            for stream in (False, True):
                url = peer.stream_url if stream else peer.url
                d = loads.wrk_count(
                    b.procs,
                    url,
                    _model(stream),
                    b.key,
                    total // 2,
                    stream,
                    b.a.pin,
                    max_s=max(60.0, b.budget.left() - 30),
                )
                done += d["requests"]
                errors += d["errors"]
            return done

        b.quiet()
        warm = bounded(b.a.warm_requests)
        b.quiet()
        time.sleep(1)
        rss_warm = rss_kb(peer.pid)
        t0 = time.monotonic()
        done = bounded(b.a.requests)
        seconds = time.monotonic() - t0
        b.quiet()
        time.sleep(1)
        rss_end = rss_kb(peer.pid)
        b.add(
            test="growth",
            peer=peer.name,
            warm_requests=warm,
            requests=done,
            seconds=round(seconds, 1),
            errors=errors,
            rss_warm_kb=rss_warm,
            rss_end_kb=rss_end,
        )
        log(f"{peer.name}: RSS {rss_warm} kB after warm-up, {rss_end} kB after {done} requests")


def _fds(pid: int) -> tuple[int, int]:
    """Open file descriptors of a process, and how many of them are sockets."""
    fds = sockets = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        fds += 1
        try:
            sockets += os.readlink(fd).startswith("socket:")
        except OSError:
            continue
    return fds, sockets


def soak(b: Bench) -> None:
    """Mixed traffic through every feature at once: the prompt canary (90/10) with a 10%
    shadow, 30-chunk streams, and a route whose first target is down (failover, and its
    circuit opening and probing). RSS, descriptors and sockets after a warm-up vs at the
    end of a bounded run."""
    gw = b.gw
    assert gw.pid
    gwsetup.setup_canary(gw, b.admin_token)
    gwsetup.set_shadow(gw, b.admin_token, 0.1)
    mix = (
        (f"prompt:{PROMPT}", False, PROMPT_EXTRA),
        ("bench-model-stream", True, ""),
        ("bench-failover", False, ""),
    )
    errors = 0

    def bounded(total: int) -> int:
        nonlocal errors
        done = 0
        for model, stream, extra in mix:
            d = loads.wrk_count(
                b.procs,
                gw.chat_url,
                model,
                b.key,
                total // len(mix),
                stream,
                b.a.pin,
                max_s=max(60.0, b.budget.left() - 30),
                extra=extra,
            )
            done += d["requests"]
            errors += d["errors"]
        return done

    b.budget.check(b.a.soak_requests / 300)
    b.quiet()
    warm = bounded(b.a.warm_requests)
    b.quiet()
    time.sleep(1)
    rss_warm, (fds_warm, sockets_warm) = rss_kb(gw.pid), _fds(gw.pid)
    t0 = time.monotonic()
    done = bounded(b.a.soak_requests)
    seconds = time.monotonic() - t0
    b.quiet()
    time.sleep(2)  # let idle pooled connections settle
    rss_end, (fds_end, sockets_end) = rss_kb(gw.pid), _fds(gw.pid)
    record = b.add(
        test="soak",
        peer="gateway",
        warm_requests=warm,
        requests=done,
        seconds=round(seconds, 1),
        errors=errors,
        rss_warm_kb=rss_warm,
        rss_end_kb=rss_end,
        fds_warm=fds_warm,
        fds_end=fds_end,
        sockets_warm=sockets_warm,
        sockets_end=sockets_end,
        shadow_requests=gwsetup.metric_total(gw, "gateway_shadow_requests_total"),
        failovers=gwsetup.metric_total(gw, "gateway_failovers_total"),
    )
    gwsetup.reset_routing(gw, b.admin_token)
    log(
        f"soak: {done} requests in {seconds:.0f}s, RSS {rss_warm} -> {rss_end} kB, "
        f"fds {fds_warm} -> {fds_end}, sockets {sockets_warm} -> {sockets_end}, "
        f"{record['shadow_requests']} shadows, {record['failovers']} failovers"
    )
