"""Results → one Markdown page: the issue's targets (met / not met), then the detail."""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Iterable
from typing import Any

Records = list[dict[str, Any]]
MB = 1_000_000 / 1024  # kB (KiB, as /proc reports) per MB (10^6 bytes)

FEATURE_LABELS = {
    "plain": "plain route (`bench-model`)",
    "prompt": "+ prompt routing (`prompt:bench-prompt`, canary v1=90 v2=10)",
    "shadow": "+ shadow of v2 at 10%",
    "capture": "+ capture",
    "workers": "2 workers (`server.workers = 2`), plain route, **not pinned**",
}


def med(values: Iterable[float | None]) -> float | None:
    xs = [x for x in values if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x: float | None, digits: int = 0, suffix: str = "") -> str:
    return "-" if x is None else f"{x:,.{digits}f}{suffix}"


def _pick(results: Records, **match: Any) -> Records:
    return [r for r in results if all(r.get(k) == v for k, v in match.items())]


def _ratios(results: Records, x: dict[str, Any], y: dict[str, Any], field: str) -> list[float]:
    """Per-rep ratio x/y of `field` (reps are interleaved, so each pair shares its load)."""
    out = []
    for rx in _pick(results, **x):
        ry = _pick(results, **{**y, "rep": rx["rep"]})
        if ry and ry[0][field]:
            out.append(rx[field] / ry[0][field])
    return out


def _added(results: Records, peer: str) -> tuple[list[float], list[float]]:
    p50, p99 = [], []
    for r in _pick(results, test="latency", peer=peer):
        d = _pick(results, test="latency", peer="direct", rep=r["rep"])
        if d and None not in (r["p50_ms"], r["p99_ms"], d[0]["p50_ms"], d[0]["p99_ms"]):
            p50.append(r["p50_ms"] - d[0]["p50_ms"])
            p99.append(r["p99_ms"] - d[0]["p99_ms"])
    return p50, p99


def _status(value: float | None, ok: bool, extra: str = "") -> str:
    if value is None:
        return "not measured"
    return ("met" if ok else "**not met**") + extra


def targets(a: argparse.Namespace, results: Records) -> list[str]:
    lines = ["| target | goal | measured | status |", "|---|---|---|---|"]
    top = max(a.conns)
    for kind, label in (("chat", "non-streaming"), ("stream", "streaming (30 chunks)")):
        r = med(
            _ratios(
                results,
                _sel("throughput", kind, top, "gateway"),
                _sel("throughput", kind, top, "bare"),
                "rps",
            )
        )
        lines.append(
            f"| throughput, {label}, {top} conns | >= 0.80x bare | {fmt(r, 2, 'x')} | "
            f"{_status(r, r is not None and r >= 0.8)} |"
        )
    p50, p99 = _added(results, "gateway")
    m50, m99 = med(p50), med(p99)
    rate = f"{a.lat_rate:g} req/s"
    b50, b99 = (med(x) for x in _added(results, "bare"))
    for p, value, goal, floor in (("p50", m50, 1.0, b50), ("p99", m99, 3.0, b99)):
        lines.append(
            f"| added latency {p} at {rate} | < {goal:g} ms | {fmt(value, 2, ' ms')} "
            f"(bare: {fmt(floor, 2, ' ms')}) | "
            f"{_status(value, value is not None and value < goal)} |"
        )
    s = _pick(results, test="streams", peer="gateway")
    rss = s[0]["rss_open_kb"] / MB if s and s[0]["rss_open_kb"] else None
    short = s and s[0]["opened"] != a.streams
    extra = f" (only {s[0]['opened']} of {a.streams} open)" if short else ""
    lines.append(
        f"| RSS with {a.streams:,} open streams | < 120 MB | {fmt(rss, 1, ' MB')} | "
        f"{_status(rss, rss is not None and rss < 120 and not short, extra)} |"
    )
    g = _pick(results, test="growth", peer="gateway")
    growth = _growth(g[0]) if g else None
    n = f"{g[0]['requests']:,}" if g else f"{a.requests:,}"
    lines.append(
        f"| RSS growth over {n} requests | < 5 % | {fmt(growth, 1, ' %')} | "
        f"{_status(growth, growth is not None and growth < 5)} |"
    )
    k = _pick(results, test="soak", peer="gateway")
    if k:
        soak_growth = _growth(k[0])
        leaked = k[0]["fds_end"] - k[0]["fds_warm"]
        lines.append(
            f"| soak: RSS after {k[0]['requests']:,} mixed requests vs after warm-up | "
            f"within 10 %, no leaked descriptors | {fmt(soak_growth, 1, ' %')}, "
            f"{leaked:+d} descriptors | "
            f"{_status(soak_growth, soak_growth < 10 and leaked <= 2)} |"
        )
    return lines


def soak_table(results: Records) -> list[str]:
    k = _pick(results, test="soak", peer="gateway")
    if not k:
        return []
    r = k[0]
    return [
        "## Soak (prompt canary + 10% shadow, 30-chunk streams, failover; a third each)",
        "",
        "| requests | seconds | errors | RSS after warm-up MB | RSS at end MB | growth "
        "| descriptors | sockets | shadow requests | failovers |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| {r['requests']:,} | {r['seconds']} | {r['errors']} | {r['rss_warm_kb'] / MB:.1f} "
        f"| {r['rss_end_kb'] / MB:.1f} | {_growth(r):.1f} % | {r['fds_warm']} -> {r['fds_end']} "
        f"| {r['sockets_warm']} -> {r['sockets_end']} | {fmt(r['shadow_requests'])} "
        f"| {fmt(r['failovers'])} |",
        "",
    ]


def _sel(test: str, kind: str, conns: int, peer: str) -> dict[str, Any]:
    return {"test": test, "kind": kind, "conns": conns, "peer": peer}


def _growth(r: dict[str, Any]) -> float:
    end, warm = float(r["rss_end_kb"]), float(r["rss_warm_kb"])
    return 100.0 * (end - warm) / warm


def throughput_table(a: argparse.Namespace, results: Records) -> list[str]:
    lines = [
        "| endpoint | conns | nginx direct | bare | gateway | gateway/bare | per rep | "
        "gateway p99 ms | CPU % bare / gateway | errors |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for kind in ("chat", "stream"):
        for c in a.conns:
            rps = {
                p: med(r["rps"] for r in _pick(results, **_sel("throughput", kind, c, p)))
                for p in ("direct", "bare", "gateway")
            }
            ratios = _ratios(
                results,
                _sel("throughput", kind, c, "gateway"),
                _sel("throughput", kind, c, "bare"),
                "rps",
            )
            gw = _pick(results, **_sel("throughput", kind, c, "gateway"))
            bare = _pick(results, **_sel("throughput", kind, c, "bare"))
            errors = sum(r["errors"] for r in _pick(results, test="throughput", kind=kind, conns=c))
            lines.append(
                f"| {kind} | {c} | {fmt(rps['direct'])} | {fmt(rps['bare'])} | "
                f"{fmt(rps['gateway'])} | {fmt(med(ratios), 2)} | "
                f"{' / '.join(f'{x:.2f}' for x in ratios) or '-'} | "
                f"{fmt(med(r['p99_us'] / 1000 for r in gw), 2)} | "
                f"{fmt(med(r.get('proxy_cpu_pct') for r in bare))} / "
                f"{fmt(med(r.get('proxy_cpu_pct') for r in gw))} | {errors} |"
            )
    return lines


def latency_table(results: Records) -> list[str]:
    lines = [
        "| peer | p50 ms | p99 ms | added p50 ms | added p99 ms | errors + unfinished "
        "| client's worst send lag ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for peer in ("direct", "bare", "gateway"):
        rs = _pick(results, test="latency", peer=peer)
        if not rs:
            continue
        p50, p99 = _added(results, peer) if peer != "direct" else ([], [])
        bad = sum(r["errors"] + r["unfinished"] for r in rs)
        lines.append(
            f"| {peer} | {fmt(med(r['p50_ms'] for r in rs), 2)} | "
            f"{fmt(med(r['p99_ms'] for r in rs), 2)} | {fmt(med(p50), 2)} | "
            f"{fmt(med(p99), 2)} | {bad} | {fmt(max(r['max_send_lag_ms'] for r in rs), 1)} |"
        )
    return lines


def feature_table(a: argparse.Namespace, results: Records, meta: dict[str, str]) -> list[str]:
    top = max(a.conns)
    lines = [
        "| feature | bare req/s | gateway req/s | gateway/bare | note |",
        "|---|---|---|---|---|",
    ]
    plain = _ratios(
        results,
        _sel("throughput", "chat", top, "gateway"),
        _sel("throughput", "chat", top, "bare"),
        "rps",
    )
    rows: list[tuple[str, list[float], Records, Records, str]] = [
        (
            "plain",
            plain,
            _pick(results, **_sel("throughput", "chat", top, "bare")),
            _pick(results, **_sel("throughput", "chat", top, "gateway")),
            "the throughput run above",
        )
    ]
    for name in ("prompt", "shadow", "capture", "workers"):
        gw = _pick(results, test="feature", row=name, peer="gateway")
        bare = _pick(results, test="feature", row=name, peer="bare")
        ratios = _ratios(
            results,
            {"test": "feature", "row": name, "peer": "gateway"},
            {"test": "feature", "row": name, "peer": "bare"},
            "rps",
        )
        note = ""
        if name == "shadow" and gw:
            sent = sum(r.get("shadow_requests") or 0 for r in gw)
            note = f"{sent:,.0f} shadow requests" if sent else "**shadow not implemented**"
        if name == "capture":
            n = sum(r.get("captured") or 0 for r in gw)
            note = meta.get("capture", "not measured") if not gw else f"{n:,} records captured"
        if name == "workers" and gw:
            note = "gateway on both CPUs (shares CPU 1 with nginx and wrk); bare on CPU 0"
        errors = sum(r["errors"] for r in gw)
        if errors:
            note += f"; {errors} errors"
        rows.append((name, ratios, bare, gw, note))
    for name, ratios, bare, gw, note in rows:
        lines.append(
            f"| {FEATURE_LABELS[name]} | {fmt(med(r['rps'] for r in bare))} | "
            f"{fmt(med(r['rps'] for r in gw))} | {fmt(med(ratios), 2)} | {note} |"
        )
    return lines


def memory_table(a: argparse.Namespace, results: Records) -> list[str]:
    lines = [
        "| peer | RSS before MB | RSS, streams open MB | streams open | errors "
        "| RSS after warm-up MB | RSS at end MB | growth | requests |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for peer in ("bare", "gateway"):
        s = _pick(results, test="streams", peer=peer)
        g = _pick(results, test="growth", peer=peer)
        if not s and not g:
            continue
        sr = s[0] if s else {}
        gr = g[0] if g else {}
        lines.append(
            f"| {peer} | {fmt(_mb(sr.get('rss_before_kb')), 1)} | "
            f"{fmt(_mb(sr.get('rss_open_kb')), 1)} | {sr.get('opened', '-')} | "
            f"{sr.get('errors') or '-'} | {fmt(_mb(gr.get('rss_warm_kb')), 1)} | "
            f"{fmt(_mb(gr.get('rss_end_kb')), 1)} | "
            f"{fmt(_growth(gr), 1, ' %') if gr else '-'} | "
            f"{fmt(gr.get('requests'))} |"
        )
    return lines


def _mb(kb: int | None) -> float | None:
    return None if not kb else kb / MB


def instructions_table(results: Records) -> list[str]:
    rows = _pick(results, test="instructions")
    if not rows:
        return []
    by = {(r["kind"], r["peer"]): r["instructions"] for r in rows}
    out = [
        "## CPU instructions per request (valgrind callgrind, user space)",
        "",
        f"The same count on every run of the same code ({rows[0]['n']:,} requests each, "
        "after 200 to warm up): the figure to compare two versions of the gateway by, "
        "where requests/s drift between runs.",
        "",
        "bare: bench/bare_proxy.py (orjson); bare-shared: ../shared/bench/bare_proxy.py "
        "--parse (stdlib json), the team's reference, when present.",
        "",
        "| endpoint | bare | bare-shared | gateway | bare/gateway | bare-shared/gateway |",
        "|---|---|---|---|---|---|",
    ]
    for kind in ("chat", "stream", "live"):
        bare, shared, gw = (by.get((kind, p)) for p in ("bare", "bare-shared", "gateway"))
        if bare is None and gw is None:
            continue
        r1 = bare / gw if bare and gw else None
        r2 = shared / gw if shared and gw else None
        name = "live stream (per stream)" if kind == "live" else kind
        out.append(
            f"| {name} | {fmt(bare)} | {fmt(shared)} | {fmt(gw)} | {fmt(r1, 2, 'x')} "
            f"| {fmt(r2, 2, 'x')} |"
        )
    live = [r for r in rows if r["kind"] == "live"]
    if live:
        out += [
            "",
            f"live stream: {live[0]['n']} streams of 50 words that a mock provider writes one "
            "event at a time, 30 ms apart, so that each read holds one event, as from a real "
            "model (the fixed stream above reaches the proxy in one read). The gateway's "
            "figure also holds its share of the work it does when idle (timers, metric "
            "flushes, config polling) over the 1.6 s each stream lasts.",
        ]
    return [*out, ""]


def page(a: argparse.Namespace, results: Records, meta: dict[str, str]) -> str:
    reps = f"median of {a.reps} interleaved rep{'s' if a.reps > 1 else ''}"
    out = [
        "# Gateway benchmark (`make bench`)",
        "",
        f"{meta.get('date', '')} · {meta.get('machine', '')} · {reps}"
        + (" · **quick run**" if a.quick else ""),
        "",
        "## Targets",
        "",
        *targets(a, results),
        "",
        f"## Throughput (wrk -t1, {a.duration:g} s after {a.warmup:g} s warm-up; req/s)",
        "",
        *throughput_table(a, results),
        "",
        f"## Added latency over a {a.slow_ms} ms upstream at a fixed {a.lat_rate:g} req/s "
        f"({a.lat_duration:g} s per run)",
        "",
        "added = peer percentile - direct percentile in the same rep; median over reps.",
        "",
        *latency_table(results),
        "",
        f"## Features one by one (non-streaming, {max(a.conns)} conns)",
        "",
        *feature_table(a, results, meta),
        "",
        "## Memory (RSS of the whole process tree)",
        "",
        f"{a.streams:,} streams held open at once on a slow-chunk upstream; growth: RSS "
        f"after {a.warm_requests:,} warm-up requests vs after {a.requests:,} more "
        "(half non-streaming, half streaming).",
        "",
        *memory_table(a, results),
        "",
        *soak_table(results),
        *instructions_table(results),
        "## Setup",
        "",
        *(f"- {k}: {v}" for k, v in meta.items() if k not in ("date", "machine")),
        "",
    ]
    return "\n".join(out)
