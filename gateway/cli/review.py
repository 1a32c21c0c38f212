"""`gateway review list|show|approve|reject`: the review queue of flagged and held
answers, through the admin API (`--url`, `--token`, or GATEWAY_URL,
GATEWAY_ADMIN_TOKEN). Deciding needs a token with the `reviewer` role; the decision is
recorded under that token's identity."""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.parse
from typing import Any

from gateway.cli.admin import AdminClient, AdminError, add_connection_args
from gateway.cli.exits import exit_code

STATES = ("pending", "approved", "rejected", "expired")


def add_review_parser(commands: Any) -> None:
    review = commands.add_parser("review", help="flagged and held answers waiting for a reviewer")
    sub = review.add_subparsers(dest="review_command", required=True)
    listing = sub.add_parser("list", help="review items, newest first")
    listing.add_argument("--state", choices=STATES, default="pending")
    listing.add_argument("--prompt", help="only this prompt's items")
    listing.add_argument("--limit", type=int, default=50)
    show = sub.add_parser("show", help="one item: the request's messages and the answer")
    show.add_argument("id")
    approve = sub.add_parser("approve", help="release the answer (held) or accept it (flagged)")
    approve.add_argument("id")
    approve.add_argument("--note", default="")
    approve.add_argument("--edit", dest="edited_answer", help="deliver this text instead")
    reject = sub.add_parser("reject", help="refuse the answer")
    reject.add_argument("id")
    reject.add_argument("--note", default="")
    for parser in (listing, show, approve, reject):
        add_connection_args(parser)


def run_review(args: argparse.Namespace) -> int:
    client = AdminClient(args.url, args.token)
    command = args.review_command
    try:
        if command == "list":
            query = {"state": args.state, "limit": str(args.limit)}
            if args.prompt:
                query["prompt"] = args.prompt
            answer = client.call("GET", "/reviews?" + urllib.parse.urlencode(query))
        elif command == "show":
            answer = client.call("GET", f"/reviews/{_quoted(args.id)}")
        else:
            body: dict[str, Any] = {"note": args.note}
            if command == "approve" and args.edited_answer is not None:
                body["edited_answer"] = args.edited_answer
            answer = client.call("POST", f"/reviews/{_quoted(args.id)}/{command}", body)
    except AdminError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exit_code(exc)
    if args.json:
        print(json.dumps(answer, indent=2))
    elif command == "list":
        for item in answer["data"]:
            print(summary(item))
        if not answer["data"]:
            print(f"no {args.state} items")
    else:
        print_item(answer)
    return 0


def _quoted(item_id: str) -> str:
    return urllib.parse.quote(item_id, safe="")


def summary(item: dict[str, Any]) -> str:
    at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(item["created_at"]))
    where = f"{item['prompt']}@{item['version']}" if item["prompt"] else item["route"]
    return (
        f"{item['id']}  {at}  {item['kind']:<7} {item['state']:<8} {where}  "
        f"guard {item['guard']}: {item['reason']}"
    )


def print_item(item: dict[str, Any]) -> None:
    print(summary(item))
    print(f"key: {item['key'] or '-'}  request: {item['request_id']}")
    if item.get("decided_by"):
        at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(item["decided_at"]))
        print(f"decided by {item['decided_by']} at {at}: {item['note']}")
    print("messages:")
    for message in item["messages"]:
        content = message.get("content") if isinstance(message, dict) else message
        role = message.get("role", "?") if isinstance(message, dict) else "?"
        print(f"  {role}: {content}")
    print("answer:")
    print("  " + item["answer"].replace("\n", "\n  "))
    if item.get("edited_answer") is not None:
        print("edited answer:")
        print("  " + item["edited_answer"].replace("\n", "\n  "))
