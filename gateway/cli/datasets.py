"""`gateway datasets …` and `gateway prompts test`: datasets kept in the gateway's
store, and test runs the gateway makes of them (`--url`, `--token`, or GATEWAY_URL,
GATEWAY_ADMIN_TOKEN; who acts is who the token belongs to).

`gateway prompts test NAME@vN --suite FILE` uploads the suite file as a revision of a
dataset (`--dataset`, default the file's name without its extension; no new revision
when the cases are the same) and asks the gateway to run it; `--dataset NAME` alone
runs a dataset the gateway has. Exit status: 0 the run passed (pass rate at least the
prompt's `min_pass_rate`), 1 it failed, 2 no run was made (bad arguments or file, no
or a refused token, the gateway unreachable, an unknown prompt, version or dataset)."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.parse
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from gateway.cli.admin import AdminClient, AdminError
from gateway.cli.exits import exit_code
from gateway.cli.options import add_gateway_options
from gateway.evaluation.suites import SuiteError, load_suite, run_table

RUN_TIMEOUT_S = 900.0  # a run answers when its last case is done


class UsageError(Exception):
    pass


def add_dataset_parsers(commands: Any, prompt_commands: Any) -> None:
    """`prompts test` under `prompts`, and `datasets` at the top."""
    test = prompt_commands.add_parser("test", help="run a dataset on a version, in the gateway")
    test.add_argument("target", metavar="NAME@vN")
    test.add_argument("--suite", help="JSONL file of cases to upload first (- for stdin)")
    test.add_argument("--dataset", help="the dataset (default: the suite file's name)")
    test.add_argument("--revision", type=int, help="an older revision of the dataset")
    test.add_argument("--concurrency", type=int, default=4, help="cases at once (at most 32)")
    test.add_argument("--stream", action="store_true", help="stream the answers (TTFT)")
    test.add_argument("--json", action="store_true", help="print the run as JSON")
    add_gateway_options(test)
    test.set_defaults(dataset_command="prompts-test")

    datasets = commands.add_parser("datasets", help="datasets of test cases, in the gateway")
    sub = datasets.add_subparsers(dest="datasets_command", required=True)
    listing = sub.add_parser("list", help="every dataset, its revision and case count")
    listing.set_defaults(dataset_command="list")
    show = sub.add_parser("show", help="a dataset's cases")
    show.add_argument("name")
    show.add_argument("--revision", type=int)
    show.set_defaults(dataset_command="show")
    push = sub.add_parser("push", help="create a dataset or replace its cases from a file")
    push.add_argument("name")
    push.add_argument("file", help="JSONL file of cases (- for stdin)")
    push.set_defaults(dataset_command="push")
    add = sub.add_parser("add-case", help="add a case made from a captured request")
    add.add_argument("name")
    add.add_argument("--from-request", required=True, metavar="REQUEST_ID")
    add.add_argument("--case-name", help="default: req-REQUEST_ID")
    add.add_argument("--checks", default="{}", help='JSON, e.g. \'{"contains": "refund"}\'')
    add.set_defaults(dataset_command="add-case")
    for parser in (listing, show, push, add):
        add_gateway_options(parser)
        parser.add_argument("--json", action="store_true", help="print the raw JSON answer")


def run_datasets(args: argparse.Namespace) -> int:
    commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "prompts-test": _prompts_test,
        "list": _list,
        "show": _show,
        "push": _push,
        "add-case": _add_case,
    }
    try:
        return commands[args.dataset_command](args)
    except (AdminError, SuiteError, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exit_code(exc)


def _quoted(name: str) -> str:
    return urllib.parse.quote(name, safe="")


def _client(args: argparse.Namespace, timeout_s: float = 30.0) -> AdminClient:
    if not args.token:
        raise UsageError("the admin API needs a token: --token or GATEWAY_ADMIN_TOKEN")
    return AdminClient(args.url, args.token, timeout_s)


def upload(client: AdminClient, name: str, path: Path) -> dict[str, Any]:
    """The file's cases as the dataset's next revision (none when they are the same);
    the dataset is made when it does not exist."""
    cases = [case.to_json() for case in load_suite(path)]
    found = {d["name"] for d in client.call("GET", "/datasets")["datasets"]}
    if name in found:
        answer: dict[str, Any] = client.call(
            "PUT", f"/datasets/{_quoted(name)}/cases", {"cases": cases}
        )
        return answer
    body = {"name": name, "cases": cases, "description": f"from {path.name}"}
    created: dict[str, Any] = client.call("POST", "/datasets", body)
    return created


def _prompts_test(args: argparse.Namespace) -> int:
    name, _, version = args.target.partition("@")
    if not name or not version:
        raise UsageError(f"the target is NAME@vN, not {args.target!r}")
    dataset = args.dataset
    if args.suite is not None and dataset is None:
        if args.suite == "-":
            raise UsageError("a suite read from stdin needs --dataset NAME")
        dataset = Path(args.suite).stem
    if dataset is None:
        raise UsageError("say what to run: --suite FILE, --dataset NAME, or both")
    client = _client(args, RUN_TIMEOUT_S)
    if args.suite is not None:
        saved = upload(client, dataset, Path(args.suite))
        what = "new" if saved["changed"] else "unchanged"
        print(f"dataset {dataset}: revision {saved['revision']} ({what})", file=sys.stderr)
    body: dict[str, Any] = {"dataset": dataset, "concurrency": args.concurrency}
    if args.revision is not None:
        body["revision"] = args.revision
    if args.stream:
        body["stream"] = True
    path = f"/prompts/{_quoted(name)}/versions/{_quoted(version)}/test"
    run = client.call("POST", path, body)
    if args.json:
        print(json.dumps(run, indent=2))
    else:
        print(run_table(run))
        print(
            f"run {run['id']} of {run['dataset']} revision {run['dataset_revision']} "
            f"recorded on {name} {version}: {run['verdict']}"
        )
    return 0 if run["verdict"] == "pass" else 1


def _list(args: argparse.Namespace) -> int:
    answer = _client(args).call("GET", "/datasets")
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0
    print(f"{'DATASET':<24} {'REVISION':>8} {'CASES':>6}  UPDATED              BY")
    for d in answer["datasets"]:
        print(
            f"{d['name']:<24} {d['revision']:>8} {d['case_count']:>6}  "
            f"{local_time(d['updated_at'])}  {d['updated_by']}"
        )
    return 0


def _show(args: argparse.Namespace) -> int:
    query = f"?revision={args.revision}" if args.revision is not None else ""
    answer = _client(args).call("GET", f"/datasets/{_quoted(args.name)}{query}")
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0
    print(
        f"{answer['name']} revision {answer['revision']} (current {answer['current_revision']}), "
        f"{len(answer['cases'])} cases, by {answer['by']} at {local_time(answer['at'])}"
    )
    for case in answer["cases"]:
        checks = ", ".join(case.get("checks") or {}) or "no checks"
        print(f"  {case['name']}: {checks}")
    return 0


def _push(args: argparse.Namespace) -> int:
    saved = upload(_client(args), args.name, Path(args.file))
    if args.json:
        print(json.dumps(saved, indent=2))
    else:
        what = "new revision" if saved["changed"] else "unchanged"
        print(f"{args.name}: revision {saved['revision']} ({what}), {len(saved['cases'])} cases")
    return 0


def _add_case(args: argparse.Namespace) -> int:
    try:
        checks = json.loads(args.checks)
    except ValueError as exc:
        raise UsageError(f"--checks is JSON: {exc}") from None
    body: dict[str, Any] = {"from_request": args.from_request, "checks": checks}
    if args.case_name:
        body["name"] = args.case_name
    saved = _client(args).call("POST", f"/datasets/{_quoted(args.name)}/cases", body)
    if args.json:
        print(json.dumps(saved, indent=2))
    else:
        added = saved["cases"][-1]
        print(f"{args.name}: revision {saved['revision']}, added case {added['name']!r}")
    return 0


def local_time(stamp: str) -> str:
    """An ISO 8601 UTC time from the gateway, in this machine's time zone."""
    when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S")
