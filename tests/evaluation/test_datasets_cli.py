"""`gateway prompts test` and `gateway datasets …` as real subprocesses against a real
gateway on loopback: the suite file uploaded as a dataset revision (none when the
cases are the same), the gateway's run printed, and the exit status a CI gate reads:
0 the run passed, 1 it failed, 2 no run could be made (and none is recorded)."""

from __future__ import annotations

import asyncio
import shlex
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from gateway.appkeys import CAPTURE
from tests.conftest import Gateway, Upstream
from tests.eval_support import ROOT, cli_connection, gateway_config, run_cli
from tests.evaluation.dataset_support import (
    ACME,
    FAILING,
    PASSING,
    VIEWER,
    Caller,
    admins,
    case,
    write_suite,
)
from tests.redis_fixtures import free_port

GatewayFactory = Callable[[str], Awaitable[Gateway]]
# Each command is a new Python process: seconds each on a loaded machine.
pytestmark = pytest.mark.timeout(300)


async def runs_of(gw: Gateway) -> list[str]:
    async with aiohttp.ClientSession() as session:
        runs = await Caller(gw, session).ok("GET", "/prompts/support/runs")
    return [r["verdict"] for r in runs["runs"]]


async def test_prompts_test_exits_0_on_a_pass_and_1_on_a_failure(
    gateway_factory: GatewayFactory, upstream: Upstream, tmp_path: Path
) -> None:
    gw = await gateway_factory(gateway_config(upstream.base_url))
    connection = cli_connection(gw)
    passing = write_suite(tmp_path / "smoke.jsonl", PASSING)
    code, out, err = await run_cli(
        "prompts", "test", "support@v1", "--suite", str(passing), *connection
    )
    assert code == 0, err
    assert "dataset smoke: revision 1 (new)" in err
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["CASE", "RESULT", "LATENCY"]
    assert lines[1].split()[:2] == ["greeting", "pass"] and "fake/mock-gpt" in lines[1]
    assert "$0.0000" in lines[1]  # priced
    assert "2/2 passed (pass rate 1.00, needs 1.00): pass" in out
    assert "of smoke revision 1 recorded on support v1: pass" in out

    code, _, err = await run_cli(
        "prompts", "test", "support@v1", "--suite", str(passing), *connection
    )
    assert code == 0 and "dataset smoke: revision 1 (unchanged)" in err

    failing = write_suite(tmp_path / "failing.jsonl", FAILING)
    code, out, err = await run_cli(
        "prompts", "test", "support@v1", "--suite", str(failing), "--dataset", "smoke", *connection
    )
    assert code == 1, err
    assert "dataset smoke: revision 2 (new)" in err
    assert "2/3 passed" in out and "contains 'banana': not found" in out

    code, out, _ = await run_cli("prompts", "test", "support@v1", "--dataset", "smoke", *connection)
    assert code == 1 and ": fail" in out
    code, out, _ = await run_cli(
        "prompts", "test", "support@v1", "--dataset", "smoke", "--revision", "1", *connection
    )
    assert code == 0 and "of smoke revision 1" in out
    assert await runs_of(gw) == ["pass", "fail", "fail", "pass", "pass"]


async def test_prompts_test_exits_with_why_no_run_could_be_made(
    gateway_factory: GatewayFactory, upstream: Upstream, tmp_path: Path
) -> None:
    gw = await gateway_factory(gateway_config(upstream.base_url, extra=admins()))
    url = gw.url("/").rstrip("/")
    suite = write_suite(tmp_path / "smoke.jsonl", PASSING)
    bad_suite = tmp_path / "bad.jsonl"
    bad_suite.write_text('{"name": "a", "checks": {"json_schema": {"minimun": 1}}}\n')
    nowhere = f"http://127.0.0.1:{free_port()}"
    attempts = [
        (["support@v1", "--suite", str(suite), "--url", url, "--token", "wrong"], "401", 4),
        (["support@v1", "--suite", str(suite), "--url", url, "--token", VIEWER], "403", 4),
        (
            ["support@v1", "--suite", str(suite), "--url", nowhere, "--token", "x"],
            "cannot reach",
            3,
        ),
        (["support@v1", "--dataset", "nope", *cli_connection(gw)], "404: Unknown dataset", 4),
        (["nope@v1", "--suite", str(suite), *cli_connection(gw)], "404: Unknown prompt", 4),
        (["support@v1", "--suite", str(bad_suite), *cli_connection(gw)], "bad.jsonl:1", 2),
        (
            ["support@v1", "--suite", str(tmp_path / "missing.jsonl"), *cli_connection(gw)],
            "cannot read",
            2,
        ),
    ]
    for args, words, status in attempts:  # refused 4, unreachable 3, bad input 2
        code, out, err = await run_cli("prompts", "test", *args)
        assert code == status, (args, out, err)
        assert words in err, (args, err)
        assert "Traceback" not in err
    assert await runs_of(gw) == []  # no failed run recorded for any of them


async def run_shell(command: str, stdin: bytes = b"") -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        "bash",
        "-c",
        "set -o pipefail; " + command,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    out, err = await asyncio.wait_for(process.communicate(stdin), timeout=50)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_a_suite_from_stdin_needs_a_dataset_name(
    gateway_factory: GatewayFactory, upstream: Upstream, tmp_path: Path
) -> None:
    gw = await gateway_factory(gateway_config(upstream.base_url))
    gateway = f"{shlex.quote(sys.executable)} -m gateway"
    connection = " ".join(shlex.quote(a) for a in cli_connection(gw))
    suite = write_suite(tmp_path / "s.jsonl", PASSING).read_bytes()
    code, out, err = await run_shell(
        f"{gateway} prompts test support@v1 --suite - --dataset piped {connection}", suite
    )
    assert code == 0, err
    assert "dataset piped: revision 1 (new)" in err and "2/2 passed" in out
    code, _, err = await run_shell(
        f"{gateway} prompts test support@v1 --suite - {connection}", suite
    )
    assert code == 2 and "needs --dataset NAME" in err


async def test_datasets_commands(
    gateway_factory: GatewayFactory, upstream: Upstream, tmp_path: Path
) -> None:
    gw = await gateway_factory(gateway_config(upstream.base_url, "enabled = true\n"))
    connection = cli_connection(gw)
    suite = write_suite(tmp_path / "faq.jsonl", PASSING)
    code, out, err = await run_cli("datasets", "push", "faq", str(suite), *connection)
    assert code == 0, err
    assert out.strip() == "faq: revision 1 (new revision), 2 cases"
    code, out, _ = await run_cli("datasets", "push", "faq", str(suite), *connection)
    assert out.strip() == "faq: revision 1 (unchanged), 2 cases"

    async with gw.client() as client:
        await client.chat.completions.create(
            model="prompt:support",
            messages=[{"role": "user", "content": "Where is parcel 7?"}],
            extra_body={"prompt_variables": ACME},
            extra_headers={"X-Request-Id": "req-7"},
        )
    await gw.app[CAPTURE].flush()
    code, out, err = await run_cli(
        "datasets", "add-case", "faq", "--from-request", "req-7",
        "--checks", '{"contains": "parcel 7"}', *connection,
    )  # fmt: skip
    assert code == 0, err
    assert out.strip() == "faq: revision 2, added case 'req-req-7'"
    code, _, err = await run_cli(
        "datasets", "add-case", "faq", "--from-request", "req-7", "--checks", "{nope", *connection
    )
    assert code == 2 and "--checks is JSON" in err
    code, _, err = await run_cli(
        "datasets", "add-case", "faq", "--from-request", "gone", *connection
    )
    assert code == 4 and "404: No captured request 'gone'" in err

    code, out, _ = await run_cli("datasets", "list", *connection)
    header, row = out.splitlines()
    assert header.split()[:3] == ["DATASET", "REVISION", "CASES"]
    assert row.split()[:3] == ["faq", "2", "3"] and row.split()[-1] == "admin"
    code, out, _ = await run_cli("datasets", "show", "faq", *connection)
    assert out.splitlines()[0].startswith("faq revision 2 (current 2), 3 cases, by admin")
    assert "  req-req-7: contains" in out
    code, out, _ = await run_cli("datasets", "show", "faq", "--revision", "1", *connection)
    assert "2 cases" in out.splitlines()[0]
    code, _, err = await run_cli("datasets", "show", "nope", *connection)
    assert code == 4 and "404" in err

    code, out, err = await run_cli("prompts", "test", "support@v1", "--dataset", "faq", *connection)
    assert code == 0, out + err  # production's answer contains what was asked
    assert "3/3 passed" in out


async def test_a_closed_pipe_ends_the_command_quietly(
    gateway_factory: GatewayFactory, upstream: Upstream
) -> None:
    gw = await gateway_factory(gateway_config(upstream.base_url))
    many = [case(f"case-{i:04d}-{'x' * 80}", "hi") for i in range(1000)]  # > a pipe's buffer
    async with aiohttp.ClientSession() as session:
        await Caller(gw, session).ok(
            "POST", "/datasets", {"name": "big", "cases": many}, status=201
        )
    gateway = f"{shlex.quote(sys.executable)} -m gateway"
    connection = " ".join(shlex.quote(a) for a in cli_connection(gw))
    code, out, err = await run_shell(f"{gateway} datasets show big {connection} | head -n 1")
    assert code == 0, err
    assert out.startswith("big revision 1") and len(out.splitlines()) == 1
    assert err == ""
