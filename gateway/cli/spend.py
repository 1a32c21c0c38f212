"""`gateway spend [--by key|team|user] [--since 7d] [--top 20]`: the top spenders, from
`GET /admin/spend` (`--url`, `--token`, or GATEWAY_URL, GATEWAY_ADMIN_TOKEN)."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.parse
from typing import Any

from gateway.cli.admin import AdminClient, AdminError, add_connection_args
from gateway.cli.exits import exit_code


def add_spend_parser(commands: Any) -> None:
    spend = commands.add_parser("spend", help="spend and usage by key, team or end user")
    spend.add_argument("--by", choices=("key", "team", "user"), default="key")
    spend.add_argument("--since", default="today", help="a date (2026-12-01) or days (7d)")
    spend.add_argument("--top", type=int, default=20, help="how many, biggest first")
    add_connection_args(spend)


def run_spend(args: argparse.Namespace) -> int:
    client = AdminClient(args.url, args.token)
    query = urllib.parse.urlencode({"by": args.by, "since": args.since, "limit": args.top})
    try:
        answer = client.call("GET", f"/spend?{query}")
    except AdminError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exit_code(exc)
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0
    print(f"spend by {answer['by']}, {answer['since']} to {answer['until']} (UTC days)")
    print(f"{args.by:<32} {'requests':>9} {'input':>10} {'output':>10} {'usd':>12} unpriced")
    for row in answer["data"]:
        print(
            f"{row[args.by]:<32} {row['requests']:>9} {row['input_tokens']:>10} "
            f"{row['output_tokens']:>10} {row['cost_usd']:>12.6f} {row['unpriced_requests']}"
        )
    return 0
