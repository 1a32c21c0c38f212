"""`gateway replay`: captured production traffic sent through a candidate version (a
slower, wordier model with its own price), the report's numbers checked against what
the fakes were set to return, and a pinned baseline instead of production."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.appkeys import CAPTURE
from gateway.evaluation.replay_report import report_paths
from tests.conftest import CLIENT_TOKEN, Gateway, Upstream
from tests.eval_support import Admin, cli_connection, gateway_config, run_cli
from tests.redis_fixtures import RedisServer

GatewayFactory = Callable[[str], Awaitable[Gateway]]
SLOW_MODEL = "slow=150+words=12"
ROUTE = f"""
        [models.slowwords]
        targets = [{{ provider = "fake", model = "{SLOW_MODEL}" }}]

        [pricing."{SLOW_MODEL}"]
        input_per_mtok = 3.0
        output_per_mtok = 5.0
"""


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


async def push_candidate(gw: Gateway) -> None:
    """v2: route slowwords, 4 words of system prompt, a draft (pinned replays are fine)."""
    content = {
        "model": "slowwords",
        "messages": [{"role": "system", "content": "Answer as {{product}} support."}],
    }
    async with aiohttp.ClientSession() as session:
        status, body = await Admin(gw, session).call("POST", "/prompts/support/versions", content)
    assert (status, body["version"]) == (201, "v2")


def embedded_data(page: str) -> dict[str, Any]:
    match = re.search(
        r'<script type="application/json" id="replay-data">(.*?)</script>', page, re.S
    )
    assert match is not None
    data: dict[str, Any] = json.loads(match.group(1))
    return data


async def test_replay_of_200_captured_requests_through_a_slower_wordier_candidate(
    redis_server: RedisServer,
    gateway_factory: GatewayFactory,
    upstream: Upstream,
    tmp_path: Path,
) -> None:
    gw = await gateway_factory(
        gateway_config(upstream.base_url, "enabled = true\n", redis_server.url, extra=ROUTE)
    )
    await production(gw, 200)
    await push_candidate(gw)
    code, out, err = await run_cli(
        "replay",
        "--prompt",
        "support",
        "--candidate",
        "v2",
        "--since",
        "1h",
        "--concurrency",
        "16",
        "--report",
        str(tmp_path / "report.html"),
        *cli_connection(gw, CLIENT_TOKEN),
    )
    assert code == 0, err
    assert "replayed 200 requests: candidate errors 0, exact agreement 0/200" in out
    assert "replay [####################] 200/200" in err  # the progress bar
    page = (tmp_path / "report.html").read_text()
    summary = (tmp_path / "report.md").read_text()
    data = embedded_data(page)

    production_side, candidate = data["reference"], data["candidate"]
    assert production_side["requests"] == candidate["requests"] == 200
    assert production_side["errors"] == candidate["errors"] == 0
    assert candidate["latency_ms"]["p50"] >= 150  # slow=150
    assert candidate["latency_ms"]["p50"] > production_side["latency_ms"]["p50"]
    assert candidate["ttft_ms"]["n"] == 200 and candidate["ttft_ms"]["p50"] >= 150
    assert production_side["ttft_ms"]["n"] == 0  # production did not stream
    assert (production_side["input_tokens"], production_side["output_tokens"]) == (8, 7)
    assert (candidate["input_tokens"], candidate["output_tokens"]) == (8, 12)  # words=12
    assert production_side["cost_usd"] == pytest.approx((8 * 1.0 + 7 * 2.0) / 1e6)
    assert candidate["cost_usd"] == pytest.approx((8 * 3.0 + 12 * 5.0) / 1e6)
    assert candidate["cost_usd_total"] == pytest.approx(200 * (8 * 3.0 + 12 * 5.0) / 1e6)
    agreement = data["agreement"]
    assert (agreement["compared"], agreement["exact"], agreement["exact_rate"]) == (200, 0, 0.0)
    assert agreement["similarity_mean"] < 0.5
    assert sum(agreement["histogram"]) == 200
    assert len(data["differences"]) == 10
    assert all(d["input"].startswith("question number") for d in data["differences"])

    assert "| requests | 200 | 200 |  |" in summary
    assert "| cost / request | $0.000022 | $0.000084 | 3.8x |" in summary
    assert "| exact agreement |  | 0.0% | of 200 |" in summary
    assert "#### Cases that differ most" in summary
    assert "<svg" in page and page.count("<polyline") >= 3  # latency and TTFT curves
    for external in ("<link", " src=", "href=", "url(", "@import"):
        assert external not in page  # self-contained


async def test_replay_against_a_pinned_baseline(
    gateway_factory: GatewayFactory, upstream: Upstream, tmp_path: Path
) -> None:
    gw = await gateway_factory(gateway_config(upstream.base_url, "enabled = true\n", extra=ROUTE))
    await production(gw, 12)
    connection = cli_connection(gw, CLIENT_TOKEN)
    report = tmp_path / "out" / "same"
    code, out, err = await run_cli(
        "replay",
        "--prompt",
        "support",
        "--baseline",
        "v1",
        "--candidate",
        "v1",
        "--limit",
        "5",
        "--report",
        str(report),
        *connection,
    )
    assert code == 0, err
    html_path, md_path = report_paths(str(report))
    assert (html_path.name, md_path.name) == ("same.html", "same.md")
    data = embedded_data(html_path.read_text())
    assert data["reference"]["requests"] == 5 and data["meta"]["baseline"] == "v1"
    assert data["reference"]["ttft_ms"]["n"] == 5  # the baseline was replayed, streaming
    assert data["agreement"]["exact_rate"] == 1.0 and data["differences"] == []
    assert "baseline v1" in md_path.read_text()

    code, out, _ = await run_cli(
        "replay", "--prompt", "nobody", "--candidate", "v1", "--report", str(report), *connection
    )
    assert code == 1 and "no captured requests" in out
    code, _, err = await run_cli(
        "replay", "--prompt", "support", "--candidate", "v1", "--since", "soon", "--report",
        str(report), *connection,
    )  # fmt: skip
    assert code == 2 and "not a duration" in err


def test_report_paths() -> None:
    assert [p.name for p in report_paths("a/r.md")] == ["r.html", "r.md"]
    assert [p.name for p in report_paths("r.HTML")] == ["r.html", "r.md"]
    assert [p.name for p in report_paths("r.v2")] == ["r.v2.html", "r.v2.md"]
