"""`[prompts.NAME] require_suite = "DATASET"`: a draft is approvable only with a
passing run of that dataset, made by the gateway, on that version, at the dataset's
current revision. A failing run, a passing run of another dataset, or a passing run of
an older revision keep the gate shut (409 `suite_required`, saying which)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from gateway.evaluation.suite_gate import gate_refusal
from gateway.store.dataset_runs import RunSummary
from tests.conftest import Gateway, Upstream
from tests.eval_support import gateway_config
from tests.evaluation.dataset_support import FAILING, PASSING, Caller, case

GatewayFactory = Callable[[str], Awaitable[Gateway]]
V2 = {"model": "chat", "messages": [{"role": "system", "content": "v2 for {{product}}"}]}
APPROVE = "/prompts/support/versions/v2/approve"


def requiring(upstream_url: str, gate: str) -> str:
    return gateway_config(upstream_url).replace(
        "params = { temperature = 0.2 }", "params = { temperature = 0.2 }\n        " + gate
    )


async def refusal(admin: Caller) -> str:
    status, error = await admin.call("POST", APPROVE, {})
    assert status == 409, error
    assert error["error"]["code"] == "suite_required"
    message: str = error["error"]["message"]
    return message


async def run(admin: Caller, dataset: str) -> dict[str, Any]:
    body = {"dataset": dataset}
    answer: dict[str, Any] = await admin.ok(
        "POST", "/prompts/support/versions/v2/test", body, status=201
    )
    return answer


async def test_only_a_passing_run_of_the_required_dataset_at_its_revision_opens_the_gate(
    gateway_factory: GatewayFactory, upstream: Upstream
) -> None:
    gw = await gateway_factory(requiring(upstream.base_url, 'require_suite = "faq"'))
    async with aiohttp.ClientSession() as session:
        admin = Caller(gw, session)
        await admin.ok("POST", "/prompts/support/versions", V2, status=201)
        assert "there is no such dataset" in await refusal(admin)

        await admin.ok("POST", "/datasets", {"name": "faq", "cases": FAILING}, status=201)
        assert "v2 has no run of it" in await refusal(admin)
        await admin.ok("POST", "/datasets", {"name": "other", "cases": PASSING}, status=201)
        assert (await run(admin, "other"))["verdict"] == "pass"
        assert "v2 has no run of it" in await refusal(admin)  # another dataset's run

        failed = await run(admin, "faq")
        assert failed["verdict"] == "fail"
        message = await refusal(admin)
        assert f"({failed['id']}, revision 1) failed with pass rate 0.67 (2/3 cases)" in message

        await admin.ok("PUT", "/datasets/faq/cases", {"cases": PASSING})  # revision 2
        assert "was of revision 1, and the dataset is at revision 2 now" in await refusal(admin)
        passed = await run(admin, "faq")
        assert (passed["verdict"], passed["dataset_revision"]) == ("pass", 2)

        extra = case("bye", "bye", contains="bye")
        await admin.ok("POST", "/datasets/faq/cases", {"cases": [extra]})  # revision 3
        message = await refusal(admin)
        assert f"({passed['id']}) was of revision 2, and the dataset is at revision 3" in message

        again = await run(admin, "faq")
        assert (again["verdict"], again["dataset_revision"]) == ("pass", 3)
        approved = await admin.ok("POST", APPROVE, {})
        assert approved["status"] == "approved"

        prompt = await admin.ok("GET", "/prompts/support")
        (v2,) = [v for v in prompt["versions"] if v["version"] == "v2"]
        assert v2["test_run"]["id"] == again["id"]


async def test_min_pass_rate_sets_the_bar(
    gateway_factory: GatewayFactory, upstream: Upstream
) -> None:
    gate = 'require_suite = "faq"\n        min_pass_rate = 0.6'
    gw = await gateway_factory(requiring(upstream.base_url, gate))
    async with aiohttp.ClientSession() as session:
        admin = Caller(gw, session)
        await admin.ok("POST", "/prompts/support/versions", V2, status=201)
        await admin.ok("POST", "/datasets", {"name": "faq", "cases": FAILING}, status=201)
        two_of_three = await run(admin, "faq")
        assert (two_of_three["min_pass_rate"], two_of_three["verdict"]) == (0.6, "pass")
        assert (await admin.ok("POST", APPROVE, {}))["status"] == "approved"


def summary(**fields: Any) -> RunSummary:
    base: dict[str, Any] = {
        "id": "run-1",
        "prompt": "support",
        "version": "v2",
        "version_hash": "h2",
        "dataset": "faq",
        "dataset_revision": 1,
        "total": 2,
        "passed": 2,
        "failed": 0,
        "pass_rate": 1.0,
        "min_pass_rate": 1.0,
        "verdict": "pass",
        "latency_p50_ms": 1.0,
        "latency_p95_ms": 1.0,
        "cost_usd": None,
        "stream": False,
        "by": "ada",
        "started_at": "2026-01-01T00:00:00.000Z",
        "finished_at": "2026-01-01T00:00:01.000Z",
    }
    return RunSummary(**{**base, **fields})


def test_a_run_of_other_content_never_counts() -> None:
    """A run of `v2` when v2 had another content (a store that lost its data and gave
    the number again) is no run of this v2."""
    passing = [summary(version_hash="an-older-h2")]
    assert "has no run" in str(gate_refusal(passing, "support", "v2", "h2", "faq", 1, 1.0))
    assert gate_refusal([summary()], "support", "v2", "h2", "faq", 1, 1.0) is None


def test_the_latest_run_at_the_current_revision_decides() -> None:
    newest_fails = [summary(id="run-2", passed=1, failed=1, pass_rate=0.5), summary()]
    assert "failed with pass rate 0.50" in str(
        gate_refusal(newest_fails, "support", "v2", "h2", "faq", 1, 1.0)
    )
    # a newer run of an older revision (asked for by number) does not hide the current one
    older_after = [
        summary(id="run-2", dataset_revision=1, pass_rate=0.0),
        summary(dataset_revision=2),
    ]
    assert gate_refusal(older_after, "support", "v2", "h2", "faq", 2, 1.0) is None
