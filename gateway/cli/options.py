"""What every command that talks to a running gateway takes, and the environment
variables behind the options (listed in `gateway --help`)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ENVIRONMENT = (
    ("GATEWAY_URL", "the gateway's base URL for the admin commands (--url)"),
    ("GATEWAY_ADMIN_TOKEN", "the admin token they send (--token)"),
    ("GATEWAY_CLIENT_KEY", "the client key `prompts test` sends (--key)"),
)


def environment_help() -> str:
    lines = [f"  {name:<21} {what}" for name, what in ENVIRONMENT]
    return "environment variables:\n" + "\n".join(lines)


def add_gateway_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default=os.environ.get("GATEWAY_URL", "http://127.0.0.1:8080"),
        help="the gateway (GATEWAY_URL; default http://127.0.0.1:8080)",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("GATEWAY_ADMIN_TOKEN", ""),
        help="admin token (GATEWAY_ADMIN_TOKEN)",
    )


def read_input(path: Path) -> str:
    """A file's text; `-` reads standard input."""
    return sys.stdin.read() if str(path) == "-" else path.read_text()
