"""Test runs made by the gateway over real HTTP against the fake upstream: each case's
outcome and the run's numbers recorded, counted as role="test" in the metrics, never
captured and never in the rollout statistics; a run that cannot start is a 4xx and no
run; nobody can post a result. On the embedded store and on a real Redis."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import aiohttp
import pytest

from gateway.appkeys import CAPTURE, ROLLOUTS
from tests.conftest import Gateway, Upstream
from tests.eval_support import gateway_config
from tests.evaluation.dataset_support import (
    ACME,
    AUTHOR,
    FAILING,
    PASSING,
    VIEWER,
    Caller,
    admins,
    metric,
)
from tests.redis_fixtures import RedisServer

GatewayFactory = Callable[[str], Awaitable[Gateway]]
TEST_PATH = "/prompts/support/versions/v1/test"


@pytest.fixture(params=["memory", "redis"])
def redis_url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return ""
    server: RedisServer = request.getfixturevalue("redis_server")
    return server.url


async def test_a_run_is_made_judged_and_recorded_apart_from_live_traffic(
    gateway_factory: GatewayFactory, upstream: Upstream, redis_url: str
) -> None:
    config = gateway_config(
        upstream.base_url, capture="enabled = true\n", redis_url=redis_url, extra=admins()
    )
    gw = await gateway_factory(config)
    async with gw.client() as client:  # one live request
        await client.chat.completions.create(
            model="prompt:support",
            messages=[{"role": "user", "content": "live"}],
            extra_body={"prompt_variables": ACME},
        )
    async with aiohttp.ClientSession() as session:
        ada, vera = Caller(gw, session, AUTHOR), Caller(gw, session, VIEWER)
        await ada.ok("POST", "/datasets", {"name": "faq", "cases": FAILING}, status=201)
        upstream_before = upstream.stats.total
        run = await ada.ok("POST", TEST_PATH, {"dataset": "faq"}, status=201)

        prompt = await vera.ok("GET", "/prompts/support")
        v1 = prompt["versions"][0]
        assert (run["prompt"], run["version"], run["version_hash"]) == ("support", "v1", v1["hash"])
        assert (run["dataset"], run["dataset_revision"], run["by"]) == ("faq", 1, "ada")
        assert (run["total"], run["passed"], run["failed"]) == (3, 2, 1)
        assert run["pass_rate"] == pytest.approx(2 / 3, abs=1e-6)
        assert (run["min_pass_rate"], run["verdict"]) == (1.0, "fail")
        assert run["started_at"].endswith("Z") and run["finished_at"] >= run["started_at"]
        by_name = {c["name"]: c for c in run["cases"]}
        assert [c["name"] for c in run["cases"]] == ["greeting", "exact", "fruit"]
        assert by_name["fruit"]["failures"] == ["contains 'banana': not found"]
        assert by_name["greeting"]["passed"] and by_name["greeting"]["failures"] == []
        for outcome in run["cases"]:
            assert (outcome["status"], outcome["provider"], outcome["model"]) == (
                200,
                "fake",
                "mock-gpt",
            )
            assert outcome["latency_ms"] > 0 and outcome["cost_usd"] > 0
        latencies = sorted(c["latency_ms"] for c in run["cases"])
        assert (run["latency_p50_ms"], run["latency_p95_ms"]) == (latencies[1], latencies[2])
        assert run["cost_usd"] == pytest.approx(sum(c["cost_usd"] for c in run["cases"]))
        assert upstream.stats.total - upstream_before == 3  # each case reached the provider
        assert upstream.stats.last_headers.get("X-Gateway-Test") == "1"

        # role="test" in the metrics, beside the one primary request
        requests = "gateway_requests_total"
        assert await metric(gw, requests, prompt="support", version="v1", role="test") == 3
        assert await metric(gw, requests, prompt="support", role="primary") == 1

        # not captured: only the live request is
        await gw.app[CAPTURE].flush()
        captures = await vera.ok("GET", "/captures?prompt=support")
        assert captures["count"] == 1
        assert captures["captures"][0]["request"]["messages"][-1]["content"] == "live"

        # not in the rollout guards' statistics: one request of v1, the live one
        stats = gw.app[ROLLOUTS].stats
        await stats.flush()
        counts = await stats.window("support", time.time() - 300)
        assert counts["v1"].requests == 1

        # kept, newest first, and on the version and in the history
        listed = await vera.ok("GET", "/prompts/support/runs")
        assert [r["id"] for r in listed["runs"]] == [run["id"]]
        assert "cases" not in listed["runs"][0]
        assert (await vera.ok("GET", "/prompts/support/runs?version=v2"))["runs"] == []
        assert (await vera.ok("GET", "/prompts/support/runs?dataset=faq"))["runs"] == listed["runs"]
        assert await vera.ok("GET", f"/prompts/support/runs/{run['id']}") == run
        status, error = await vera.call("GET", "/prompts/support/runs/run-nope")
        assert status == 404 and error["error"]["code"] == "run_not_found"
        assert v1["test_run"]["id"] == run["id"] and v1["test_run"]["verdict"] == "fail"
        entry = (await vera.ok("GET", "/prompts/support/history"))["history"][0]
        assert (entry["kind"], entry["by"], entry["version"]) == ("test_run", "ada", "v1")
        assert entry["detail"] == {
            "run": run["id"],
            "dataset": "faq",
            "revision": 1,
            "pass_rate": run["pass_rate"],
            "passed": False,
        }

        second = await ada.ok("POST", TEST_PATH, {"dataset": "faq", "stream": True}, status=201)
        assert all(
            c["ttft_ms"] is not None and c["passed"] == (c["name"] != "fruit")
            for c in second["cases"]
        )
        listed = await vera.ok("GET", "/prompts/support/runs")
        assert [r["id"] for r in listed["runs"]] == [second["id"], run["id"]]
        assert await metric(gw, requests, prompt="support", role="test") == 6


async def test_a_run_that_cannot_start_is_refused_and_not_recorded(
    gateway_factory: GatewayFactory, upstream: Upstream
) -> None:
    gw = await gateway_factory(gateway_config(upstream.base_url, extra=admins()))
    async with aiohttp.ClientSession() as session:
        ada, vera = Caller(gw, session, AUTHOR), Caller(gw, session, VIEWER)
        await ada.ok("POST", "/datasets", {"name": "faq", "cases": PASSING}, status=201)
        await ada.ok("POST", "/datasets", {"name": "empty"}, status=201)
        refused = [
            ("/prompts/nope/versions/v1/test", {"dataset": "faq"}, 404, "prompt_not_found"),
            ("/prompts/support/versions/v9/test", {"dataset": "faq"}, 404, "version_not_found"),
            (TEST_PATH, {"dataset": "nope"}, 404, "dataset_not_found"),
            (TEST_PATH, {"dataset": "faq", "revision": 5}, 404, "revision_not_found"),
            (TEST_PATH, {"dataset": "empty"}, 400, "dataset_empty"),
            (TEST_PATH, {"dataset": "faq", "concurrency": 0}, 400, None),
            (TEST_PATH, {"dataset": "faq", "passed": True}, 400, None),  # no result taken
            (TEST_PATH, {}, 400, None),
        ]
        for path, body, status, code in refused:
            got, error = await ada.call("POST", path, body)
            assert got == status, (path, body, error)
            assert code is None or error["error"]["code"] == code
        got, error = await vera.call("POST", TEST_PATH, {"dataset": "faq"})
        assert got == 403 and error["error"]["role_needed"] == "author"
        assert await metric(gw, "gateway_requests_total", role="test") == 0
        assert (await vera.ok("GET", "/prompts/support/runs"))["runs"] == []
        history = (await vera.ok("GET", "/prompts/support/history"))["history"]
        assert "test_run" not in {e["kind"] for e in history}
        got, _ = await vera.call("GET", "/prompts/nope/runs")
        assert got == 404


async def test_a_result_cannot_be_posted_from_outside(
    gateway_factory: GatewayFactory, upstream: Upstream
) -> None:
    gw = await gateway_factory(gateway_config(upstream.base_url))
    forged = {"passed": True, "total": 1, "failed": 0, "pass_rate": 1.0, "dataset": "faq"}
    async with aiohttp.ClientSession() as session:
        admin = Caller(gw, session)  # even the break-glass token, every role
        for method, path in [
            ("POST", "/prompts/support/versions/v1/suite-results"),
            ("POST", "/prompts/support/runs"),
            ("PUT", "/prompts/support/runs/run-1"),
            ("POST", "/prompts/support/runs/run-1"),
        ]:
            status, _ = await admin.call(method, path, forged)
            assert status in (404, 405), (method, path, status)
        assert (await admin.ok("GET", "/prompts/support/runs"))["runs"] == []
        prompt = await admin.ok("GET", "/prompts/support")
        assert prompt["versions"][0]["test_run"] is None
