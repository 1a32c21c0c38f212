"""Suite cases: the checks, suite files and their errors, and `gateway suite add
--from-request` from a captured request (the CLI runs as a subprocess). The gateway's
own runs of them are in test_runs.py; JSON Schema in test_json_schema.py."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.appkeys import CAPTURE
from gateway.evaluation.suites import Case, SuiteError, judge, load_suite
from gateway.telemetry.recorder import RequestRecord
from tests.conftest import Gateway, Upstream
from tests.eval_support import cli_connection, gateway_config, run_cli

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


def write_suite(path: Path, lines: list[Any]) -> Path:
    path.write_text(
        "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n"
    )
    return path


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
    assert code == 4 and "404" in err

    code, out, err = await run_cli(
        "prompts", "test", "support@v1", "--suite", str(suite), *cli_connection(gw)
    )
    assert code == 0, out + err  # the gateway's run: production's answer again
    assert "1/1 passed" in out


async def test_cli_usage_errors(
    gateway_factory: GatewayFactory, upstream: Upstream, tmp_path: Path
) -> None:
    gw = await gateway_factory(gateway_config(upstream.base_url))
    suite = write_suite(tmp_path / "s.jsonl", PASSING)
    url = gw.url("/").rstrip("/")
    code, _, err = await run_cli("prompts", "test", "support", "--suite", str(suite), "--url", url)
    assert code == 2 and "NAME@vN" in err
    code, _, err = await run_cli(
        "prompts", "test", "support@v1", "--suite", str(suite), "--url", url, "--token", ""
    )
    assert code == 2 and "needs a token" in err
    code, _, err = await run_cli("prompts", "test", "support@v1", "--url", url, "--token", "x")
    assert code == 2 and "--suite FILE, --dataset NAME" in err
    code, _, err = await run_cli(
        "prompts", "test", "support@v7", "--suite", str(suite), *cli_connection(gw)
    )
    assert code == 4 and "no version 'v7'" in err


def answer(text: str | None = "", **kwargs: Any) -> RequestRecord:
    """What the gateway's own call returned: an answer, with its status and numbers."""
    kwargs.setdefault("status", 200)
    return RequestRecord("req", "/v1/chat/completions", answer=text, **kwargs)


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
    assert judge(case(max_latency_ms=100), answer("", latency_s=0.25)) == [
        "max_latency_ms 100: took 250 ms"
    ]
    assert judge(case(max_cost_usd=0.001), answer("", cost_usd=0.01))[0].startswith("max_cost")
    assert "cost unknown" in judge(case(max_cost_usd=1), answer("", model="m"))[0]
    assert judge(case(), answer(None, status=502, error="all_targets_failed")) == [
        "no answer: HTTP 502: all_targets_failed"
    ]
    assert judge(case(), answer("half", error="stream_cut")) == ["no answer: HTTP 200: stream_cut"]
    schema = {"type": "object", "required": ["answer"]}
    assert judge(case(json_schema=schema), answer('{"other": 1}')) == [
        "json_schema: $: 'answer' is a required property"
    ]


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
        ('{"checks": {"json_schema": {"minimun": 1}}}', ":1: check 'json_schema': unknown keyword"),
        ("", "no cases"),
    ],
)
def test_bad_suite_files(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "suite.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(SuiteError, match=message.replace("(", r"\(")):
        load_suite(path)
