"""`gateway prompts diff|runbook|label|history|rollback`: what changed in a prompt, who
changed it, how to run it, and how to put its routing back, through the admin API
(`--url`, `--token`, or GATEWAY_URL, GATEWAY_ADMIN_TOKEN). Who acts is the token's
identity; the gateway records it."""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.parse
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from gateway.cli.admin import AdminClient, AdminError, add_connection_args
from gateway.cli.exits import exit_code

_COLOURS = {"+": "\x1b[32m", "-": "\x1b[31m", "@": "\x1b[36m"}
_BOLD, _RESET = "\x1b[1m", "\x1b[0m"


def add_change_parsers(prompt_commands: Any) -> None:
    diff = prompt_commands.add_parser("diff", help="unified diff of two versions")
    diff.add_argument("name")
    diff.add_argument("older", metavar="vA", help="a version or a label")
    diff.add_argument("newer", metavar="vB", help="a version or a label")
    runbook = prompt_commands.add_parser("runbook", help="the prompt's runbook, in Markdown")
    runbook.add_argument("name")
    runbook.add_argument("-o", "--output", type=Path, help="write it to this file")
    label = prompt_commands.add_parser("label", help="point a label at a version, or remove it")
    label.add_argument("name")
    label.add_argument("label")
    label.add_argument("version", nargs="?", metavar="vN")
    label.add_argument("--delete", action="store_true", help="remove the label")
    label.add_argument("--reason")
    history = prompt_commands.add_parser("history", help="every event of the prompt, newest first")
    history.add_argument("name")
    history.add_argument("--limit", type=int, default=100)
    rollback = prompt_commands.add_parser(
        "rollback", help="undo the last routing change, or go back to a history entry"
    )
    rollback.add_argument("name")
    rollback.add_argument("--to", metavar="ID|before_rollout", help="a history entry's id")
    rollback.add_argument("--reason")
    for parser, run in (
        (diff, _diff),
        (runbook, _runbook),
        (label, _label),
        (history, _history),
        (rollback, _rollback),
    ):
        add_connection_args(parser)
        parser.set_defaults(change_command=run)


def run_change(args: argparse.Namespace) -> int:
    run: Callable[[AdminClient, argparse.Namespace], int] = args.change_command
    try:
        return run(AdminClient(args.url, args.token), args)
    except AdminError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exit_code(exc)


def _path(name: str, *parts: str) -> str:
    quoted = [urllib.parse.quote(p, safe="") for p in (name, *parts)]
    return "/prompts/" + "/".join(quoted)


def _diff(client: AdminClient, args: argparse.Namespace) -> int:
    query = urllib.parse.urlencode({"from": args.older, "to": args.newer})
    answer = client.call("GET", f"{_path(args.name, 'diff')}?{query}")
    if args.json:
        print(json.dumps(answer, indent=2))
    elif not answer["diff"]:
        print(f"{args.name}: {answer['from']} and {answer['to']} are the same")
    else:
        print(colour_diff(answer["diff"], use_colour()), end="")
    return 0


def use_colour() -> bool:
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def colour_diff(text: str, colour: bool) -> str:
    if not colour:
        return text
    out = []
    for line in text.splitlines(keepends=True):
        if line.startswith(("---", "+++")):
            out.append(f"{_BOLD}{line.rstrip(chr(10))}{_RESET}\n")
        elif line[:1] in _COLOURS:
            out.append(f"{_COLOURS[line[:1]]}{line.rstrip(chr(10))}{_RESET}\n")
        else:
            out.append(line)
    return "".join(out)


def _runbook(client: AdminClient, args: argparse.Namespace) -> int:
    text = client.text("GET", _path(args.name, "runbook"))
    if args.output is None:
        print(text, end="")
        return 0
    try:
        args.output.write_text(text)
    except OSError as exc:
        raise AdminError(f"cannot write {args.output}: {exc}") from None
    print(f"wrote the runbook of {args.name} to {args.output}", file=sys.stderr)
    return 0


def _label(client: AdminClient, args: argparse.Namespace) -> int:
    path = _path(args.name, "labels", args.label)
    if args.delete == bool(args.version):
        raise AdminError("give a version (NAME LABEL vN) or --delete, not both or neither")
    if args.delete:
        entry = client.call("DELETE", path)
    else:
        body = {"version": args.version, **({"reason": args.reason} if args.reason else {})}
        entry = client.call("PUT", path, body)
    if args.json:
        print(json.dumps(entry, indent=2))
    else:
        print(f"{args.name}: {entry['reason']} ({entry['id']})")
    return 0


def _history(client: AdminClient, args: argparse.Namespace) -> int:
    answer = client.call("GET", f"{_path(args.name, 'history')}?limit={max(1, args.limit)}")
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0
    for entry in answer["history"]:
        print(history_line(entry))
    if not answer["history"]:
        print(f"{args.name}: no history")
    return 0


def local_time(stamp: str) -> str:
    """An ISO 8601 UTC time (`…Z`) in this machine's time zone."""
    try:
        at = datetime.fromisoformat(stamp)
    except ValueError:
        return stamp
    return at.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def history_line(entry: dict[str, Any]) -> str:
    version = entry.get("version") or "-"
    return (
        f"{local_time(entry['at'])}  {entry['id']:<18} {entry['kind']:<9} {version:<5} "
        f"{entry['by'] or '-':<12} {entry.get('reason') or ''}"
    ).rstrip()


def _rollback(client: AdminClient, args: argparse.Namespace) -> int:
    body = {k: v for k, v in (("to", args.to), ("reason", args.reason)) if v}
    entry = client.call("POST", _path(args.name, "rollback"), body)
    if args.json:
        print(json.dumps(entry, indent=2))
        return 0
    weights = " ".join(f"{v}={w}" for v, w in (entry.get("after") or {}).get("weights", {}).items())
    print(f"{args.name}: routing now {weights or '-'} ({entry['id']}: {entry['reason']})")
    return 0
