"""Regression suites: the checks, `gateway prompts test` (table, exit status, the run
recorded on the version), approval that needs a passing run, and `gateway suite add
--from-request` from a captured request. The CLI runs as a subprocess."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.appkeys import CAPTURE
from gateway.evaluation.chat_client import ChatResult
from gateway.evaluation.suites import Case, SuiteError, judge, load_suite, schema_errors
from tests.conftest import CLIENT_TOKEN, Gateway, Upstream
from tests.eval_support import Admin, cli_connection, gateway_config, run_cli

GatewayFactory = Callable[[str], Awaitable[Gateway]]
ACME = {"product": "Acme"}

PASSING = [
    "# a comment line, then a blank one",
    "",
    {
        "name": "greeting",
        "variables": ACME,
        "messages": [{"role": "user", "content": "hello there"}],
        "checks": {
            "contains": ["hello there"],
            "not_contains": "sorry",
            "regex": "^Mock answer",
            "max_latency_ms": 20000,
            "max_cost_usd": 0.01,
        },
    },
    {
        "name": "exact",
        "variables": ACME,
        "messages": [{"role": "user", "content": "refund?"}],
        "checks": {"equals": "Mock answer to: refund?"},
    },
]
FAILING = [
    PASSING[2],
    {
        "name": "fruit",
        "variables": ACME,
        "messages": [{"role": "user", "content": "apples"}],
        "checks": {"contains": "banana"},
    },
    {
        "name": "json",
        "variables": ACME,
        "messages": [{"role": "user", "content": "give JSON"}],
        "checks": {"valid_json": True},
    },
]


def write_suite(path: Path, lines: list[Any]) -> Path:
    path.write_text(
        "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n"
    )
    return path


async def test_a_passing_and_a_failing_suite(
    gateway_factory: GatewayFactory, upstream: Upstream, tmp_path: Path
) -> None:
    gw = await gateway_factory(gateway_config(upstream.base_url))
    connection = cli_connection(gw, CLIENT_TOKEN)
    passing = write_suite(tmp_path / "passing.jsonl", PASSING)
    code, out, err = await run_cli(
        "prompts", "test", "support@v1", "--suite", str(passing), *connection
    )
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["CASE", "RESULT", "LATENCY"]
    assert lines[1].split()[:2] == ["greeting", "pass"] and "fake/mock-gpt" in lines[1]
    assert "$0.0000" in lines[1]  # priced: the cost is shown
    assert lines[2].split()[:2] == ["exact", "pass"]
    assert "2/2 passed" in out and "recorded on support v1: passed" in out

    failing = write_suite(tmp_path / "failing.jsonl", FAILING)
    code, out, err = await run_cli(
        "prompts", "test", "support@v1", "--suite", str(failing), *connection
    )
    assert code == 1, err
    assert "1/3 passed" in out
    assert "fruit" in out and "contains 'banana': not found" in out
    assert "valid_json: the answer is not JSON" in out

    async with aiohttp.ClientSession() as session:
        _, prompt = await Admin(gw, session).call("GET", "/prompts/support")
    suite = prompt["versions"][0]["suite"]
    assert suite["passed"] is False and suite["runs"] == 2  # the latest run counts
    latest = suite["latest"]
    assert (latest["suite"], latest["total"], latest["failed"]) == ("failing.jsonl", 3, 2)
    assert [c["name"] for c in latest["cases"] if not c["passed"]] == ["fruit", "json"]


async def test_approval_needs_a_passing_run_when_the_prompt_says_so(
    gateway_factory: GatewayFactory, upstream: Upstream, tmp_path: Path
) -> None:
    config = gateway_config(upstream.base_url).replace(
        "params = { temperature = 0.2 }",
        "params = { temperature = 0.2 }\n        require_passing_suite = true",
    )
    gw = await gateway_factory(config)
    connection = cli_connection(gw, CLIENT_TOKEN)
    async with aiohttp.ClientSession() as session:
        admin = Admin(gw, session)
        v2 = {"model": "chat", "messages": [{"role": "system", "content": "v2 for {{product}}"}]}
        assert (await admin.call("POST", "/prompts/support/versions", v2))[0] == 201

        status, error = await admin.call("POST", "/prompts/support/versions/v2/approve", {})
        assert status == 409 and error["error"]["code"] == "suite_required"
        assert "no recorded run" in error["error"]["message"]

        failing = write_suite(tmp_path / "failing.jsonl", FAILING)
        code, _, _ = await run_cli(
            "prompts", "test", "support@v2", "--suite", str(failing), *connection
        )
        assert code == 1
        status, error = await admin.call("POST", "/prompts/support/versions/v2/approve", {})
        assert status == 409 and "failed" in error["error"]["message"]

        passing = write_suite(tmp_path / "passing.jsonl", PASSING)
        code, out, err = await run_cli(
            "prompts", "test", "support@v2", "--suite", str(passing), *connection
        )
        assert code == 0, out + err
        status, approved = await admin.call("POST", "/prompts/support/versions/v2/approve", {})
        assert status == 200 and approved["status"] == "approved"

        status, error = await admin.call(
            "POST", "/prompts/support/versions/v9/suite-results", {"passed": True}
        )
        assert status == 404
        status, error = await admin.call(
            "POST", "/prompts/support/versions/v2/suite-results", {"passed": "yes"}
        )
        assert status == 400


async def test_suite_add_turns_a_captured_request_into_a_case(
    gateway_factory: GatewayFactory, upstream: Upstream, tmp_path: Path
) -> None:
    gw = await gateway_factory(gateway_config(upstream.base_url, "enabled = true\n"))
    async with gw.client() as client:
        answer = await client.chat.completions.create(
            model="prompt:support",
            messages=[{"role": "user", "content": "Where is parcel 42?"}],
            max_tokens=64,
            extra_body={"prompt_variables": ACME},
            extra_headers={"X-Request-Id": "req-42"},
        )
    await gw.app[CAPTURE].flush()
    suite = tmp_path / "from-prod.jsonl"
    connection = cli_connection(gw)
    code, out, err = await run_cli(
        "suite", "add", "--from-request", "req-42", "--suite", str(suite), "--equals", *connection
    )
    assert code == 0, err
    assert "added case 'req-req-42'" in out
    (case,) = [json.loads(line) for line in suite.read_text().splitlines()]
    assert case["variables"] == ACME
    assert case["messages"] == [{"role": "user", "content": "Where is parcel 42?"}]
    assert case["params"] == {"max_tokens": 64}
    assert case["checks"] == {"equals": answer.choices[0].message.content}

    code, _, err = await run_cli(
        "suite", "add", "--from-request", "req-42", "--suite", str(suite), *connection
    )
    assert code == 2 and "already has a case" in err
    code, _, err = await run_cli(
        "suite", "add", "--from-request", "nope", "--suite", str(suite), *connection
    )
    assert code == 2 and "404" in err

    code, out, err = await run_cli(
        "prompts", "test", "support@v1", "--suite", str(suite), *cli_connection(gw, CLIENT_TOKEN)
    )
    assert code == 0, out + err


async def test_cli_usage_errors(
    gateway_factory: GatewayFactory, upstream: Upstream, tmp_path: Path
) -> None:
    gw = await gateway_factory(gateway_config(upstream.base_url))
    suite = write_suite(tmp_path / "s.jsonl", PASSING)
    url = gw.url("/").rstrip("/")
    code, _, err = await run_cli("prompts", "test", "support", "--suite", str(suite), "--url", url)
    assert code == 2 and "NAME@vN" in err
    code, _, err = await run_cli(
        "prompts", "test", "support@v1", "--suite", str(suite), "--url", url
    )
    assert code == 2 and "--no-record" in err
    code, _, err = await run_cli(
        "prompts", "test", "support@v7", "--suite", str(suite), *cli_connection(gw, CLIENT_TOKEN)
    )
    assert code == 2 and "no version v7" in err


def answer(text: str | None = "", **kwargs: Any) -> ChatResult:
    return ChatResult(status=kwargs.pop("status", 200), text=text, **kwargs)


def case(**checks: Any) -> Case:
    return Case("c", 1, checks=checks)


def test_checks() -> None:
    assert judge(case(contains=["a", "b"]), answer("a b")) == []
    assert judge(case(contains="z"), answer("a")) == ["contains 'z': not found"]
    assert judge(case(not_contains=["x"]), answer("x")) == ["not_contains 'x': found"]
    assert judge(case(regex=r"\d{3}"), answer("no digits")) == ["regex '\\\\d{3}': no match"]
    assert judge(case(equals="yes"), answer("yes")) == []
    assert judge(case(equals="yes"), answer("no"))[0].startswith("equals")
    assert judge(case(valid_json=True), answer('{"a": 1}')) == []
    assert judge(case(max_latency_ms=100), answer("", latency_ms=250.0)) == [
        "max_latency_ms 100: took 250 ms"
    ]
    assert judge(case(max_cost_usd=0.001), answer("", cost_usd=0.01))[0].startswith("max_cost")
    assert "cost unknown" in judge(case(max_cost_usd=1), answer("", model="m"))[0]
    assert judge(case(), answer(None, status=502, error="All targets failed")) == [
        "no answer: HTTP 502: All targets failed"
    ]
    schema = {"type": "object", "required": ["answer"]}
    assert judge(case(json_schema=schema), answer('{"other": 1}')) == [
        "json_schema: $.answer is required"
    ]


def test_json_schema_subset() -> None:
    schema = {
        "type": "object",
        "required": ["mood", "tags"],
        "properties": {
            "mood": {"enum": ["happy", "sad"]},
            "score": {"type": ["number", "null"]},
            "tags": {"type": "array", "items": {"type": "string"}},
            "meta": {"type": "object", "properties": {"n": {"type": "integer"}}},
        },
    }
    good = {"mood": "happy", "score": None, "tags": ["a"], "meta": {"n": 2}}
    assert schema_errors(good, schema) == []
    bad = {"mood": "angry", "score": "high", "tags": ["a", 3], "meta": {"n": 1.5}}
    assert schema_errors(bad, schema) == [
        '$.mood should be one of ["happy", "sad"]',
        "$.score should be number or null",
        "$.tags[1] should be string",
        "$.meta.n should be integer",
    ]
    assert schema_errors([], schema) == ["$ should be object"]
    assert schema_errors(True, {"type": "integer"}) == ["$ should be integer"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", ":1: not JSON"),
        ('{"checks": {"smells_ok": true}}', "unknown check 'smells_ok'"),
        ('{"checks": {"regex": "("}}', "bad regex"),
        ('{"checks": {"contains": 3}}', "takes a string or a list"),
        ('{"messages": "hi"}', "'messages' must be a list"),
        ('{"surprise": 1}', "unknown fields surprise"),
        ('{"name": "a"}\n{"name": "a"}', "a second case named 'a'"),
        ("", "no cases"),
    ],
)
def test_bad_suite_files(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "suite.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(SuiteError, match=message.replace("(", r"\(")):
        load_suite(path)
