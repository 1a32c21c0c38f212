"""Replays the gateway runs and keeps: captured production traffic sent through a
candidate version (a slower, wordier model with its own price) on the built-in mock
provider, the kept result's numbers checked against what the mock was set to return,
a pinned baseline instead of production, and the reports the CLI renders from the
kept result."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from gateway.appkeys import CAPTURE
from tests.conftest import CLIENT_TOKEN, Gateway
from tests.eval_support import ADMIN, ROOT, Admin, run_cli
from tests.redis_fixtures import RedisServer

GatewayFactory = Callable[[str], Awaitable[Gateway]]
SLOW_MODEL = "slow=150+words=12"
VIEWER_TOKEN = "viewer-secret-token"


def replay_config(redis_url: str = "", capture: bool = True, extra: str = "") -> str:
    """Prompt `support` on route `chat` (the built-in mock, echoing), routes `slowwords`
    (slow, 12 words, dearer) and `broken` (always 500), capture on, prices for both."""
    text = f"""
        [server]
        admin_token = "{ADMIN}"
        request_timeout_s = 30

        [logging]
        access_log = false

        [providers.mock]
        type = "mock"

        [models.chat]
        targets = [{{ provider = "mock", model = "echo" }}]

        [models.slowwords]
        targets = [{{ provider = "mock", model = "{SLOW_MODEL}" }}]

        [models.broken]
        targets = [{{ provider = "mock", model = "error=500" }}]
        retries_per_target = 0

        [pricing.echo]
        input_per_mtok = 1.0
        output_per_mtok = 2.0

        [pricing."{SLOW_MODEL}"]
        input_per_mtok = 3.0
        output_per_mtok = 5.0

        [[keys]]
        name = "test-app"
        sha256 = "{{key_sha256}}"

        [[admins]]
        name = "vera"
        sha256 = "{hashlib.sha256(VIEWER_TOKEN.encode()).hexdigest()}"
        roles = ["viewer"]

        [prompts.support]
        model = "chat"
        messages = [{{ role = "system", content = "You answer for {{{{product}}}}." }}]
        params = {{ temperature = 0.2 }}

        [capture]
        enabled = {"true" if capture else "false"}
    """
    if redis_url:
        text += f"""
        [redis]
        url = "{redis_url}"
        prefix = "gwtest:"
        poll_interval_s = 0.05
        socket_timeout_s = 10
        connect_timeout_s = 5
        """
    return text + extra


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def production(gw: Gateway, count: int) -> None:
    """`count` captured requests on support v1: 4 + 4 words in, 7 words out."""
    async with gw.client(api_key=CLIENT_TOKEN) as client:
        for start in range(0, count, 50):
            await asyncio.gather(
                *(
                    client.chat.completions.create(
                        model="prompt:support",
                        messages=[{"role": "user", "content": f"question number {i} please"}],
                        extra_body={"prompt_variables": {"product": "Acme"}},
                        extra_headers={"X-Request-Id": f"prod-{i}"},
                    )
                    for i in range(start, min(start + 50, count))
                )
            )
    await gw.app[CAPTURE].flush()


async def push(gw: Gateway, session: aiohttp.ClientSession, route: str, version: str) -> None:
    """A draft of support on `route` (pinned replays need no approval)."""
    content = {
        "model": route,
        "messages": [{"role": "system", "content": "Answer as {{product}} support."}],
    }
    status, body = await Admin(gw, session).call("POST", "/prompts/support/versions", content)
    assert (status, body["version"]) == (201, version), body


def connection(gw: Gateway, token: str = ADMIN) -> list[str]:
    return ["--url", gw.url("/").rstrip("/"), "--token", token]


def embedded_data(page: str) -> dict[str, Any]:
    match = re.search(
        r'<script type="application/json" id="replay-data">(.*?)</script>', page, re.S
    )
    assert match is not None
    data: dict[str, Any] = json.loads(match.group(1))
    return data


async def run_into_closed_pipe(*args: str) -> tuple[int, str]:
    """The CLI writing to a reader that has gone (`… | head` done reading)."""
    read, write = os.pipe()
    os.close(read)
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", *args,
            stdout=write, stderr=asyncio.subprocess.PIPE, cwd=ROOT,
        )  # fmt: skip
    finally:
        os.close(write)
    _, err = await asyncio.wait_for(process.communicate(), timeout=50)
    assert process.returncode is not None
    return process.returncode, err.decode()


def replay_id(out: str) -> str:
    match = re.search(r"^replay (rp[0-9a-f]+) of ", out, re.M)
    assert match is not None, out
    return match.group(1)


async def test_a_replay_of_200_captured_requests_is_kept_and_rendered_from_the_kept_result(
    redis_server: RedisServer,
    gateway_factory: GatewayFactory,
    session: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    gw = await gateway_factory(replay_config(redis_server.url))
    await production(gw, 200)
    assert gw.app[CAPTURE].writer.written == 200  # every one in Redis
    await push(gw, session, "slowwords", "v2")
    html, markdown = tmp_path / "out" / "report.html", tmp_path / "report.md"
    code, out, err = await run_cli(
        "replay", "support", "--candidate", "v2", "--since", "1h", "--concurrency", "16",
        "--html", str(html), "--markdown", str(markdown), *connection(gw),
    )  # fmt: skip
    assert code == 0, err
    assert "through v2, against production" in out
    assert "agreement       exact 0/200" in out
    assert "verdict: pass (no fail_on thresholds given)" in out
    assert "replaying up to 200 requests of support" in err  # shown while it runs

    status, kept = await Admin(gw, session).call(
        "GET", f"/prompts/support/replays/{replay_id(out)}"
    )
    assert status == 200
    assert embedded_data(html.read_text()) == kept  # the page renders the kept result
    assert (kept["prompt"], kept["candidate"], kept["baseline"]) == ("support", "v2", None)
    assert kept["by"] == "admin" and kept["window"]["since"] == "1h"
    assert kept["counts"] == {
        "requests": 200, "compared": 200, "reference_errors": 0, "candidate_errors": 0,
    }  # fmt: skip
    assert kept["started_at"] <= kept["finished_at"] and kept["finished_at"].endswith("Z")
    numbers = kept["numbers"]
    production_side, candidate = numbers["reference"], numbers["candidate"]
    assert candidate["latency_ms"]["p50"] >= 150  # slow=150
    assert candidate["latency_ms"]["p50"] > production_side["latency_ms"]["p50"]
    assert candidate["ttft_ms"]["n"] == 200 and candidate["ttft_ms"]["p50"] >= 150
    assert production_side["ttft_ms"]["n"] == 0  # production did not stream
    assert (production_side["input_tokens"], production_side["output_tokens"]) == (8, 7)
    assert (candidate["input_tokens"], candidate["output_tokens"]) == (8, 12)  # words=12
    assert production_side["cost_usd"] == pytest.approx((8 * 1.0 + 7 * 2.0) / 1e6)
    assert candidate["cost_usd"] == pytest.approx((8 * 3.0 + 12 * 5.0) / 1e6)
    assert candidate["cost_usd_total"] == pytest.approx(200 * (8 * 3.0 + 12 * 5.0) / 1e6)
    agreement = numbers["agreement"]
    assert (agreement["compared"], agreement["exact"], agreement["exact_rate"]) == (200, 0, 0.0)
    assert agreement["similarity_mean"] < 0.5
    assert sum(agreement["histogram"]) == 200
    assert len(kept["differences"]) == 10 and len(kept["samples"]) == 200
    assert all(d["input"].startswith("question number") for d in kept["differences"])
    assert kept["verdict"] == {"result": "pass", "failed": [], "checks": []}

    summary = markdown.read_text()
    assert "| requests | 200 | 200 |  |" in summary
    assert "| cost / request | $0.000022 | $0.000084 | 3.8x |" in summary
    assert "| exact agreement |  | 0.0% | of 200 |" in summary
    assert "#### Cases that differ most" in summary
    page = html.read_text()
    assert "<svg" in page and page.count("<polyline") >= 3  # latency and TTFT curves
    for external in ("<link", " src=", "href=", "url(", "@import"):
        assert external not in page  # self-contained

    status, listed = await Admin(gw, session).call("GET", "/prompts/support/replays")
    assert status == 200 and listed["count"] == 1
    assert listed["replays"][0]["id"] == kept["id"] and "samples" not in listed["replays"][0]
    status, history = await Admin(gw, session).call("GET", "/prompts/support/history")
    entry = history["history"][0] if isinstance(history, dict) else history[0]
    assert (entry["kind"], entry["version"], entry["by"]) == ("replay", "v2", "admin")
    assert entry["detail"]["replay"] == kept["id"] and entry["detail"]["verdict"] == "pass"
    assert entry["detail"]["requests"] == 200


async def test_a_replay_against_a_pinned_baseline_and_shown_again(
    gateway_factory: GatewayFactory, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    gw = await gateway_factory(replay_config())
    await production(gw, 12)
    status, kept = await Admin(gw, session).call(
        "POST",
        "/prompts/support/replays",
        {"candidate": "v1", "baseline": "v1", "limit": 5, "fail_on": {"min_similarity": 1}},
    )
    assert status == 201, kept
    assert kept["counts"]["requests"] == 5 and kept["baseline"] == "v1"
    assert kept["numbers"]["reference"]["ttft_ms"]["n"] == 5  # the baseline was replayed
    assert kept["numbers"]["agreement"]["exact_rate"] == 1.0 and kept["differences"] == []
    assert kept["verdict"]["checks"] == [
        {"name": "min_similarity", "value": 1.0, "limit": 1.0, "passed": True}
    ]

    markdown = tmp_path / "again.md"
    code, out, err = await run_cli(
        "replay", "show", "support", kept["id"], "--markdown", str(markdown), *connection(gw)
    )
    assert code == 0, err
    assert f"replay {kept['id']} of support: 5 requests through v1, against baseline v1" in out
    text = markdown.read_text()
    assert "baseline v1" in text and "| min_similarity | 1 | >= 1 | pass |" in text

    code, _, err = await run_cli("replay", "show", "support", "rp0nope", *connection(gw))
    assert code == 4 and "404" in err


async def test_fail_on_gates_ci_exit_1_on_a_regression_and_0_on_a_clean_candidate(
    gateway_factory: GatewayFactory, session: aiohttp.ClientSession
) -> None:
    gw = await gateway_factory(replay_config())
    await production(gw, 20)
    await push(gw, session, "broken", "v2")  # every request a 500
    gate = "error_rate_increase=0.02,min_similarity=0.9"
    code, out, err = await run_cli(
        "replay", "support", "--candidate", "v2", "--fail-on", gate, *connection(gw)
    )
    assert code == 1, err
    assert "verdict: fail (error_rate_increase 1 (limit <= 0.02); min_similarity" in out
    status, kept = await Admin(gw, session).call(
        "GET", f"/prompts/support/replays/{replay_id(out)}"
    )
    assert status == 200
    assert kept["verdict"]["result"] == "fail"
    assert kept["verdict"]["failed"] == ["error_rate_increase", "min_similarity"]
    assert kept["counts"]["candidate_errors"] == 20
    assert kept["fail_on"] == {"error_rate_increase": 0.02, "min_similarity": 0.9}

    code, err = await run_into_closed_pipe("replay", "show", "support", kept["id"], *connection(gw))
    assert code == 1 and "Traceback" not in err  # `| head`: still the verdict's status

    code, out, err = await run_cli(
        "replay", "support", "--candidate", "v1", "--fail-on", gate, *connection(gw)
    )  # v1 answers as production did
    assert code == 0, err
    assert "verdict: pass (2 checks)" in out
    status, listed = await Admin(gw, session).call("GET", "/prompts/support/replays")
    assert [r["verdict"]["result"] for r in listed["replays"]] == ["pass", "fail"]  # newest first


async def test_a_replay_that_cannot_run_exits_with_why_and_keeps_nothing(
    gateway_factory: GatewayFactory, session: aiohttp.ClientSession
) -> None:
    gw = await gateway_factory(replay_config(capture=False))
    await production(gw, 3)  # answered, never captured
    replay = ("replay", "support", "--candidate", "v1")
    unreachable = ["--url", "http://127.0.0.1:9", "--token", ADMIN]
    runs = await asyncio.gather(
        run_cli(*replay, *connection(gw)),
        run_cli(*replay, *connection(gw, "wrong-token")),
        run_cli(*replay, *connection(gw, VIEWER_TOKEN)),
        run_cli(*replay, *unreachable),
        run_cli(*replay, "--fail-on", "p99=2", *connection(gw)),
        run_cli(*replay, "--fail-on", "cost_ratio=lots", *connection(gw)),
    )
    said = (  # refused by the gateway 4, unreachable 3, bad input 2
        ("409: No captured requests of prompt 'support'", 4),
        ("401", 4),
        ("needs the author role", 4),
        ("cannot reach", 3),
        ("unknown --fail-on threshold 'p99'", 2),
        ("--fail-on cost_ratio needs a number", 2),
    )
    for (code, _, err), (reason, status) in zip(runs, said, strict=True):
        assert code == status and reason in err, err
        assert "Traceback" not in err

    admin = Admin(gw, session)
    status, listed = await admin.call("GET", "/prompts/support/replays")
    assert (status, listed["count"]) == (200, 0)
    status, history = await admin.call("GET", "/prompts/support/history")
    entries = history["history"] if isinstance(history, dict) else history
    assert status == 200 and not [e for e in entries if e["kind"] == "replay"]


async def test_the_replay_routes_refuse_what_they_cannot_run(
    gateway_factory: GatewayFactory, session: aiohttp.ClientSession
) -> None:
    gw = await gateway_factory(replay_config())
    admin = Admin(gw, session)
    status, body = await admin.call("POST", "/prompts/support/replays", {"candidate": "v1"})
    assert (status, body["error"]["code"]) == (409, "no_captures")
    await production(gw, 2)
    for ask, status_code, code in (
        ({"candidate": "v9"}, 404, "version_not_found"),
        ({"candidate": "v1", "baseline": "v7"}, 404, "version_not_found"),
        ({"candidate": "v1", "fail_on": {"p99": 2}}, 400, None),
        ({"candidate": "v1", "limit": 100_000}, 400, None),
        ({"candidate": "v1", "since": "soon"}, 400, None),
        ({"candidate": "v1", "by": "somebody-else"}, 400, "by_not_trusted"),
    ):
        status, body = await admin.call("POST", "/prompts/support/replays", ask)
        assert status == status_code, (ask, body)
        assert code is None or body["error"]["code"] == code
    status, body = await admin.call("POST", "/prompts/nobody/replays", {"candidate": "v1"})
    assert (status, body["error"]["code"]) == (404, "prompt_not_found")
    status, body = await admin.call("GET", "/prompts/support/replays/rp0")
    assert (status, body["error"]["code"]) == (404, "replay_not_found")
    status, listed = await admin.call("GET", "/prompts/support/replays")
    assert listed["count"] == 0


async def test_replays_are_never_captured_and_count_as_replay_traffic(
    gateway_factory: GatewayFactory, session: aiohttp.ClientSession
) -> None:
    gw = await gateway_factory(replay_config())
    await production(gw, 6)
    admin = Admin(gw, session)
    body = {"candidate": "v1", "baseline": "v1"}
    status, kept = await admin.call("POST", "/prompts/support/replays", body)
    assert status == 201 and kept["counts"]["requests"] == 6
    await gw.app[CAPTURE].flush()
    status, captures = await admin.call("GET", "/captures?prompt=support&limit=1000")
    assert captures["count"] == 6  # production's only
    assert {c["request_id"] for c in captures["captures"]} == {f"prod-{i}" for i in range(6)}
    async with session.get(gw.url("/metrics")) as response:
        metrics = await response.text()
    assert replay_requests(metrics) == 12  # 6 through the candidate, 6 through the baseline


def replay_requests(metrics: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("gateway_requests_total{") and 'role="replay"' in line
    )


async def test_a_replay_leaves_legacy_completions_captures_out(
    gateway_factory: GatewayFactory, session: aiohttp.ClientSession
) -> None:
    """A replay sends chat bodies: a captured `/v1/completions` request (a `prompt`
    param, no messages) of the same prompt is not one of its cases."""
    gw = await gateway_factory(replay_config())
    await production(gw, 3)
    async with gw.client(api_key=CLIENT_TOKEN) as client:
        with pytest.raises(openai.BadRequestError):  # the mock has no completions endpoint
            await client.completions.create(
                model="prompt:support",
                prompt="question",
                extra_body={"prompt_variables": {"product": "Acme"}},
            )
    await gw.app[CAPTURE].flush()
    status, listed = await Admin(gw, session).call("GET", "/captures?prompt=support&limit=10")
    assert status == 200 and len(listed["captures"]) == 4  # the completion is captured
    status, kept = await Admin(gw, session).call(
        "POST", "/prompts/support/replays", {"candidate": "v1", "limit": 10}
    )
    assert status == 201, kept
    assert kept["counts"]["requests"] == 3
