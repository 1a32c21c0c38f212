"""`gateway feedback list` and `gateway captures label|unlabel|show`: feedback as it
stands and labels on captured requests, through the admin API (`--url`, `--token`, or
GATEWAY_URL, GATEWAY_ADMIN_TOKEN; who labels is who the token belongs to).

Exit status: 0 done, 2 the command could not run (a refused token, the gateway
unreachable, an unknown request)."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.parse
from collections.abc import Callable
from typing import Any

from gateway.cli.admin import AdminClient, AdminError, add_connection_args
from gateway.cli.exits import exit_code
from gateway.cli.prompt_changes import local_time


def add_feedback_parsers(commands: Any) -> None:
    """`feedback list` and `captures label|unlabel|show`."""
    feedback = commands.add_parser("feedback", help="user feedback on answers")
    sub = feedback.add_subparsers(dest="feedback_group_command", required=True)
    listing = sub.add_parser("list", help="the latest feedback of each request, newest first")
    listing.add_argument("--prompt")
    listing.add_argument("--version", metavar="vN")
    listing.add_argument("--value", choices=("positive", "negative"))
    listing.add_argument("--kind", choices=("explicit", "implicit"))
    listing.add_argument("--since", help="a duration: 90s, 30m, 24h, 7d")
    listing.add_argument("--limit", type=int, default=100)
    listing.set_defaults(feedback_command="list")

    captures = commands.add_parser("captures", help="captured requests and their labels")
    csub = captures.add_subparsers(dest="captures_command", required=True)
    label = csub.add_parser("label", help="put a label on a captured request (reviewer)")
    label.add_argument("request_id", metavar="ID")
    label.add_argument("label", metavar="LABEL")
    label.add_argument("--note", default="")
    label.set_defaults(feedback_command="label")
    unlabel = csub.add_parser("unlabel", help="take a label off a captured request")
    unlabel.add_argument("request_id", metavar="ID")
    unlabel.add_argument("label", metavar="LABEL")
    unlabel.set_defaults(feedback_command="unlabel")
    show = csub.add_parser("show", help="a captured request with its labels and feedback")
    show.add_argument("request_id", metavar="ID")
    show.set_defaults(feedback_command="show")
    for parser in (listing, label, unlabel, show):
        add_connection_args(parser)


def run_feedback(args: argparse.Namespace) -> int:
    commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "list": _list,
        "label": _label,
        "unlabel": _unlabel,
        "show": _show,
    }
    try:
        return commands[args.feedback_command](args)
    except AdminError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exit_code(exc)


def _quoted(text: str) -> str:
    return urllib.parse.quote(text, safe="")


def _list(args: argparse.Namespace) -> int:
    wanted = {
        "prompt": args.prompt,
        "version": args.version,
        "value": args.value,
        "kind": args.kind,
        "since": args.since,
        "limit": str(args.limit),
    }
    query = urllib.parse.urlencode({k: v for k, v in wanted.items() if v})
    answer = AdminClient(args.url, args.token).call("GET", f"/feedback?{query}")
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0
    print(f"{'AT':<23}  {'REQUEST':<24} {'PROMPT@VERSION':<20} {'VALUE':<8} {'KIND':<16} COMMENT")
    for e in answer["feedback"]:
        where = f"{e['prompt']}@{e['version']}" if e["prompt"] else e["route"] or "-"
        kind = e["kind"] if not e["signal"] else f"{e['kind']}:{e['signal']}"
        print(
            f"{local_time(e['at']):<23}  {e['request_id']:<24} {where:<20} "
            f"{e['value']:<8} {kind:<16} {_one_line(e['comment'])}"
        )
    return 0


def _one_line(text: str, width: int = 60) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _print_labels(answer: dict[str, Any]) -> None:
    if not answer["labels"]:
        print(f"{answer['request_id']}: no labels")
    for label in answer["labels"]:
        note = f"  {_one_line(label['note'])}" if label["note"] else ""
        print(f"{label['label']:<24} by {label['by']} at {local_time(label['at'])}{note}")


def _label(args: argparse.Namespace) -> int:
    body = {"label": args.label, "note": args.note}
    path = f"/captures/{_quoted(args.request_id)}/labels"
    answer = AdminClient(args.url, args.token).call("POST", path, body)
    if args.json:
        print(json.dumps(answer, indent=2))
    else:
        _print_labels(answer)
    return 0


def _unlabel(args: argparse.Namespace) -> int:
    path = f"/captures/{_quoted(args.request_id)}/labels/{_quoted(args.label)}"
    answer = AdminClient(args.url, args.token).call("DELETE", path)
    if args.json:
        print(json.dumps(answer, indent=2))
    else:
        _print_labels(answer)
    return 0


def _show(args: argparse.Namespace) -> int:
    record = AdminClient(args.url, args.token).call("GET", f"/captures/{_quoted(args.request_id)}")
    if args.json:
        print(json.dumps(record, indent=2))
        return 0
    where = f"{record['prompt']}@{record['version']}" if record.get("prompt") else record["route"]
    print(f"{record['request_id']}  {where}  {record['provider']}/{record['model']}")
    print(f"answer: {_one_line(str(record.get('answer') or ''), 100)}")
    _print_labels(record)
    for e in record["feedback"]:
        signal = f" ({e['signal']})" if e["signal"] else ""
        comment = f"  {_one_line(e['comment'])}" if e["comment"] else ""
        print(f"feedback: {e['value']}{signal} by {e['key'] or '-'}{comment}")
    return 0
