"""`gateway prompts test` and `gateway suite add`: regression suites through a running
gateway. The admin API (`--url`, `--token` or GATEWAY_URL, GATEWAY_ADMIN_TOKEN) gives
captures, pricing and records suite runs; the OpenAI-compatible API answers, with a
client key (`--key` or GATEWAY_CLIENT_KEY).

Exit status: 0 done (every case passed), 1 a case failed, 2 the command could not run
(bad arguments, files, or the gateway unreachable)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.parse
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from gateway.cli.admin import AdminClient, AdminError
from gateway.cli.options import add_gateway_options
from gateway.config.loader import Pricing
from gateway.evaluation.chat_client import ChatClient, pricing_from_config
from gateway.evaluation.suites import (
    CaseResult,
    SuiteError,
    case_from_capture,
    judge,
    load_suite,
    table,
)


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


def add_eval_parsers(commands: Any, prompt_commands: Any) -> None:
    """`prompts test` under `prompts`; `suite add` at the top."""
    test = prompt_commands.add_parser("test", help="run a regression suite on a version")
    test.add_argument("target", metavar="NAME@vN")
    test.add_argument("--suite", required=True, help="JSONL file of cases (- for stdin)")
    test.add_argument("--concurrency", type=int, default=4)
    test.add_argument("--no-record", action="store_true", help="do not record the run")
    test.add_argument("--by", default=os.environ.get("USER", "cli"))
    _connection(test)
    test.set_defaults(eval_command="prompts-test")

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
        "prompts-test": _prompts_test,
        "suite-add": _suite_add,
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


def _prompts_test(args: argparse.Namespace) -> int:
    name, _, version = args.target.partition("@")
    if not name or not version:
        raise UsageError(f"the target is NAME@vN, not {args.target!r}")
    if not args.token and not args.no_record:
        raise UsageError("recording the run needs the admin token (--token), or --no-record")
    cases = load_suite(Path(args.suite))
    admin = AdminClient(args.url, args.token)
    if args.token:
        prompt = admin.call("GET", f"/prompts/{urllib.parse.quote(name)}")
        if version not in {v["version"] for v in prompt["versions"]}:
            raise UsageError(f"prompt {name} has no version {version}")
    chat = ChatClient(args.url, args.key, _pricing(admin))
    model = f"prompt:{name}@{version}"

    def run(case: Any) -> CaseResult:
        answer = chat.complete(case.body(model))
        return CaseResult(case, answer, judge(case, answer))

    with ThreadPoolExecutor(max_workers=max(1, args.concurrency)) as pool:
        results = list(pool.map(run, cases))
    print(table(results))
    failed = sum(not r.passed for r in results)
    if not args.no_record:
        run_record = {
            "suite": Path(args.suite).name,
            "passed": failed == 0,
            "total": len(results),
            "failed": failed,
            "cases": [r.to_json() for r in results],
            "by": args.by,
        }
        path = f"/prompts/{urllib.parse.quote(name)}/versions/{urllib.parse.quote(version)}"
        admin.call("POST", f"{path}/suite-results", run_record)
        print(f"recorded on {name} {version}: {'passed' if failed == 0 else 'failed'}")
    return 0 if failed == 0 else 1


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
