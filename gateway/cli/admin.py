"""`gateway prompts …`, `gateway shadow …`: the admin API from the command line
(`--url`, `--token`, or GATEWAY_URL and GATEWAY_ADMIN_TOKEN)."""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from gateway.cli.exits import GATEWAY_ERROR, UNREACHABLE, USAGE, exit_code, for_status
from gateway.cli.options import add_gateway_options, read_input


class AdminError(Exception):
    """What a command reports; `exit_code` is its exit status (gateway.cli.exits)."""

    def __init__(self, message: str, exit_code: int = USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class AdminClient:
    def __init__(self, url: str, token: str, timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s

    def call(self, method: str, path: str, body: Any = None) -> Any:
        answer = self._send(method, path, body)
        try:
            return json.loads(answer or b"null")
        except ValueError:
            raise AdminError(
                f"{self.url} did not answer {path} with JSON: is it the gateway?", GATEWAY_ERROR
            ) from None

    def text(self, method: str, path: str) -> str:
        """An answer that is not JSON (a runbook's Markdown)."""
        return self._send(method, path, None).decode()

    def _send(self, method: str, path: str, body: Any) -> bytes:
        data = None if body is None else json.dumps(body).encode()
        try:
            request = urllib.request.Request(
                f"{self.url}/admin{path}",
                data=data,
                method=method,
                headers={
                    "Authorization": f"Bearer {self.token}",
                    "Content-Type": "application/json",
                },
            )
        except ValueError as exc:  # a URL urllib cannot use: the user's input
            raise AdminError(f"not a gateway URL: {self.url!r} ({exc})", USAGE) from None
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                answer: bytes = response.read()
                return answer
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read())["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = exc.reason
            raise AdminError(f"{exc.code}: {message}", for_status(exc.code)) from None
        except urllib.error.URLError as exc:
            raise AdminError(f"cannot reach {self.url}: {exc.reason}", UNREACHABLE) from None
        except (TimeoutError, ConnectionError, http.client.HTTPException) as exc:
            # Cut off or silent after the connection was made.
            raise AdminError(f"no answer from {self.url}: {exc!r}", UNREACHABLE) from None


def add_connection_args(parser: argparse.ArgumentParser) -> None:
    add_gateway_options(parser)
    parser.add_argument("--json", action="store_true", help="print the raw JSON answer")


def add_prompts_parser(commands: Any) -> Any:
    """Returns the `prompts` subcommands, for other modules to add theirs."""
    prompts = commands.add_parser("prompts", help="prompt versions and routing")
    sub = prompts.add_subparsers(dest="prompts_command", required=True)
    add_connection_args(sub.add_parser("list", help="every prompt with its routing"))
    show = sub.add_parser("show", help="one prompt's versions and routing")
    show.add_argument("name")
    push = sub.add_parser("push", help="push the prompts of a TOML or JSON file as versions")
    push.add_argument("file", help="TOML or JSON (- for stdin)")
    approve = sub.add_parser("approve", help="approve a version")
    approve.add_argument("name")
    approve.add_argument("version")
    approve.add_argument("--note", default="")
    weights = sub.add_parser("weights", help="set live weights: NAME v1=90 v2=10")
    weights.add_argument("name")
    weights.add_argument("weights", nargs="+", metavar="vN=PCT")
    weights.add_argument("--shadow", nargs="*", default=[], metavar="vN")
    weights.add_argument("--sample-rate", type=float)
    weights.add_argument("--reason", default="")
    for parser in (show, push, approve, weights):
        add_connection_args(parser)
    return sub  # diff, runbook, label, history, rollback: gateway.cli.prompt_changes


def run_prompts(args: argparse.Namespace) -> int:
    client = AdminClient(args.url, args.token)
    try:
        answer = _prompts_call(client, args)
    except AdminError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exit_code(exc)
    if isinstance(answer, dict) and answer.get("stale"):
        age = answer.get("snapshot_age_s") or 0
        print(
            f"warning: the store is unreachable; this is the gateway's snapshot, {age:.0f} s old",
            file=sys.stderr,
        )
    if args.json:
        print(json.dumps(answer, indent=2))
    else:
        _print(args.prompts_command, answer)
    return 0


def _prompts_call(client: AdminClient, args: argparse.Namespace) -> Any:
    command = args.prompts_command
    if command == "list":
        return client.call("GET", "/prompts")
    if command == "show":
        return client.call("GET", f"/prompts/{args.name}")
    if command == "push":
        return [
            {"name": name, **client.call("POST", f"/prompts/{name}/versions", body)}
            for name, body in read_prompt_file(Path(args.file)).items()
        ]
    if command == "approve":
        return client.call(
            "POST", f"/prompts/{args.name}/versions/{args.version}/approve", {"note": args.note}
        )
    if command == "weights":
        body: dict[str, Any] = {"weights": parse_weights(args.weights), "reason": args.reason}
        if args.shadow or args.sample_rate is not None:
            body["shadow"] = {
                "versions": args.shadow,
                "sample_rate": 1.0 if args.sample_rate is None else args.sample_rate,
            }
        return client.call("PUT", f"/prompts/{args.name}/routing", body)
    raise AdminError(f"unknown command {command!r}")


def parse_weights(items: list[str]) -> dict[str, int]:
    weights = {}
    for item in items:
        version, _, pct = item.partition("=")
        if not pct.isdigit():
            raise AdminError(f"weights look like v1=90, not {item!r}")
        weights[version] = int(pct)
    return weights


CONFIG_ONLY = ("require_suite", "min_pass_rate")


def read_prompt_file(path: Path) -> dict[str, dict[str, Any]]:
    """`[prompts.NAME]` tables (TOML, as in the config file) or `{NAME: {...}}` (JSON)."""
    try:
        text = read_input(path)
        as_json = path.suffix == ".json" or (str(path) == "-" and text.lstrip().startswith("{"))
        data = json.loads(text) if as_json else tomllib.loads(text)
    except (OSError, ValueError) as exc:
        raise AdminError(f"cannot read {path}: {exc}") from None
    prompts = data.get("prompts", data) if isinstance(data, dict) else None
    if not isinstance(prompts, dict) or not prompts:
        raise AdminError(f"{path} has no prompts")
    bodies = {}
    for name, body in prompts.items():
        if not isinstance(body, dict):
            raise AdminError(f"{path}: prompt {name!r} is not a table")
        gates = [k for k in CONFIG_ONLY if k in body]
        if gates:
            print(
                f"warning: {name}: {', '.join(gates)} not sent: approval gates are set in "
                f"[prompts.{name}] of the gateway's config file",
                file=sys.stderr,
            )
        # Everything else goes as it is (content, targets, note, documentation): a field
        # the gateway does not know is its 400, never dropped here.
        bodies[name] = {k: v for k, v in body.items() if k not in CONFIG_ONLY}
    return bodies


def _print(command: str, answer: Any) -> None:
    if command == "list":
        for prompt in answer["prompts"]:
            print(
                f"{prompt['name']:<24} {_weights(prompt['routing'])}  "
                f"({len(prompt['versions'])} versions)"
            )
    elif command == "show":
        print(f"{answer['name']}: {_weights(answer['routing'])}")
        for v in answer["versions"]:
            print(
                f"  {v['version']:<5} {v['status']:<9} {v['hash'][:12]}  model={v['model']}  "
                f"by {v['created_by'] or '-'}"
            )
    elif command == "push":
        for item in answer:
            print(f"{item['name']}: {item['version']} ({item['status']}, {item['hash'][:12]})")
    elif command == "weights":
        print(f"routing now {_weights(answer['after'])}")
    else:
        print(f"{answer['version']}: {answer['status']} (by {answer['approved_by']})")


def _weights(routing: dict[str, Any] | None) -> str:
    if not routing:
        return "no routing"
    text = " ".join(f"{v}={w}" for v, w in routing["weights"].items())
    shadow = routing.get("shadow") or {}
    if shadow.get("versions"):
        text += f" shadow={','.join(shadow['versions'])}@{shadow['sample_rate']:g}"
    return text


def add_shadow_parser(commands: Any) -> None:
    shadow = commands.add_parser("shadow", help="shadow traffic against its primary")
    sub = shadow.add_subparsers(dest="shadow_command", required=True)
    report = sub.add_parser("report", help="primary and shadow side by side")
    report.add_argument("name", help="a prompt (or, with --route, a route alias)")
    report.add_argument("--route", action="store_true", help="NAME is a route's alias")
    report.add_argument("--since", default="1h", help="how far back: 3600, 30m, 1h, 7d")
    add_connection_args(report)


def run_shadow(args: argparse.Namespace) -> int:
    client = AdminClient(args.url, args.token)
    kind = "models" if args.route else "prompts"
    since = urllib.parse.quote(args.since)
    try:
        answer = client.call("GET", f"/{kind}/{args.name}/shadow?since={since}")
    except AdminError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exit_code(exc)
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0
    print(f"{answer['kind']} {answer['name']}: shadow traffic over the last {args.since}")
    if not answer["comparisons"]:
        print("  nothing mirrored yet")
    header = "requests  errors  p50 ms  p95 ms  ttft p50  ttft p95  in/req  out/req  usd/req"
    for row in answer["comparisons"]:
        primary, shadow = row["primary"], row["shadow"]
        print(f"\n{primary['label']} -> {shadow['label']}")
        print(f"  {'':<24}{header}")
        for role, side in (("primary", primary), ("shadow", shadow)):
            print(f"  {role + ' ' + side['label']:<24}{_side(side)}")
        agreement = row["agreement"]
        print(
            f"  agreement: exact {_pct(agreement['exact_match_rate'])}, similarity "
            f"{_num(agreement['similarity'], '.2f')} over {agreement['compared']} pairs; "
            f"dropped {row['dropped']}"
        )
    return 0


def _side(side: dict[str, Any]) -> str:
    latency, ttft = side["latency_ms"], side["ttft_ms"]
    return (
        f"{side['requests']:>8}  {_pct(side['error_rate']):>6}  {_num(latency['p50']):>6}  "
        f"{_num(latency['p95']):>6}  {_num(ttft['p50']):>8}  {_num(ttft['p95']):>8}  "
        f"{_num(side['input_tokens_per_request']):>6}  "
        f"{_num(side['output_tokens_per_request']):>7}  "
        f"{_num(side['cost_usd_per_request'], '.6f'):>7}"
    )


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _num(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)
