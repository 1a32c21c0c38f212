"""The `gateway` command: serve, check-config, keys, admins, mock-provider."""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import logging
import logging.handlers
import os
import secrets
import sys
from collections.abc import Sequence

from aiohttp import web

from gateway import __version__
from gateway.cli.admin import (
    AdminError,
    add_prompts_parser,
    add_shadow_parser,
    run_prompts,
    run_shadow,
)
from gateway.cli.datasets import add_dataset_parsers, run_datasets
from gateway.cli.evaluation import add_eval_parsers, run_eval
from gateway.cli.exits import FAILED, USAGE, exit_codes_help
from gateway.cli.feedback import add_feedback_parsers, run_feedback
from gateway.cli.keys import add_keys_parser, run_keys
from gateway.cli.options import environment_help
from gateway.cli.prompt_changes import add_change_parsers, run_change
from gateway.cli.replay import add_replay_parser, run_replay
from gateway.cli.review import add_review_parser, run_review
from gateway.cli.rollout import add_rollout_parser, run_rollout
from gateway.cli.serving import serve_app
from gateway.cli.spend import add_spend_parser, run_spend
from gateway.cli.supervisor import WORKER_ENV, Supervisor, exit_with_parent
from gateway.config.control import ROLES
from gateway.config.loader import GatewayConfig
from gateway.config.source import ConfigError
from gateway.guards.schemas import load_checked
from gateway.telemetry.logs import setup_logging


def main(argv: Sequence[str] | None = None) -> int:
    """A reader that closes the pipe early (`gateway … | head`) ends the command quietly:
    exit 0, no traceback (the output was wanted only in part)."""
    try:
        return _main(argv)
    except AdminError as exc:  # any command's, where its group did not report it
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that the flush at exit cannot fail again
        return 0


def _main(argv: Sequence[str] | None) -> int:
    parser = argparse.ArgumentParser(
        prog="gateway",
        description=__doc__,
        epilog=environment_help() + "\n\n" + exit_codes_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"gateway {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", default="config/gateway.toml")
    serve.add_argument("--host", help="override server.host")
    serve.add_argument("--port", type=int, help="override server.port")

    check = commands.add_parser("check-config", help="validate a config file")
    check.add_argument("file", help="the config file (- for stdin)")

    add_keys_parser(commands)  # keys create|list|show|rotate|revoke

    admins = commands.add_parser("admins", help="admin identities")
    admins_commands = admins.add_subparsers(dest="admins_command", required=True)
    admin = admins_commands.add_parser("create", help="make a token for an admin identity")
    admin.add_argument("--name", required=True)
    admin.add_argument("--roles", required=True, help=f"comma-separated, from: {', '.join(ROLES)}")

    mock = commands.add_parser("mock-provider", help="run a fake OpenAI/Anthropic upstream")
    mock.add_argument("--host", default="127.0.0.1")
    mock.add_argument("--port", type=int, default=9100)
    mock.add_argument("--latency-ms", type=int, default=0)
    mock.add_argument("--error-rate", type=float, default=0.0)
    mock.add_argument("--chunk-delay-ms", type=int, default=0)
    mock.add_argument("--seed", type=int)

    prompt_commands = add_prompts_parser(commands)
    add_dataset_parsers(commands, prompt_commands)  # datasets, prompts test
    add_eval_parsers(commands)  # suite add
    add_change_parsers(prompt_commands)  # prompts diff, runbook, label, history, rollback
    add_shadow_parser(commands)
    add_rollout_parser(commands)
    add_replay_parser(commands)
    add_spend_parser(commands)
    add_feedback_parsers(commands)  # feedback list, captures label|unlabel|show
    add_review_parser(commands)  # review list|show|approve|reject

    args = parser.parse_args(argv)
    if getattr(args, "feedback_command", None):
        return run_feedback(args)
    if getattr(args, "eval_command", None):
        return run_eval(args)
    if getattr(args, "replay_command", None):
        return run_replay(args)
    if getattr(args, "dataset_command", None):
        return run_datasets(args)
    if getattr(args, "change_command", None):
        return run_change(args)
    if getattr(args, "review_command", None):
        return run_review(args)
    if args.command == "serve":
        return _serve(args.config, args.host, args.port)
    if args.command == "check-config":
        return _check(args.file)
    if args.command == "keys":
        return run_keys(args)
    if args.command == "admins":
        return _create_admin(args.name, args.roles)
    if args.command == "prompts":
        return run_prompts(args)
    if args.command == "shadow":
        return run_shadow(args)
    if args.command == "rollout":
        return run_rollout(args)
    if args.command == "spend":
        return run_spend(args)
    return _mock_provider(args)


def _load(path: str, text: str | None = None) -> GatewayConfig | None:
    try:
        return load_checked(path, text=text)  # load_config, and the guards' schemas in full
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return None


def _check(path: str) -> int:
    config = _load(path, sys.stdin.read() if path == "-" else None)
    if config is None:
        return FAILED  # the check's verdict
    print(
        f"{path}: ok (hash {config.hash}; {len(config.models)} routes, "
        f"{len(config.providers)} providers, {len(config.prompts)} prompts)"
    )
    return 0


def _serve(path: str, host: str | None, port: int | None) -> int:
    config = _load(path)
    if config is None:
        return USAGE
    listener = setup_logging(config.logging.level)
    log = logging.getLogger("gateway")
    bind_host, bind_port = host or config.server.host, port or config.server.port
    if config.server.allow_unauthenticated and bind_host not in ("127.0.0.1", "localhost", "::1"):
        log.warning(
            "server.allow_unauthenticated is true on %s: any caller can spend your "
            "provider keys; add [[keys]] and set it to false",
            bind_host,
        )
    if config.server.workers > 1 and not os.environ.get(WORKER_ENV):
        log.info(
            "gateway on http://%s:%d with %d workers (config %s, hash %s)",
            bind_host,
            bind_port,
            config.server.workers,
            path,
            config.hash,
        )
        try:
            server = config.server
            drain_s = server.drain_delay_s + server.drain_timeout_s  # each worker's, at most
            return Supervisor(path, bind_host, bind_port, server.workers, drain_s).run()
        finally:
            listener.stop()
    log.info(
        "gateway listening on http://%s:%d (pid %d, config %s, hash %s)",
        bind_host,
        bind_port,
        os.getpid(),
        path,
        config.hash,
    )
    from gateway.app import create_app  # here: the admin commands start without the app

    app = create_app(config)
    if os.environ.get(WORKER_ENV):
        app.cleanup_ctx.append(exit_with_parent())
    app.on_startup.append(_freeze_startup_objects)  # runs after the cleanup contexts start
    try:
        serve_app(
            app,
            _new_loop(),
            bind_host,
            bind_port,
            config.server,
            reuse_port=bool(os.environ.get(WORKER_ENV)),
        )
    finally:
        listener.stop()
    return 0


async def _freeze_startup_objects(app: web.Application) -> None:
    # What start-up made lives as long as the process: out of the collector's way, so
    # its full collections (pauses in the latency tail) walk only request-time objects.
    gc.freeze()


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def _create_admin(name: str, roles: str) -> int:
    chosen = [r.strip() for r in roles.split(",") if r.strip()]
    unknown = [r for r in chosen if r not in ROLES]
    if unknown or not chosen:
        print(f"error: roles are {', '.join(ROLES)}; not {unknown or roles!r}", file=sys.stderr)
        return USAGE
    token = "gwa-" + secrets.token_urlsafe(32)
    digest = hashlib.sha256(token.encode()).hexdigest()
    print(f"New admin token for {name} (shown once, store it now):\n\n    {token}\n")
    print("Add to the config file (reloaded live):\n")
    print("[[admins]]")
    print(f'name = "{name}"')
    print(f'sha256 = "{digest}"')
    print("roles = [" + ", ".join(f'"{r}"' for r in chosen) + "]")
    return 0


def _mock_provider(args: argparse.Namespace) -> int:
    from gateway.providers.mock_server import MockServerOptions, run_mock_server

    options = MockServerOptions(
        latency_ms=args.latency_ms,
        error_rate=args.error_rate,
        chunk_delay_ms=args.chunk_delay_ms,
        seed=args.seed,
    )
    run_mock_server(args.host, args.port, options)
    return 0
