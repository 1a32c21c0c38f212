"""`POST /admin/prompts/{name}/playground` over real HTTP against the fake upstream: one
input through two pinned versions at once, each answer with its latency, tokens and
cost; counted as role="test", never captured; operators and authors only; a bad body,
an unknown prompt or version is a 4xx in OpenAI's shape."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from gateway.appkeys import CAPTURE
from tests.conftest import Gateway, Upstream
from tests.console.support import admin_call, console_config, push_v2
from tests.evaluation.dataset_support import metric

GatewayFactory = Callable[[str], Awaitable[Gateway]]
PATH = "/prompts/support/playground"
ACME = {"product": "Acme"}


@pytest.fixture
async def gw(gateway_factory: GatewayFactory, upstream: Upstream) -> Gateway:
    gateway = await gateway_factory(console_config(upstream.base_url))
    await push_v2(gateway)
    return gateway


async def test_one_input_runs_through_two_versions_pinned_and_apart_from_live_traffic(
    gw: Gateway, upstream: Upstream
) -> None:
    body = {"versions": ["v1", "v2"], "variables": ACME}
    status, answer = await admin_call(gw, "POST", PATH, body, who="ada")
    assert status == 200, answer
    assert answer["prompt"] == "support"
    first, second = answer["results"]
    assert (first["version"], second["version"]) == ("v1", "v2")
    assert first["answer"] == "Mock answer to: Greet me on behalf of Acme."
    assert second["answer"] == "Mock answer to: Greet me on behalf of Acme, please."
    for result in (first, second):
        assert (result["status"], result["error"]) == (200, None)
        assert (result["provider"], result["model"]) == ("fake", "mock-gpt")
        assert result["latency_ms"] > 0 and result["cost_usd"] > 0
        assert result["usage"]["input_tokens"] > 0 and result["usage"]["output_tokens"] > 0
        assert result["request_id"]
    assert first["request_id"] != second["request_id"]
    assert upstream.stats.last_headers.get("X-Gateway-Test") == "1"

    # a client's messages follow the version's, as on /v1/chat/completions
    body = {"versions": ["v2"], "variables": ACME, "messages": [{"role": "user", "content": "hi"}]}
    status, answer = await admin_call(gw, "POST", PATH, body, who="olga")
    assert status == 200, answer
    assert answer["results"][0]["answer"] == "Mock answer to: hi"
    assert upstream.stats.last_body["messages"][-1] == {"role": "user", "content": "hi"}

    requests = "gateway_requests_total"
    assert await metric(gw, requests, prompt="support", role="test") == 3
    assert await metric(gw, requests, prompt="support", role="primary") == 0
    await gw.app[CAPTURE].flush()
    assert await gw.app[CAPTURE].log.query("support", None, 10) == []  # never captured


async def test_a_label_names_a_version_and_a_refused_call_is_a_result(gw: Gateway) -> None:
    await admin_call(gw, "PUT", "/prompts/support/labels/staging", {"version": "v2"})
    status, answer = await admin_call(gw, "POST", PATH, {"versions": ["staging", "v1"]}, who="olga")
    assert status == 200, answer
    labelled, plain = answer["results"]
    assert (labelled["asked"], labelled["version"]) == ("staging", "v2")
    # no variables: the gateway refuses the call itself, and says so per version
    assert (plain["status"], plain["answer"]) == (400, None)
    assert plain["error"]


@pytest.mark.parametrize("who", ["vera", "april"])
async def test_only_operators_and_authors_may_run_it(gw: Gateway, who: str) -> None:
    status, answer = await admin_call(gw, "POST", PATH, {"versions": ["v1"]}, who=who)
    assert status == 403
    assert answer["error"]["code"] == "insufficient_role"
    assert answer["error"]["role_needed"] == "operator or author"


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        (PATH, {"versions": []}, 400, None),
        (PATH, {"versions": ["v1", "v2", "v1"]}, 400, None),
        (PATH, {"versions": ["v1"], "nope": 1}, 400, None),
        (PATH, {"versions": ["v1"], "variables": ["Acme"]}, 400, None),
        (PATH, {"versions": ["v9"]}, 404, "version_not_found"),
        ("/prompts/nothing/playground", {"versions": ["v1"]}, 404, "prompt_not_found"),
    ],
)
async def test_a_bad_request_is_a_shaped_error(
    gw: Gateway, path: str, body: object, status: int, code: str | None
) -> None:
    got, answer = await admin_call(gw, "POST", path, body, who="olga")
    assert got == status, answer
    assert answer["error"]["message"]
    if code is not None:
        assert answer["error"]["code"] == code
