"""`gateway replay NAME --candidate vN …` and `gateway replay show NAME ID`: the
gateway replays a prompt's captured traffic through a version and keeps the result
(`POST /admin/prompts/{name}/replays`); the command prints a summary and renders the
HTML page and the Markdown summary from the kept result.

Exit status, for CI: 0 the verdict passed, 1 it failed (a `--fail-on` threshold was
crossed), 2 the replay could not run (no captured requests, bad or missing
credentials, the gateway unreachable, bad arguments): nothing is recorded then."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from gateway.cli.admin import AdminClient, AdminError
from gateway.cli.exits import exit_code
from gateway.cli.options import add_gateway_options
from gateway.evaluation.replay_report import render_html, render_markdown, verdict_line
from gateway.evaluation.replay_verdict import FailOn

REPLAY_TIMEOUT_S = 3600.0  # the gateway answers when the replay is done
THRESHOLDS = tuple(FailOn.__struct_fields__)


class UsageError(Exception):
    pass


def add_replay_parser(commands: Any) -> None:
    replay = commands.add_parser(
        "replay",
        help="replay captured traffic through a version, in the gateway (a CI gate)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    replay.add_argument("words", nargs="+", metavar="NAME | show NAME ID")
    replay.add_argument("--candidate", metavar="vN", help="the version to replay through")
    replay.add_argument("--baseline", metavar="vM", help="compare with it, not production")
    replay.add_argument("--since", default="24h", help="captured within (90s, 30m, 24h, 7d)")
    replay.add_argument("--limit", type=int, default=200, help="captured requests, at most")
    replay.add_argument("--route", help="only requests captured on this route")
    replay.add_argument("--concurrency", type=int, default=8, help="requests at once")
    replay.add_argument(
        "--fail-on",
        default="",
        metavar="NAME=LIMIT,…",
        help="thresholds for a failed verdict: " + ", ".join(THRESHOLDS),
    )
    replay.add_argument("--html", metavar="FILE", help="write the HTML report")
    replay.add_argument("--markdown", metavar="FILE", help="write the Markdown summary")
    add_gateway_options(replay)
    replay.set_defaults(replay_command=True)


def parse_fail_on(text: str) -> dict[str, float]:
    """`error_rate_increase=0.02,p95_latency_ratio=1.5` → their limits."""
    limits = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, _, value = (piece.strip() for piece in part.partition("="))
        if name not in THRESHOLDS:
            known = ", ".join(THRESHOLDS)
            raise UsageError(f"unknown --fail-on threshold {name!r} (one of {known})")
        try:
            limits[name] = float(value)
        except ValueError:
            raise UsageError(f"--fail-on {name} needs a number: {name}=LIMIT") from None
    return limits


def run_replay(args: argparse.Namespace) -> int:
    try:
        if not args.token:
            raise UsageError("no admin token: pass --token or set GATEWAY_ADMIN_TOKEN")
        admin = AdminClient(args.url, args.token, timeout_s=REPLAY_TIMEOUT_S)
        words = args.words
        if words[0] == "show" and len(words) == 3:
            result = _show(admin, words[1], words[2])
        elif len(words) == 1:
            result = _start(admin, words[0], args)
        else:
            raise UsageError("usage: gateway replay NAME --candidate vN …, or replay show NAME ID")
        written = _write_reports(result, args.html, args.markdown)
    except (AdminError, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exit_code(exc)
    try:
        print(summary(result))
        for path in written:
            print(f"report: {path}")
        sys.stdout.flush()
    except BrokenPipeError:  # `| head` read what it wanted: the verdict still decides
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that the flush at exit cannot fail again
    return 0 if result["verdict"]["result"] == "pass" else 1


def _path(name: str) -> str:
    return f"/prompts/{urllib.parse.quote(name, safe='')}/replays"


def _start(admin: AdminClient, name: str, args: argparse.Namespace) -> Any:
    if not args.candidate:
        raise UsageError("replay NAME needs --candidate vN")
    body: dict[str, Any] = {
        "candidate": args.candidate,
        "since": args.since,
        "limit": args.limit,
        "concurrency": args.concurrency,
        "fail_on": parse_fail_on(args.fail_on),
    }
    if args.baseline:
        body["baseline"] = args.baseline
    if args.route:
        body["route"] = args.route
    against = f"baseline {args.baseline}" if args.baseline else "production"
    print(
        f"replaying up to {args.limit} requests of {name} captured in the last {args.since} "
        f"through {args.candidate}, against {against}…",
        file=sys.stderr,
        flush=True,
    )
    with _elapsed():
        return admin.call("POST", _path(name), body)


@contextlib.contextmanager
def _elapsed() -> Iterator[None]:
    """On a terminal, the seconds waited so far, redrawn on stderr while the gateway
    replays (it answers when done)."""
    if not sys.stderr.isatty():
        yield
        return
    done = threading.Event()
    began = time.monotonic()

    def tick() -> None:
        while not done.wait(1.0):
            sys.stderr.write(f"\r  {time.monotonic() - began:.0f}s")
            sys.stderr.flush()

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    try:
        yield
    finally:
        done.set()
        ticker.join()
        sys.stderr.write("\r")


def _show(admin: AdminClient, name: str, replay_id: str) -> Any:
    return admin.call("GET", f"{_path(name)}/{urllib.parse.quote(replay_id, safe='')}")


def _write_reports(result: Mapping[str, Any], html: str | None, markdown: str | None) -> list[Path]:
    written = []
    for file, render in ((html, render_html), (markdown, render_markdown)):
        if not file:
            continue
        path = Path(file)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(render(result))
        except OSError as exc:
            raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
        written.append(path)
    return written


def summary(result: Mapping[str, Any]) -> str:
    numbers, counts = result["numbers"], result["counts"]
    ref, cand = numbers["reference"], numbers["candidate"]
    agreement = numbers["agreement"]
    reference = f"baseline {result['baseline']}" if result.get("baseline") else "production"
    similarity = agreement["similarity_mean"]
    lines = [
        f"replay {result['id']} of {result['prompt']}: {counts['requests']} requests through "
        f"{result['candidate']}, against {reference}",
        f"  errors          {reference} {ref['errors']}, candidate {cand['errors']}",
        f"  latency p95     {_ms(ref['latency_ms']['p95'])} → {_ms(cand['latency_ms']['p95'])}",
        f"  cost / request  {_usd(ref['cost_usd'])} → {_usd(cand['cost_usd'])}",
        f"  agreement       exact {agreement['exact']}/{agreement['compared']}, mean similarity "
        + ("-" if similarity is None else f"{similarity:.3f}"),
        verdict_line(result),
    ]
    return "\n".join(lines)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} ms"


def _usd(value: float | None) -> str:
    return "-" if value is None else f"${value:.6f}"
