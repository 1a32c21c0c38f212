"""The replay report: a self-contained HTML page (inline CSS and SVG charts, no external
assets, the result embedded as JSON in `<script id="replay-data">`) and a Markdown
summary for pull requests. Both render a replay result as the gateway keeps it
(`GET /admin/prompts/{name}/replays/{id}`, gateway.evaluation.replay_runner)."""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

REFERENCE_COLOUR, CANDIDATE_COLOUR = "#6c757d", "#d9480f"
Row = tuple[str, str, str, str]
NONE = "-"  # no value


def _ms(value: float | None) -> str:
    return NONE if value is None else f"{value:,.0f} ms" if value >= 10 else f"{value:.1f} ms"


def _usd(value: float | None) -> str:
    return NONE if value is None else f"${value:.6f}"


def _pct(value: float | None) -> str:
    return NONE if value is None else f"{value * 100:.1f}%"


def _num(value: float | None) -> str:
    return NONE if value is None else f"{value:,.1f}"


def _change(reference: float | None, candidate: float | None) -> str:
    if reference is None or candidate is None:
        return ""
    if reference == 0:
        return "" if candidate == 0 else "new"
    ratio = candidate / reference
    return f"{ratio:.1f}x" if ratio >= 2 else f"{(ratio - 1) * 100:+.1f}%"


def _points(reference: float | None, candidate: float | None) -> str:
    if reference is None or candidate is None:
        return ""
    return f"{(candidate - reference) * 100:+.1f} pp"


def labels(data: Mapping[str, Any]) -> tuple[str, str]:
    reference = f"baseline {data['baseline']}" if data.get("baseline") else "production"
    return reference, f"candidate {data['candidate']}"


def summary_rows(data: Mapping[str, Any]) -> list[Row]:
    numbers = data["numbers"]
    ref, cand, agree = numbers["reference"], numbers["candidate"], numbers["agreement"]
    rows: list[Row] = [
        ("requests", str(ref["requests"]), str(cand["requests"]), ""),
        (
            "error rate",
            _pct(ref["error_rate"]),
            _pct(cand["error_rate"]),
            _points(ref["error_rate"], cand["error_rate"]),
        ),
    ]
    for what, key in (("latency", "latency_ms"), ("TTFT", "ttft_ms")):
        for q in ("p50", "p95", "p99"):
            a, b = ref[key][q], cand[key][q]
            if a is not None or b is not None:
                rows.append((f"{what} {q}", _ms(a), _ms(b), _change(a, b)))
    for label, key, show in (
        ("input tokens / request", "input_tokens", _num),
        ("output tokens / request", "output_tokens", _num),
        ("cost / request", "cost_usd", _usd),
    ):
        rows.append((label, show(ref[key]), show(cand[key]), _change(ref[key], cand[key])))
    rows.append(("cost, total", _usd(ref["cost_usd_total"]), _usd(cand["cost_usd_total"]), ""))
    rows.append(("exact agreement", "", _pct(agree["exact_rate"]), f"of {agree['compared']}"))
    similarity = agree["similarity_mean"]
    rows.append(("mean similarity", "", NONE if similarity is None else f"{similarity:.3f}", ""))
    return rows


def _title(data: Mapping[str, Any]) -> str:
    reference, candidate = labels(data)
    return f"Replay of prompt {data['prompt']}: {candidate} against {reference}"


def _scope(data: Mapping[str, Any]) -> str:
    window = data["window"]
    since = f" from the last {window['since']}" if window.get("since") else ""
    route = f" on route {data['route']}" if data.get("route") else ""
    count = data["counts"]["requests"]
    return (
        f"{count} captured requests{since}{route}; replay {data['id']} run by {data['by']}, "
        f"finished {data['finished_at']}"
    )


def verdict_line(data: Mapping[str, Any]) -> str:
    """`verdict: fail (p95_latency_ratio 2.31 (limit <= 1.5))`, `verdict: pass (3 checks)`."""
    checks = data["verdict"]["checks"]
    if not checks:
        return "verdict: pass (no fail_on thresholds given)"
    if data["verdict"]["result"] == "pass":
        return f"verdict: pass ({len(checks)} checks)"
    failed = []
    for check in (c for c in checks if not c["passed"]):
        value, limit = _shown(check)
        note = f": {check['note']}" if check.get("note") else ""
        failed.append(f"{check['name']} {value} (limit {limit}){note}")
    return "verdict: fail (" + "; ".join(failed) + ")"


def _shown(check: Mapping[str, Any]) -> tuple[str, str]:
    """A threshold's value measured and its limit, as text."""
    value = NONE if check["value"] is None else f"{check['value']:.4g}"
    relation = ">=" if check["name"] == "min_similarity" else "<="
    return value, f"{relation} {check['limit']:g}"


def check_rows(data: Mapping[str, Any]) -> list[Row]:
    """Each threshold: its name, the value measured, the limit, pass or FAIL (and why)."""
    rows = []
    for check in data["verdict"]["checks"]:
        outcome = "pass" if check["passed"] else "FAIL"
        if check.get("note"):
            outcome += f" ({check['note']})"
        rows.append((check["name"], *_shown(check), outcome))
    return rows


def render_markdown(data: Mapping[str, Any]) -> str:
    reference, candidate = labels(data)
    lines = [
        f"### {_title(data)}",
        "",
        _scope(data) + ".",
        "",
        f"**{verdict_line(data)}**",
        "",
        f"| | {reference} | {candidate} | change |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in summary_rows(data)]
    if data["verdict"]["checks"]:
        lines += ["", "#### Thresholds", "", "| threshold | value | limit | result |"]
        lines += ["|---|---:|---:|---|"]
        lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in check_rows(data)]
    if data["differences"]:
        lines += ["", "#### Cases that differ most", ""]
        lines += ["| request | similarity | input | " + reference + " | " + candidate + " |"]
        lines += ["|---|---:|---|---|---|"]
        for d in data["differences"]:
            score = NONE if d["similarity"] is None else f"{d['similarity']:.2f}"
            cells = [_md_cell(d["input"]), _md_cell(d["reference"]), _md_cell(d["candidate"])]
            lines.append(f"| `{d['request_id']}` | {score} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _md_cell(text: str | None, size: int = 80) -> str:
    text = "" if text is None else " ".join(text.split())
    text = text if len(text) <= size else text[: size - 1] + "…"
    return text.replace("|", "\\|")


# -- HTML ----------------------------------------------------------------------------

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:980px;color:#212529}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:2em}.meta{color:#6c757d}
table{border-collapse:collapse;margin:.5em 0}
td,th{padding:.3em .7em;border-bottom:1px solid #dee2e6}
th{text-align:left;background:#f8f9fa}td.n{text-align:right;font-variant-numeric:tabular-nums}
td.t{max-width:22em;overflow-wrap:anywhere;font-size:.92em}
svg text{font:11px system-ui,sans-serif;fill:#495057}.legend span{margin-right:1.5em}
"""


def render_html(data: Mapping[str, Any]) -> str:
    reference, candidate = labels(data)
    samples = data["samples"]
    rows = "".join(
        f"<tr><th>{_e(a)}</th><td class=n>{_e(b)}</td><td class=n>{_e(c)}</td>"
        f"<td class=n>{_e(d)}</td></tr>"
        for a, b, c, d in summary_rows(data)
    )
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>{_e(_title(data))}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(_title(data))}</h1><p class=meta>{_e(_scope(data))}</p>",
        f"<p class=verdict><b>{_e(verdict_line(data))}</b></p>",
        f"<table><tr><th></th><th>{_e(reference)}</th><th>{_e(candidate)}</th>"
        f"<th>change</th></tr>{rows}</table>",
        _legend(reference, candidate),
    ]
    if data["verdict"]["checks"]:
        parts.append("<h2>Thresholds</h2><table><tr><th>threshold</th><th>value</th>")
        parts.append("<th>limit</th><th>result</th></tr>")
        for a, b, c, d in check_rows(data):
            parts.append(
                f"<tr><th>{_e(a)}</th><td class=n>{_e(b)}</td><td class=n>{_e(c)}</td>"
                f"<td>{_e(d)}</td></tr>"
            )
        parts.append("</table>")
    for title, key in (("Latency", "latency_ms"), ("Time to first token", "ttft_ms")):
        ref = [s["reference"][key] for s in samples if s["reference"]["ok"]]
        cand = [s["candidate"][key] for s in samples if s["candidate"]["ok"]]
        ref, cand = [v for v in ref if v is not None], [v for v in cand if v is not None]
        if ref or cand:
            parts.append(f"<h2>{title}: share of requests done within x ms</h2>")
            parts.append(_cdf_chart(ref, cand))
    numbers = data["numbers"]
    costs = (numbers["reference"]["cost_usd"], numbers["candidate"]["cost_usd"])
    parts.append("<h2>Cost per request</h2>")
    parts.append(_bars([reference, candidate], costs, _usd))
    agreement = numbers["agreement"]
    if agreement["compared"]:
        parts.append("<h2>Answer similarity (requests per tenth)</h2>")
        buckets = [f"{i / 10:.1f}-{(i + 1) / 10:.1f}" for i in range(10)]
        parts.append(_bars(buckets, agreement["histogram"], str, colour=CANDIDATE_COLOUR))
    if data["differences"]:
        parts.append("<h2>Cases that differ most</h2><table><tr><th>request</th>")
        parts.append(f"<th>similarity</th><th>input</th><th>{_e(reference)}</th>")
        parts.append(f"<th>{_e(candidate)}</th></tr>")
        for d in data["differences"]:
            score = NONE if d["similarity"] is None else f"{d['similarity']:.2f}"
            parts.append(
                f"<tr><td><code>{_e(d['request_id'])}</code></td><td class=n>{score}</td>"
                f"<td class=t>{_e(d['input'])}</td><td class=t>{_e(d['reference'])}</td>"
                f"<td class=t>{_e(d['candidate'])}</td></tr>"
            )
        parts.append("</table>")
    embedded = json.dumps(data, default=str).replace("</", "<\\/")
    parts.append(f'<script type="application/json" id="replay-data">{embedded}</script>')
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _legend(reference: str, candidate: str) -> str:
    return (
        f'<p class=legend><span style="color:{REFERENCE_COLOUR}">■ {_e(reference)}</span>'
        f'<span style="color:{CANDIDATE_COLOUR}">■ {_e(candidate)}</span></p>'
    )


W, H, LEFT, BOTTOM, TOP, RIGHT = 720, 260, 56, 30, 12, 16


def _cdf_chart(reference: Sequence[float], candidate: Sequence[float]) -> str:
    """Two empirical CDFs (step lines) on a shared x axis in ms."""
    step = _nice_step(max([*reference, *candidate, 1.0]) / 5)
    top = step * math.ceil(max([*reference, *candidate, 1.0]) / step)
    ticks = round(top / step)
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM

    def x(v: float) -> float:
        return LEFT + plot_w * v / top

    def y(share: float) -> float:
        return TOP + plot_h * (1 - share)

    out = [f'<svg width="{W}" height="{H}" role="img">']
    for i in range(ticks + 1):
        v = step * i
        out.append(
            f'<line x1="{x(v):.1f}" y1="{TOP}" x2="{x(v):.1f}" y2="{H - BOTTOM}" stroke="#e9ecef"/>'
            f'<text x="{x(v):.1f}" y="{H - BOTTOM + 16}" text-anchor="middle">{v:,.0f}</text>'
        )
    for share in (0, 0.5, 0.9, 1):
        out.append(
            f'<line x1="{LEFT}" y1="{y(share):.1f}" x2="{W - RIGHT}" y2="{y(share):.1f}" '
            f'stroke="#e9ecef"/><text x="{LEFT - 6}" y="{y(share) + 4:.1f}" '
            f'text-anchor="end">{share * 100:.0f}%</text>'
        )
    for values, colour in ((reference, REFERENCE_COLOUR), (candidate, CANDIDATE_COLOUR)):
        if not values:
            continue
        ordered = sorted(values)
        points = [f"{x(0):.1f},{y(0):.1f}"]
        for i, v in enumerate(ordered):
            points.append(f"{x(v):.1f},{y(i / len(ordered)):.1f}")
            points.append(f"{x(v):.1f},{y((i + 1) / len(ordered)):.1f}")
        points.append(f"{x(top):.1f},{y(1):.1f}")
        out.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2" '
            f'points="{" ".join(points)}"/>'
        )
    out.append(f'<text x="{W - RIGHT}" y="{H - 2}" text-anchor="end">ms</text></svg>')
    return "".join(out)


def _nice_step(rough: float) -> float:
    """1, 2 or 5 times a power of ten, at least `rough`."""
    power = 10.0 ** math.floor(math.log10(rough))
    return next(m * power for m in (1.0, 2.0, 5.0, 10.0) if m * power >= rough)


def _bars(
    names: Sequence[str],
    values: Sequence[float | None],
    show: Any,
    colour: str | None = None,
) -> str:
    """Horizontal bars, one per name, with the value written beside each."""
    row, label_w, plot_w = 24, 160, W - 160 - 120
    top = max([v for v in values if v is not None] + [0.0]) or 1.0
    height = row * len(names) + 8
    out = [f'<svg width="{W}" height="{height}" role="img">']
    for i, (name, value) in enumerate(zip(names, values, strict=True)):
        fill = colour or (REFERENCE_COLOUR if i == 0 else CANDIDATE_COLOUR)
        width = 0.0 if value is None else plot_w * value / top
        y0 = 4 + i * row
        out.append(
            f'<text x="{label_w - 8}" y="{y0 + 15}" text-anchor="end">{_e(name)}</text>'
            f'<rect x="{label_w}" y="{y0 + 3}" width="{width:.1f}" height="{row - 8}" '
            f'fill="{fill}"/><text x="{label_w + width + 6:.1f}" y="{y0 + 15}">'
            f"{_e(show(value))}</text>"
        )
    out.append("</svg>")
    return "".join(out)
