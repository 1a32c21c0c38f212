"""`gateway keys create|list|show|rotate|revoke`: client keys through the admin API
(`--url`, `--token`, or GATEWAY_URL, GATEWAY_ADMIN_TOKEN). `keys create --name NAME`
(no positional name) needs no gateway: it prints a token and the `[[keys]]` entry
for the config file instead."""

from __future__ import annotations

import argparse
import hashlib
import json
import secrets
import sys
from typing import Any

from gateway.cli.admin import AdminClient, AdminError, add_connection_args
from gateway.cli.exits import exit_code


def add_keys_parser(commands: Any) -> None:
    keys = commands.add_parser("keys", help="client keys (virtual keys in the store)")
    sub = keys.add_subparsers(dest="keys_command", required=True)
    create = sub.add_parser("create", help="make a key in the store; its token is shown once")
    create.add_argument("key", nargs="?", metavar="NAME")
    create.add_argument("--name", help="no gateway needed: print a [[keys]] config entry")
    create.add_argument("--routes", help="comma-separated routes this key may use")
    create.add_argument("--team")
    for limit in ("rpm", "tpm", "max-concurrent"):
        create.add_argument(f"--{limit}", type=int)
    create.add_argument("--budget-usd", type=float)
    create.add_argument("--budget-period", choices=("day", "month"), default="month")
    create.add_argument("--expires-at", help="ISO 8601 (2027-01-31T00:00:00Z) or unix seconds")
    create.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE")
    add_connection_args(create)
    add_connection_args(sub.add_parser("list", help="every key, config and store"))
    for command, text in (("show", "one key"), ("revoke", "revoke a key now")):
        parser = sub.add_parser(command, help=text)
        parser.add_argument("name")
        add_connection_args(parser)
    rotate = sub.add_parser("rotate", help="a new token; the old one works for --grace")
    rotate.add_argument("name")
    rotate.add_argument("--grace", type=float, metavar="SECONDS", help="default 3600")
    add_connection_args(rotate)


def run_keys(args: argparse.Namespace) -> int:
    if args.keys_command == "create" and args.key is None:
        if not args.name:
            print("error: keys create NAME (or --name NAME for a config entry)", file=sys.stderr)
            return 2
        return _config_entry(args.name, args.routes)
    client = AdminClient(args.url, args.token)
    try:
        answer = _call(client, args)
    except AdminError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exit_code(exc)
    if args.json:
        print(json.dumps(answer, indent=2))
    elif args.keys_command == "list":
        for key in answer["keys"]:
            print(_line(key))
    else:
        _print_key(answer)
    return 0


def _call(client: AdminClient, args: argparse.Namespace) -> Any:
    command = args.keys_command
    if command == "create":
        return client.call("POST", "/keys", _new_key(args))
    if command == "list":
        return client.call("GET", "/keys")
    path = f"/keys/{args.name}"
    if command == "show":
        return client.call("GET", path)
    if command == "rotate":
        body = {} if args.grace is None else {"grace_s": args.grace}
        return client.call("POST", f"{path}/rotate", body)
    return client.call("DELETE", path)


def _new_key(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {"name": args.key}
    if args.routes:
        body["routes"] = [r.strip() for r in args.routes.split(",") if r.strip()]
    if args.team:
        body["team"] = args.team
    limits = {"rpm": args.rpm, "tpm": args.tpm, "max_concurrent": args.max_concurrent}
    if any(v is not None for v in limits.values()):
        body["limits"] = {k: v for k, v in limits.items() if v is not None}
    if args.budget_usd is not None:
        body["budget"] = {"usd": args.budget_usd, "period": args.budget_period}
    if args.expires_at:
        at = args.expires_at
        body["expires_at"] = float(at) if at.replace(".", "", 1).isdigit() else at
    if args.meta:
        body["metadata"] = dict(item.partition("=")[::2] for item in args.meta)
    return body


def _line(key: dict[str, Any]) -> str:
    state = "revoked" if key["revoked"] else "expired" if key["expired"] else "active"
    extra = f" team={key['team']}" if key["team"] else ""
    if key["expires_at"]:
        extra += f" expires={key['expires_at']}"
    return f"{key['name']:<24} {key['source']:<6} {state:<8}{extra}"


def _print_key(key: dict[str, Any]) -> None:
    token = key.get("token")
    if token:
        print(f"Token for {key['name']} (shown once, store it now):\n\n    {token}\n")
    print(_line(key))
    for field in ("routes", "limits", "budget", "metadata", "created_at", "created_by"):
        print(f"  {field}: {json.dumps(key[field])}")
    if key["rotation_grace_until"]:
        print(f"  previous token works until {key['rotation_grace_until']}")


def _config_entry(name: str, routes: str | None) -> int:
    token = "gw-" + secrets.token_urlsafe(32)
    digest = hashlib.sha256(token.encode()).hexdigest()
    print(f"New key for {name} (shown once, store it now):\n\n    {token}\n")
    print("Add to the config file:\n")
    print("[[keys]]")
    print(f'name = "{name}"')
    print(f'sha256 = "{digest}"')
    if routes:
        listed = ", ".join(f'"{r.strip()}"' for r in routes.split(",") if r.strip())
        print(f"routes = [{listed}]")
    return 0
