"""Translation that never turns a success into an error, end to end: the official OpenAI
SDK through the gateway to fake OpenAI and Anthropic upstreams on loopback, failover
between them included."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel

from tests.conftest import Gateway, Upstream

Start = Callable[[str], Awaitable[Gateway]]
ASK = [{"role": "user", "content": "Alice and Bob go to the science fair on Friday."}]


class CalendarEvent(BaseModel):
    name: str
    date: str
    participants: list[str]


def _config(upstream: Upstream) -> str:
    return f"""
        [server]
        request_timeout_s = 30

        [providers.oa]
        type = "openai"
        base_url = "{upstream.base_url}"
        api_key = "sk-oa-upstream"

        [providers.an]
        type = "anthropic"
        base_url = "{upstream.root_url}"
        api_key = "sk-an-upstream"
        breaker_consecutive_failures = 2

        [models.fast]
        targets = [
          {{ provider = "oa", model = "error=500" }},
          {{ provider = "an", model = "mock-claude" }},
        ]

        [models.claude]
        targets = [{{ provider = "an", model = "mock-claude" }}]

        [models.claude-first]
        targets = [
          {{ provider = "an", model = "mock-claude" }},
          {{ provider = "oa", model = "mock-gpt" }},
        ]

        [[keys]]
        name = "test-app"
        sha256 = "{{key_sha256}}"
    """


@pytest.fixture
async def gw(gateway_factory: Start, upstream: Upstream) -> Gateway:
    return await gateway_factory(_config(upstream))


@pytest.fixture
async def client(gw: Gateway) -> AsyncIterator[openai.AsyncOpenAI]:
    async with gw.client() as client:
        yield client


async def _samples(gw: Gateway, name: str, **match: str) -> float:
    async with aiohttp.ClientSession() as session, session.get(gw.url("/metrics")) as response:
        page = await response.text()
    return sum(
        sample.value
        for family in text_string_to_metric_families(page)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in match.items())
    )


# --- response_format through a failover -------------------------------------------


async def test_parse_answers_through_an_openai_to_anthropic_failover(
    gw: Gateway, client: openai.AsyncOpenAI, upstream: Upstream
) -> None:
    for parse in (client.beta.chat.completions.parse, client.chat.completions.parse):
        completion = await parse(model="fast", messages=ASK, response_format=CalendarEvent)  # type: ignore[operator]
        choice = completion.choices[0]
        assert isinstance(choice.message.parsed, CalendarEvent)
        assert choice.message.parsed.participants  # the schema's array, filled in
        assert choice.finish_reason == "stop"
        assert not choice.message.tool_calls
    assert upstream.stats.requests["/v1/chat/completions"] >= 2  # the 500s, retried
    assert upstream.stats.requests["/v1/messages"] == 2
    sent = upstream.stats.last_body
    assert sent["tool_choice"] == {"type": "tool", "name": "CalendarEvent"}
    assert sent["tools"][0]["input_schema"]["required"] == ["name", "date", "participants"]


async def test_streamed_parse_through_a_failover(
    gw: Gateway, client: openai.AsyncOpenAI, upstream: Upstream
) -> None:
    async with client.beta.chat.completions.stream(
        model="fast", messages=ASK, response_format=CalendarEvent
    ) as stream:
        final = await stream.get_final_completion()
    parsed = final.choices[0].message.parsed
    assert isinstance(parsed, CalendarEvent)
    assert final.choices[0].finish_reason == "stop"
    assert upstream.stats.last_path == "/v1/messages"
    assert upstream.stats.last_body["stream"] is True


async def test_json_object_through_a_failover(gw: Gateway, client: openai.AsyncOpenAI) -> None:
    completion = await client.chat.completions.create(
        model="fast", messages=ASK, response_format={"type": "json_object"}
    )
    assert isinstance(json.loads(completion.choices[0].message.content or ""), dict)


# --- parameters a target cannot honour --------------------------------------------


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"temperature": 1.5}, "temperature"),
        ({"logprobs": True, "top_logprobs": 2}, "logprobs"),
        ({"n": 2}, "n"),
    ],
)
async def test_no_eligible_target_is_a_400_naming_the_parameter(
    gw: Gateway, client: openai.AsyncOpenAI, upstream: Upstream, fields: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(model="claude", messages=ASK, **fields)
    error = caught.value
    assert error.status_code == 400
    assert (error.param, error.code, error.type) == (
        param,
        "unsupported_parameter",
        "invalid_request_error",
    )
    assert param in error.message
    assert upstream.stats.total == 0  # decided before any call: nothing spent
    assert await _samples(gw, "gateway_provider_errors_total", reason="unsupported") == 1


async def test_an_ineligible_target_fails_over_to_the_next(
    gw: Gateway, client: openai.AsyncOpenAI, upstream: Upstream
) -> None:
    raw = await client.chat.completions.with_raw_response.create(
        model="claude-first", messages=ASK, temperature=1.5, logprobs=True
    )
    assert raw.headers["X-Gateway-Provider"] == "oa"
    assert raw.headers["X-Gateway-Attempts"] == "1"  # the skipped target made no attempt
    assert raw.parse().choices[0].message.content
    assert upstream.stats.requests == {"/v1/chat/completions": 1}
    assert upstream.stats.last_body["temperature"] == 1.5
    assert await _samples(gw, "gateway_failovers_total") == 1
    assert await _samples(gw, "gateway_retries_total") == 0


async def test_ineligible_requests_never_open_the_circuit(
    gw: Gateway, client: openai.AsyncOpenAI, upstream: Upstream
) -> None:
    for _ in range(4):  # twice the provider's breaker_consecutive_failures
        with pytest.raises(openai.BadRequestError):
            await client.chat.completions.create(model="claude", messages=ASK, temperature=2)
    raw = await client.chat.completions.with_raw_response.create(model="claude", messages=ASK)
    assert raw.headers["X-Gateway-Provider"] == "an"
    assert upstream.stats.requests == {"/v1/messages": 1}
    assert await _samples(gw, "gateway_circuit_state", provider="an") == 0


async def test_a_failed_eligible_target_is_a_502_not_a_400(
    gw: Gateway, client: openai.AsyncOpenAI
) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        await client.chat.completions.create(model="fast", messages=ASK, temperature=1.5)
    assert caught.value.status_code == 502
    body = caught.value.body
    assert isinstance(body, dict)
    reasons = [a["reason"] for a in body["attempts"]]
    assert reasons[-1] == "unsupported" and "server_error" in reasons


# --- reasoning_effort, legacy functions ------------------------------------------


async def test_reasoning_effort_thinks_and_keeps_thinking_out_of_content(
    gw: Gateway, client: openai.AsyncOpenAI, upstream: Upstream
) -> None:
    completion = await client.chat.completions.create(
        model="claude", messages=ASK, reasoning_effort="low", max_tokens=300
    )
    assert upstream.stats.last_body["thinking"] == {"type": "enabled", "budget_tokens": 4096}
    assert upstream.stats.last_body["max_tokens"] == 4096 + 300
    message = completion.choices[0].message
    assert message.content == f"Mock answer to: {ASK[0]['content']}"
    assert (message.model_extra or {})["reasoning_content"].startswith("Thinking about")
    stream = await client.chat.completions.create(
        model="claude", messages=ASK, reasoning_effort="low", stream=True
    )
    content, thought = "", ""
    async for chunk in stream:
        if chunk.choices:
            content += chunk.choices[0].delta.content or ""
            thought += (chunk.choices[0].delta.model_extra or {}).get("reasoning_content") or ""
    assert content == message.content
    assert thought.startswith("Thinking about")


async def test_legacy_functions_answer_with_function_call(
    gw: Gateway, client: openai.AsyncOpenAI, upstream: Upstream
) -> None:
    weather = {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}},
            "required": ["location"],
        },
    }
    completion = await client.chat.completions.create(
        model="claude",
        messages=ASK,
        functions=[weather],  # type: ignore[list-item]
        function_call={"name": "get_weather"},
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "function_call"
    assert choice.message.function_call is not None
    assert choice.message.function_call.name == "get_weather"
    assert isinstance(json.loads(choice.message.function_call.arguments)["location"], str)
    assert not choice.message.tool_calls
    assert upstream.stats.last_body["tool_choice"]["name"] == "get_weather"
