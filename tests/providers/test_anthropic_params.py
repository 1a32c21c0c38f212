"""Chat parameters without an Anthropic field: response_format as a forced answer tool,
reasoning_effort as a thinking budget, legacy functions as tools, cache writes in
usage, and the parameters that make an Anthropic target ineligible."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.config.loader import ProviderConfig, Secret
from gateway.errors import UpstreamError
from gateway.providers.anthropic import AnthropicAdapter
from gateway.providers.anthropic_params import ADAPTIVE_EFFORTS, THINKING_BUDGETS
from gateway.providers.base import Usage
from gateway.providers.sse import SSEReader

FIXTURES = Path(__file__).parents[1] / "fixtures" / "anthropic"
PROVIDER = ProviderConfig(
    name="a", type="anthropic", base_url="https://api.anthropic.com", api_key=Secret("sk-test")
)
ADAPTER = AnthropicAdapter()
MODEL = "claude-sonnet-4-5"
SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "date": {"type": "string"},
        "participants": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["name", "date", "participants"],
    "additionalProperties": False,
}
JSON_SCHEMA = {
    "type": "json_schema",
    "json_schema": {"name": "CalendarEvent", "schema": SCHEMA, "strict": True},
}
WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
}
ASK = [{"role": "user", "content": "Alice and Bob go to the science fair on Friday."}]


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def translate(**body: Any) -> dict[str, Any]:
    request = ADAPTER.chat_request(PROVIDER, MODEL, {"messages": ASK, **body}, False)
    data = orjson.loads(request.body)
    assert isinstance(data, dict)
    return data


def answer(name: str, **asked: Any) -> dict[str, Any]:
    body, _ = ADAPTER.chat_response(fixture(name), MODEL, {"messages": ASK, **asked})
    choice = orjson.loads(body)["choices"][0]
    assert isinstance(choice, dict)
    return choice


def stream(name: str, **asked: Any) -> list[dict[str, Any]]:
    translator = ADAPTER.chat_stream(MODEL, True, {"messages": ASK, **asked})
    chunks = []
    for event in SSEReader().feed(fixture(name)):
        chunks += [orjson.loads(p) for p in translator.feed(event)]
    assert translator.finished
    return [c["choices"][0] for c in chunks if c["choices"]]


# --- response_format ----------------------------------------------------------------


def test_json_schema_becomes_a_forced_tool() -> None:
    body = translate(response_format=JSON_SCHEMA)
    (tool,) = body["tools"]
    assert tool["name"] == "CalendarEvent"
    assert tool["input_schema"] == SCHEMA
    assert body["tool_choice"] == {"type": "tool", "name": "CalendarEvent"}


def test_json_object_forces_an_object_tool() -> None:
    body = translate(response_format={"type": "json_object"})
    assert body["tools"][0]["name"] == "json_answer"
    assert body["tools"][0]["input_schema"] == {"type": "object"}
    assert body["tool_choice"] == {"type": "tool", "name": "json_answer"}


def test_text_response_format_changes_nothing() -> None:
    assert "tools" not in translate(response_format={"type": "text"})


@pytest.mark.parametrize(
    ("tool_choice", "expected"),
    [
        (None, {"type": "any"}),
        ("auto", {"type": "any"}),
        ("none", {"type": "tool", "name": "CalendarEvent"}),
    ],
)
def test_json_schema_with_client_tools(tool_choice: Any, expected: Any) -> None:
    tools = [{"type": "function", "function": WEATHER}]
    extra = {} if tool_choice is None else {"tool_choice": tool_choice}
    body = translate(response_format=JSON_SCHEMA, tools=tools, **extra)
    assert [t["name"] for t in body["tools"]] == ["get_weather", "CalendarEvent"]
    assert body["tool_choice"] == expected


def test_a_forced_client_tool_leaves_response_format_for_a_later_turn() -> None:
    tools = [{"type": "function", "function": WEATHER}]
    body = translate(response_format=JSON_SCHEMA, tools=tools, tool_choice="required")
    assert [t["name"] for t in body["tools"]] == ["get_weather"]
    assert body["tool_choice"] == {"type": "any"}


def test_answer_tool_name_never_shadows_a_client_tool() -> None:
    tools = [{"type": "function", "function": {**WEATHER, "name": "CalendarEvent"}}]
    body = translate(response_format=JSON_SCHEMA, tools=tools)
    assert [t["name"] for t in body["tools"]] == ["CalendarEvent", "CalendarEvent_json_answer"]


def test_forced_tool_answer_is_json_content() -> None:
    choice = answer("message_forced_tool.json", response_format=JSON_SCHEMA)
    assert choice["finish_reason"] == "stop"
    assert "tool_calls" not in choice["message"]
    assert orjson.loads(choice["message"]["content"]) == {
        "name": "Science fair",
        "date": "Friday",
        "participants": ["Alice", "Bob"],
    }


def test_the_same_answer_without_response_format_is_a_tool_call() -> None:
    choice = answer("message_forced_tool.json")
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"][0]["function"]["name"] == "CalendarEvent"


def test_forced_tool_stream_is_content_deltas() -> None:
    choices = stream("stream_forced_tool.sse", response_format=JSON_SCHEMA)
    assert all("tool_calls" not in c["delta"] for c in choices)
    content = "".join(c["delta"].get("content") or "" for c in choices)
    assert orjson.loads(content)["participants"] == ["Alice", "Bob"]
    assert choices[-1]["finish_reason"] == "stop"


# --- parameters Anthropic cannot honour -------------------------------------------


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"temperature": 1.5}, "temperature"),
        ({"temperature": -0.1}, "temperature"),
        ({"logprobs": True}, "logprobs"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"n": 3}, "n"),
        ({"logit_bias": {"50256": -100}}, "logit_bias"),
        ({"modalities": ["text", "audio"], "audio": {"voice": "alloy"}}, "modalities"),
        ({"web_search_options": {}}, "web_search_options"),
        ({"reasoning_effort": "extreme"}, "reasoning_effort"),
        ({"response_format": {"type": "grammar"}}, "response_format"),
    ],
)
def test_parameters_that_make_anthropic_ineligible(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(UpstreamError) as caught:
        translate(**fields)
    assert caught.value.reason == "unsupported"
    assert caught.value.param == param
    assert not caught.value.retryable
    assert param in caught.value.message


@pytest.mark.parametrize("temperature", [0, 0.7, 1, 1.0])
def test_temperature_within_range_passes(temperature: float) -> None:
    assert translate(temperature=temperature)["temperature"] == temperature


def test_hints_without_an_anthropic_field_are_dropped() -> None:
    body = translate(seed=7, presence_penalty=0.4, frequency_penalty=0.2, service_tier="auto")
    assert set(body) == {"model", "messages", "max_tokens"}


# --- reasoning_effort -------------------------------------------------------------


@pytest.mark.parametrize(("effort", "budget"), [(k, v) for k, v in THINKING_BUDGETS.items() if v])
def test_reasoning_effort_is_a_thinking_budget(effort: str, budget: int) -> None:
    body = translate(reasoning_effort=effort)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert body["max_tokens"] > budget  # Anthropic requires it


def test_thinking_budget_table() -> None:
    assert THINKING_BUDGETS == {
        "none": None,
        "minimal": 1024,
        "low": 4096,
        "medium": 8192,
        "high": 16384,
        "xhigh": 32768,
    }


def test_max_tokens_is_raised_above_the_budget_only_when_needed() -> None:
    assert translate(reasoning_effort="low", max_tokens=500)["max_tokens"] == 4096 + 500
    assert translate(reasoning_effort="low", max_completion_tokens=20000)["max_tokens"] == 20000


def test_reasoning_effort_none_means_no_thinking() -> None:
    assert "thinking" not in translate(reasoning_effort="none")


@pytest.mark.parametrize(
    "fields",
    [
        {"temperature": 0.2},
        {"top_k": 5},
        {"top_p": 0.5},
        {"response_format": JSON_SCHEMA},
        {"tools": [{"type": "function", "function": WEATHER}], "tool_choice": "required"},
    ],
)
def test_thinking_is_left_off_where_anthropic_refuses_it(fields: dict[str, Any]) -> None:
    body = translate(reasoning_effort="high", **fields)
    assert "thinking" not in body
    assert body["max_tokens"] == 4096


ADAPTIVE = ["claude-opus-4-6", "claude-sonnet-4-6", "claude-opus-4-7", "claude-opus-5"]
ADAPTIVE += ["anthropic.claude-opus-4-6-v1", "claude-mythos-preview"]
BUDGETED = ["claude-sonnet-4-5", "claude-sonnet-4-20250514", "claude-opus-4-1-20250805"]
BUDGETED += ["claude-3-7-sonnet-20250219", "claude-haiku-4-5"]


def translate_for(model: str, thinking: str = "auto", **body: Any) -> dict[str, Any]:
    provider = ProviderConfig(name="a", type="anthropic", base_url="https://x", thinking=thinking)  # type: ignore[arg-type]
    request = ADAPTER.chat_request(provider, model, {"messages": ASK, **body}, False)
    data = orjson.loads(request.body)
    assert isinstance(data, dict)
    return data


@pytest.mark.parametrize("model", ADAPTIVE)
@pytest.mark.parametrize(("effort", "level"), [(k, v) for k, v in ADAPTIVE_EFFORTS.items() if v])
def test_newest_models_think_adaptively_with_an_effort(model: str, effort: str, level: str) -> None:
    body = translate_for(model, reasoning_effort=effort, max_tokens=500)
    assert body["thinking"] == {"type": "adaptive"}  # a budget is refused there
    assert body["output_config"] == {"effort": level}
    assert body["max_tokens"] == 500  # no budget to make room for


@pytest.mark.parametrize("model", BUDGETED)
def test_older_models_keep_a_budget(model: str) -> None:
    body = translate_for(model, reasoning_effort="medium")
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 8192}
    assert "output_config" not in body


def test_the_provider_setting_overrides_the_model_name() -> None:
    assert translate_for("claude-next", "adaptive", reasoning_effort="low")["thinking"] == {
        "type": "adaptive"
    }
    body = translate_for("claude-opus-4-6", "budget", reasoning_effort="low")
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 4096}


def test_adaptive_effort_stays_where_thinking_is_left_off() -> None:
    body = translate_for("claude-opus-4-7", reasoning_effort="high", temperature=0.2)
    assert "thinking" not in body
    assert body["output_config"] == {"effort": "high"}
    body = translate_for("claude-opus-4-7", reasoning_effort="none")
    assert "thinking" not in body and "output_config" not in body


def test_thinking_is_left_off_in_a_tool_loop() -> None:
    call = {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    messages = [*ASK, {"role": "assistant", "tool_calls": [call]}]
    messages.append({"role": "tool", "tool_call_id": "t1", "content": "sunny"})
    request = ADAPTER.chat_request(
        PROVIDER, MODEL, {"messages": messages, "reasoning_effort": "high"}, False
    )
    assert "thinking" not in orjson.loads(request.body)


def test_thinking_blocks_are_not_content() -> None:
    choice = answer("message_thinking.json", reasoning_effort="high")
    message = choice["message"]
    assert message["content"].startswith("Yes, there are infinitely many prime numbers")
    assert "let me think" not in message["content"]
    assert message["reasoning_content"].startswith("To approach this")
    assert choice["finish_reason"] == "stop"


def test_thinking_stream_deltas_are_reasoning_content() -> None:
    choices = stream("stream_thinking.sse", reasoning_effort="high")
    content = "".join(c["delta"].get("content") or "" for c in choices)
    thought = "".join(c["delta"].get("reasoning_content") or "" for c in choices)
    assert content == "The greatest common divisor of 1071 and 462 is **21**."
    assert thought.startswith("I need to find the GCD") and "signature" not in thought


# --- legacy functions -------------------------------------------------------------


def test_functions_become_tools() -> None:
    body = translate(functions=[WEATHER], function_call={"name": "get_weather"})
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "Current weather for a city",
            "input_schema": WEATHER["parameters"],
        }
    ]
    assert body["tool_choice"] == {
        "type": "tool",
        "name": "get_weather",
        "disable_parallel_tool_use": True,
    }
    assert translate(functions=[WEATHER], function_call="none")["tool_choice"]["type"] == "none"
    assert translate(functions=[WEATHER])["tool_choice"]["type"] == "auto"


def test_function_call_and_result_messages_become_tool_use_and_result() -> None:
    messages = [
        *ASK,
        {
            "role": "assistant",
            "content": None,
            "function_call": {"name": "get_weather", "arguments": '{"location": "Paris"}'},
        },
        {"role": "function", "name": "get_weather", "content": "18C"},
    ]
    request = ADAPTER.chat_request(
        PROVIDER, MODEL, {"messages": messages, "functions": [WEATHER]}, False
    )
    sent = orjson.loads(request.body)["messages"]
    use = sent[1]["content"][0]
    result = sent[2]["content"][0]
    assert use["type"] == "tool_use" and use["input"] == {"location": "Paris"}
    assert result == {"type": "tool_result", "tool_use_id": use["id"], "content": "18C"}


def test_tool_use_answers_a_functions_client_with_function_call() -> None:
    choice = answer("message_tool_use.json", functions=[WEATHER])
    assert choice["finish_reason"] == "function_call"
    assert "tool_calls" not in choice["message"]
    assert choice["message"]["function_call"]["name"] == "get_weather"
    assert orjson.loads(choice["message"]["function_call"]["arguments"])


def test_tool_use_stream_for_a_functions_client() -> None:
    choices = stream("stream_tool_use.sse", functions=[WEATHER])
    calls = [c["delta"]["function_call"] for c in choices if "function_call" in c["delta"]]
    assert calls[0]["name"] == "get_weather"
    arguments = "".join(c["arguments"] for c in calls)
    assert orjson.loads(arguments) == {"location": "San Francisco, CA", "unit": "fahrenheit"}
    assert all("tool_calls" not in c["delta"] for c in choices)
    assert choices[-1]["finish_reason"] == "function_call"


# --- cache writes -----------------------------------------------------------------


def test_cache_writes_are_reported() -> None:
    body, usage = ADAPTER.chat_response(fixture("message_cache.json"), MODEL)
    details = orjson.loads(body)["usage"]["prompt_tokens_details"]
    assert details == {"cached_tokens": 1840, "cache_write_tokens": 188}
    assert usage == Usage(2049, 23, 1840, 188)
