"""`gateway suite add` and `gateway replay`: suite files and backtests through a
running gateway. The admin API (`--url`, `--token` or GATEWAY_URL, GATEWAY_ADMIN_TOKEN)
gives captures and pricing; the OpenAI-compatible API answers, with a client key
(`--key` or GATEWAY_CLIENT_KEY). (`gateway prompts test` is in gateway.cli.datasets:
the gateway runs those itself.)

Exit status: 0 done, 1 nothing to replay, 2 the command could not run (bad
arguments, files, or the gateway unreachable)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from gateway.cli.admin import AdminClient, AdminError
from gateway.cli.options import add_gateway_options
from gateway.config.loader import Pricing
from gateway.evaluation.api import parse_duration
from gateway.evaluation.chat_client import ChatClient, pricing_from_config
from gateway.evaluation.replay import Progress, run_replay, summarize
from gateway.evaluation.replay_report import write_report
from gateway.evaluation.suites import SuiteError, case_from_capture, load_suite


class UsageError(Exception):
    pass


def _connection(parser: argparse.ArgumentParser, client_key: bool = True) -> None:
    add_gateway_options(parser)
    if client_key:
        parser.add_argument(
            "--key",
            default=os.environ.get("GATEWAY_CLIENT_KEY", ""),
            help="client key for the OpenAI-compatible API (GATEWAY_CLIENT_KEY)",
        )


def add_eval_parsers(commands: Any) -> None:
    """`suite add` and `replay`."""
    suite = commands.add_parser("suite", help="regression suite files")
    suite_commands = suite.add_subparsers(dest="suite_command", required=True)
    add = suite_commands.add_parser("add", help="turn a captured request into a case")
    add.add_argument("--from-request", required=True, metavar="REQUEST_ID")
    add.add_argument("--suite", required=True, help="JSONL file to append to")
    add.add_argument("--name", help="case name (default: req-REQUEST_ID)")
    add.add_argument("--equals", action="store_true", help="check: production's exact answer")
    add.add_argument("--contains", action="append", default=[], metavar="TEXT")
    _connection(add, client_key=False)
    add.set_defaults(eval_command="suite-add")

    replay = commands.add_parser("replay", help="backtest a version on captured traffic")
    replay.add_argument("--prompt", required=True)
    replay.add_argument("--candidate", required=True, metavar="vN")
    replay.add_argument(
        "--baseline", metavar="vM", help="compare with this version, not production"
    )
    replay.add_argument("--since", default="24h", help="captured within (90s, 30m, 24h, 7d)")
    replay.add_argument("--limit", type=int, default=500)
    replay.add_argument("--concurrency", type=int, default=8)
    replay.add_argument(
        "--report", required=True, help="writes FILE.html and FILE.md (.html/.md dropped)"
    )
    _connection(replay)
    replay.set_defaults(eval_command="replay")


def run_eval(args: argparse.Namespace) -> int:
    commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "suite-add": _suite_add,
        "replay": _replay,
    }
    try:
        return commands[args.eval_command](args)
    except (AdminError, SuiteError, UsageError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _pricing(admin: AdminClient) -> dict[str, Pricing]:
    if not admin.token:
        return {}  # costs unknown without the admin API
    config: Mapping[str, Any] = admin.call("GET", "/config")
    return pricing_from_config(config)


def _suite_add(args: argparse.Namespace) -> int:
    admin = AdminClient(args.url, args.token)
    request_id = args.from_request
    record = admin.call("GET", f"/captures/{urllib.parse.quote(request_id, safe='')}")
    name = args.name or f"req-{request_id}"
    case = case_from_capture(record, name)
    if args.equals:
        if record.get("answer") is None:
            raise UsageError(f"request {request_id} was captured without an answer")
        case["checks"]["equals"] = record["answer"]
    if args.contains:
        case["checks"]["contains"] = args.contains
    path = Path(args.suite)
    if path.exists() and path.read_text().strip():
        if name in {c.name for c in load_suite(path)}:
            raise UsageError(f"{path} already has a case named {name!r}")
        prefix = "" if path.read_text().endswith("\n") else "\n"
    else:
        prefix = ""
    with path.open("a") as out:
        out.write(prefix + json.dumps(case, ensure_ascii=False) + "\n")
    checks = ", ".join(case["checks"]) or "none yet: edit the line to add some"
    print(f"added case {name!r} to {path} (checks: {checks})")
    return 0


def _replay(args: argparse.Namespace) -> int:
    try:
        parse_duration(args.since)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    admin = AdminClient(args.url, args.token, timeout_s=120.0)
    query = urllib.parse.urlencode(
        {"prompt": args.prompt, "since": args.since, "limit": args.limit}
    )
    records = admin.call("GET", f"/captures?{query}")["captures"]
    if not records:
        print(f"no captured requests of prompt {args.prompt} in the last {args.since}")
        return 1
    chat = ChatClient(args.url, args.key, _pricing(admin))
    candidate = f"prompt:{args.prompt}@{args.candidate}"
    baseline = f"prompt:{args.prompt}@{args.baseline}" if args.baseline else None
    pairs = run_replay(
        records,
        lambda body: chat.complete(body, stream=True),
        candidate,
        baseline,
        args.concurrency,
        Progress(len(records)),
    )
    meta = {
        "prompt": args.prompt,
        "candidate": args.candidate,
        "baseline": args.baseline,
        "since": args.since,
        "limit": args.limit,
        "url": args.url,
        "generated_at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }
    data = summarize(pairs, meta)
    html_path, md_path = write_report(data, args.report)
    candidate_stats, agreement = data["candidate"], data["agreement"]
    print(
        f"replayed {len(pairs)} requests: candidate errors {candidate_stats['errors']}, "
        f"exact agreement {agreement['exact']}/{agreement['compared']}"
    )
    print(f"report: {html_path} and {md_path}")
    return 0
