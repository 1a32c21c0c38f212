"""`gateway rollout start|status|pause|resume|abort`: gradual rollouts from the command
line, through the admin API (`--url`, `--token`, or GATEWAY_URL, GATEWAY_ADMIN_TOKEN).
`--watch` follows a rollout, printing each decision, until it ends."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from typing import Any

from gateway.cli.admin import AdminClient, AdminError, add_connection_args
from gateway.cli.exits import exit_code

_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([smh]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600}
# --flag -> guard name, type
GUARD_FLAGS: dict[str, type] = {
    "min_requests": int,
    "max_error_rate_increase": float,
    "max_p95_latency_ratio": float,
    "max_p95_ttft_ratio": float,
    "max_cost_ratio": float,
    "max_negative_feedback_increase": float,
    "min_feedback": int,
    "latency_floor_s": float,
}
WATCH_POLL_S = 2.0


def parse_interval(text: str) -> float:
    """`90s`, `10m`, `1h` or seconds."""
    match = _DURATION.match(text)
    if match is None or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (like 30s, 10m, 1h)")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_steps(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"steps look like 5,25,50,100, not {text!r}") from None


def add_rollout_parser(commands: Any) -> None:
    rollout = commands.add_parser("rollout", help="gradual rollouts with automatic analysis")
    sub = rollout.add_subparsers(dest="rollout_command", required=True)
    start = sub.add_parser("start", help="start a rollout: NAME vN")
    start.add_argument("name")
    start.add_argument("version")
    start.add_argument("--steps", type=parse_steps, default=[5, 25, 50, 100], metavar="5,25,...")
    start.add_argument("--interval", type=parse_interval, default=600.0, metavar="10m")
    start.add_argument("--on-breach", choices=("rollback", "pause"), default="rollback")
    for guard, kind in GUARD_FLAGS.items():
        start.add_argument(f"--{guard.replace('_', '-')}", dest=guard, type=kind)
    parsers = [start]
    for command, text in (
        ("status", "the rollout's state, weights and decisions"),
        ("pause", "stop promoting (the weights stay)"),
        ("resume", "go on from the current step, with a fresh window"),
        ("abort", "stop and restore the baseline routing"),
    ):
        parser = sub.add_parser(command, help=text)
        parser.add_argument("name")
        parsers.append(parser)
    for parser in parsers:
        add_connection_args(parser)
        parser.add_argument("--watch", action="store_true", help="follow it until it ends")


def run_rollout(args: argparse.Namespace) -> int:
    client = AdminClient(args.url, args.token)
    path = f"/prompts/{args.name}/rollout"
    command = args.rollout_command
    try:
        if command == "start":
            guards = {g: getattr(args, g) for g in GUARD_FLAGS if getattr(args, g) is not None}
            body = {
                "version": args.version,
                "steps": args.steps,
                "interval_s": args.interval,
                "on_breach": args.on_breach,
                "guards": guards,
            }  # who starts it is the token's identity
            answer = client.call("POST", path, body)
        elif command == "status":
            answer = client.call("GET", path)
        elif command == "abort":
            answer = client.call("DELETE", path)
        else:
            answer = client.call("POST", f"{path}/{command}", {})
        if args.json:
            print(json.dumps(answer, indent=2))
        else:
            print_status(answer)
        if args.watch:
            return watch(client, path, answer)
    except AdminError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exit_code(exc)
    return 0


def watch(client: AdminClient, path: str, answer: dict[str, Any]) -> int:
    """Print each new decision until the rollout stops running: 0 once completed."""
    seen = len(answer["events"])
    while answer["state"] == "running":
        time.sleep(WATCH_POLL_S)
        answer = client.call("GET", path)
        for event in answer["events"][seen:]:
            print(describe_event(event))
        seen = len(answer["events"])
    print(f"{answer['prompt']}: {answer['version']} {answer['state']}")
    return 0 if answer["state"] == "completed" else 1


def print_status(answer: dict[str, Any]) -> None:
    weights = " ".join(f"{v}={w}" for v, w in answer["weights"].items())
    line = f"{answer['prompt']}: {answer['version']} {answer['state']} at {answer['step']}%"
    line += f" ({weights}), steps {','.join(str(s) for s in answer['steps'])}"
    if answer["state"] == "running":
        line += f", next check in {max(answer['next_check_at'] - time.time(), 0):.0f}s"
    if answer.get("driver"):
        line += f", driven by {answer['driver']}"
    print(line)
    for event in answer["events"][-10:]:
        print("  " + describe_event(event))


def describe_event(event: dict[str, Any]) -> str:
    at = time.strftime("%H:%M:%S", time.localtime(event["at"]))
    return f"{at} {event['event']:<8} {event['step']:>3}%  {event['reason']}"
