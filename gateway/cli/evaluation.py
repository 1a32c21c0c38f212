"""`gateway suite add`: a suite file's case from a captured request, through the admin
API (`--url`, `--token` or GATEWAY_URL, GATEWAY_ADMIN_TOKEN). (`gateway prompts test`
is in gateway.cli.datasets and `gateway replay` in gateway.cli.replay: the gateway
runs those itself.)

Exit status: 0 done, 2 the command could not run (bad arguments, files, or the
gateway unreachable)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.cli.admin import AdminClient, AdminError
from gateway.cli.exits import exit_code
from gateway.cli.options import add_gateway_options
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
    """`suite add`."""
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


def run_eval(args: argparse.Namespace) -> int:
    commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "suite-add": _suite_add,
    }
    try:
        return commands[args.eval_command](args)
    except (AdminError, SuiteError, UsageError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exit_code(exc)


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
