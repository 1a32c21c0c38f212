"""`gateway feedback list` and `gateway captures label|unlabel|show` as real
subprocesses against a real gateway on loopback: labels put on as the token's
identity, feedback listed with its filters, exit 2 when the gateway refuses."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import pytest

from gateway.appkeys import CAPTURE
from tests.conftest import Gateway, Upstream
from tests.eval_support import cli_connection, gateway_config, run_cli
from tests.evaluation.dataset_support import VIEWER, admins
from tests.evaluation.test_capture import ask
from tests.evaluation.test_capture_labels import REVIEWER, REVIEWERS
from tests.evaluation.test_feedback import feedback

GatewayFactory = Callable[[str], Awaitable[Gateway]]
pytestmark = pytest.mark.timeout(300)  # each command is a new Python process


async def test_label_show_and_list_feedback_from_the_command_line(
    gateway_factory: GatewayFactory, upstream: Upstream
) -> None:
    gw = await gateway_factory(
        gateway_config(upstream.base_url, capture="enabled = true\n", extra=admins() + REVIEWERS)
    )
    for request_id in ("req-1", "req-2"):
        await ask(gw, request_id)
    await gw.app[CAPTURE].flush()
    assert (await feedback(gw, {"request_id": "req-1", "score": -1, "comment": "too long"}))[
        0
    ] == 200
    assert (await feedback(gw, {"request_id": "req-2", "score": 1}))[0] == 200
    url = cli_connection(gw)[:2]

    code, out, err = await run_cli(
        "captures",
        "label",
        "req-1",
        "too-long",
        "--note",
        "three screens",
        *url,
        "--token",
        REVIEWER,
    )
    assert code == 0, err
    assert "too-long" in out and "by rita" in out and "three screens" in out
    code, out, err = await run_cli("captures", "show", "req-1", *url, "--token", VIEWER)
    assert code == 0, err
    assert "too-long" in out and "feedback: negative by test-app  too long" in out

    code, out, err = await run_cli(
        "feedback", "list", "--value", "negative", "--since", "1h", *url, "--token", VIEWER
    )
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 2 and "req-1" in lines[1] and "support@v1" in lines[1]
    assert "too long" in lines[1]
    code, out, err = await run_cli(
        "feedback", "list", "--prompt", "support", "--json", *url, "--token", VIEWER
    )
    assert code == 0, err
    assert [e["request_id"] for e in json.loads(out)["feedback"]] == ["req-2", "req-1"]

    # A viewer cannot label; the refusal names the role.
    code, _, err = await run_cli("captures", "label", "req-2", "x", *url, "--token", VIEWER)
    assert code == 4 and "403" in err and "reviewer" in err
    code, out, err = await run_cli(
        "captures", "unlabel", "req-1", "too-long", *url, "--token", REVIEWER
    )
    assert code == 0 and "no labels" in out, err
