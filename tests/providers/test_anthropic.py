"""Anthropic-only translation: requests in detail, tool calls and cache usage back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.config.loader import ProviderConfig, Secret
from gateway.errors import ApiError, UpstreamError
from gateway.providers.anthropic import AnthropicAdapter
from gateway.providers.anthropic_stream import AnthropicStream
from gateway.providers.base import SSEEvent, Usage
from gateway.providers.sse import SSEReader

FIXTURES = Path(__file__).parents[1] / "fixtures" / "anthropic"
PROVIDER = ProviderConfig(
    name="a", type="anthropic", base_url="https://api.anthropic.com", api_key=Secret("sk-test")
)
ADAPTER = AnthropicAdapter()
MODEL = "claude-3-5-sonnet-20241022"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}},
            "required": ["location"],
        },
        "strict": True,
    },
}


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def translate(body: dict[str, Any], stream: bool = False) -> dict[str, Any]:
    request = ADAPTER.chat_request(PROVIDER, MODEL, body, stream)
    data = orjson.loads(request.body)
    assert isinstance(data, dict)
    return data


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def stream_payloads(name: str, include_usage: bool = True) -> tuple[list[Any], AnthropicStream]:
    reader = SSEReader()
    translator = ADAPTER.chat_stream(MODEL, include_usage)
    out: list[Any] = []
    for event in reader.feed(fixture(name)):
        out.extend(orjson.loads(p) for p in translator.feed(event))
    return out, translator


# --- request ----------------------------------------------------------------------


def test_request_url_and_headers() -> None:
    request = ADAPTER.chat_request(PROVIDER, MODEL, {"messages": [user("hi")]}, False)
    assert request.url == "https://api.anthropic.com/v1/messages"
    assert request.headers["x-api-key"] == "sk-test"
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.headers["content-type"] == "application/json"
    assert "authorization" not in {k.lower() for k in request.headers}


def test_minimal_request() -> None:
    body = translate({"model": "alias", "messages": [user("hi")]})
    assert body == {
        "model": MODEL,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "max_tokens": 4096,
    }


def test_stream_flag() -> None:
    assert translate({"messages": [user("hi")], "stream": True}, stream=True)["stream"] is True
    assert "stream" not in translate({"messages": [user("hi")]})


def test_system_and_developer_messages_become_system() -> None:
    body = translate(
        {
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
                user("hi"),
                {"role": "system", "content": "Never apologise."},
            ]
        }
    )
    assert body["system"] == "You are terse.\n\nAnswer in French.\n\nNever apologise."
    assert [m["role"] for m in body["messages"]] == ["user"]


def test_system_cache_control_kept_as_blocks() -> None:
    part = {"type": "text", "text": "Long manual...", "cache_control": {"type": "ephemeral"}}
    body = translate({"messages": [{"role": "system", "content": [part]}, user("hi")]})
    assert body["system"] == [part]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, 4096),
        ({"max_tokens": 100}, 100),
        ({"max_completion_tokens": 200}, 200),
        ({"max_tokens": 100, "max_completion_tokens": 200}, 200),
    ],
)
def test_max_tokens(fields: dict[str, Any], expected: int) -> None:
    assert translate({"messages": [user("hi")], **fields})["max_tokens"] == expected


@pytest.mark.parametrize(
    ("stop", "expected"), [("END", ["END"]), (["a", "b"], ["a", "b"]), (None, None)]
)
def test_stop_becomes_stop_sequences(stop: Any, expected: Any) -> None:
    body = translate({"messages": [user("hi")], "stop": stop})
    assert body.get("stop_sequences") == expected
    assert "stop" not in body


def test_sampling_user_and_dropped_fields() -> None:
    body = translate(
        {
            "messages": [user("hi")],
            "temperature": 0.2,
            "top_p": 0.9,
            "user": "user-42",
            "n": 1,
            "logprobs": False,
            "response_format": {"type": "text"},
            "seed": 7,
            "presence_penalty": 0.5,
            "frequency_penalty": 0.5,
            "logit_bias": {},
            "stream_options": {"include_usage": True},
            "reasoning_effort": "none",
        }
    )
    assert body["temperature"] == 0.2 and body["top_p"] == 0.9
    assert body["metadata"] == {"user_id": "user-42"}
    assert set(body) == {"model", "messages", "max_tokens", "temperature", "top_p", "metadata"}


@pytest.mark.parametrize("n", [2, 5])
def test_n_above_one_makes_the_target_ineligible(n: int) -> None:
    with pytest.raises(UpstreamError) as caught:
        translate({"messages": [user("hi")], "n": n})
    assert (caught.value.reason, caught.value.param) == ("unsupported", "n")
    assert not caught.value.retryable
    assert "one choice per request" in caught.value.message


def test_tools() -> None:
    body = translate({"messages": [user("weather?")], "tools": [WEATHER_TOOL]})
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "Current weather for a city",
            "input_schema": WEATHER_TOOL["function"]["parameters"],  # type: ignore[index]
        }
    ]
    assert "tool_choice" not in body
    bare = {"type": "function", "function": {"name": "now"}}
    assert translate({"messages": [user("t")], "tools": [bare]})["tools"] == [
        {"name": "now", "input_schema": {"type": "object", "properties": {}}}
    ]


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("required", None, {"type": "any"}),
        ("none", None, {"type": "none"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            None,
            {"type": "tool", "name": "get_weather"},
        ),
        ("auto", False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        (None, True, None),
        (None, None, None),
    ],
)
def test_tool_choice(choice: Any, parallel: Any, expected: Any) -> None:
    body: dict[str, Any] = {"messages": [user("weather?")], "tools": [WEATHER_TOOL]}
    if choice is not None:
        body["tool_choice"] = choice
    if parallel is not None:
        body["parallel_tool_calls"] = parallel
    assert translate(body).get("tool_choice") == expected


def test_unsupported_tool_type_is_refused() -> None:
    with pytest.raises(ApiError) as caught:
        translate({"messages": [user("hi")], "tools": [{"type": "web_search"}]})
    assert caught.value.status == 400


def test_tool_call_and_tool_result_round_trip() -> None:
    arguments = {"location": "Paris", "unit": "celsius"}
    body = translate(
        {
            "messages": [
                user("Weather and time in Paris?"),
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "toolu_1",
                            "type": "function",
                            "function": {
                                "name": "get_weather",
                                "arguments": orjson.dumps(arguments).decode(),
                            },
                        },
                        {
                            "id": "toolu_2",
                            "type": "function",
                            "function": {"name": "get_time", "arguments": ""},
                        },
                    ],
                },
                {"role": "tool", "tool_call_id": "toolu_1", "content": "18°C, cloudy"},
                {
                    "role": "tool",
                    "tool_call_id": "toolu_2",
                    "content": [{"type": "text", "text": "14:05"}],
                },
                user("Thanks! Summarise."),
            ]
        }
    )
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Weather and time in Paris?"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": arguments},
                {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18°C, cloudy"},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_2",
                    "content": [{"type": "text", "text": "14:05"}],
                },
                {"type": "text", "text": "Thanks! Summarise."},
            ],
        },
    ]


def test_assistant_text_with_tool_calls_keeps_text_first() -> None:
    call = {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    message = {"role": "assistant", "content": "Let me look.", "tool_calls": [call]}
    body = translate({"messages": [user("q"), message]})
    assert body["messages"][1]["content"] == [
        {"type": "text", "text": "Let me look."},
        {"type": "tool_use", "id": "t1", "name": "f", "input": {}},
    ]


@pytest.mark.parametrize("arguments", ["{not json", "[1, 2]"])
def test_bad_tool_call_arguments_are_refused(arguments: str) -> None:
    call = {"id": "t1", "type": "function", "function": {"name": "f", "arguments": arguments}}
    with pytest.raises(ApiError) as caught:
        translate({"messages": [user("q"), {"role": "assistant", "tool_calls": [call]}]})
    assert caught.value.status == 400


def test_image_parts() -> None:
    content = [
        {"type": "text", "text": "What is in these?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "low"}},
    ]
    body = translate({"messages": [user(content)]})
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "What is in these?"},
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
        },
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]


@pytest.mark.parametrize(
    "url", ["ftp://example.com/cat.jpg", "data:image/png,rawbytes", "data:;base64,AAAA"]
)
def test_bad_image_urls_are_refused(url: str) -> None:
    with pytest.raises(ApiError) as caught:
        translate({"messages": [user([{"type": "image_url", "image_url": {"url": url}}])]})
    assert caught.value.status == 400


def test_unsupported_content_part_is_refused() -> None:
    part = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
    with pytest.raises(ApiError) as caught:
        translate({"messages": [user([part])]})
    assert caught.value.status == 400


def test_consecutive_same_role_messages_are_merged() -> None:
    body = translate(
        {
            "messages": [
                user("one"),
                user([{"type": "text", "text": "two"}]),
                {"role": "assistant", "content": "a"},
                {"role": "assistant", "content": [{"type": "text", "text": "b"}]},
                {"role": "assistant", "content": ""},
                user("three"),
            ]
        }
    )
    assert body["messages"] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}],
        },
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
        },
        {"role": "user", "content": [{"type": "text", "text": "three"}]},
    ]


@pytest.mark.parametrize("messages", ["hi", [{"role": "function", "content": "x"}], [42]])
def test_malformed_messages_are_refused(messages: Any) -> None:
    with pytest.raises(ApiError) as caught:
        translate({"messages": messages})
    assert caught.value.status == 400


def test_embeddings_are_unsupported() -> None:
    with pytest.raises(ApiError) as caught:
        ADAPTER.embeddings_request(PROVIDER, MODEL, {"input": "hi"})
    assert (caught.value.status, caught.value.code) == (400, "unsupported")
    assert "no embeddings API" in caught.value.message
    with pytest.raises(ApiError):
        ADAPTER.embeddings_response(b"{}")


# --- response ---------------------------------------------------------------------


def test_text_response_shape() -> None:
    body, usage = ADAPTER.chat_response(fixture("message_text.json"), "asked-model")
    data = orjson.loads(body)
    assert data["id"] == "chatcmpl-msg_01XFDUDYJgAACzvnptvVoYEL"
    assert data["model"] == "claude-3-5-sonnet-20241022"  # as the provider named it
    assert data["choices"][0]["message"] == {
        "role": "assistant",
        "content": "Hello! How can I help you today?",
        "refusal": None,
    }
    assert data["usage"] == {
        "prompt_tokens": 12,
        "completion_tokens": 10,
        "total_tokens": 22,
        "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
    }
    assert usage == Usage(input_tokens=12, output_tokens=10)


def test_tool_use_response() -> None:
    body, usage = ADAPTER.chat_response(fixture("message_tool_use.json"), MODEL)
    choice = orjson.loads(body)["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == (
        "I'll check the current weather in San Francisco for you."
    )
    (call,) = choice["message"]["tool_calls"]
    assert call["id"] == "toolu_01A09q90qw90lq917835lq9"
    assert call["type"] == "function"
    assert call["function"]["name"] == "get_weather"
    expected = orjson.loads(fixture("message_tool_use.json"))["content"][1]["input"]
    assert orjson.loads(call["function"]["arguments"]) == expected
    assert usage == Usage(input_tokens=384, output_tokens=92)


def test_tool_only_response_has_null_content() -> None:
    message = orjson.loads(fixture("message_tool_use.json"))
    message["content"] = message["content"][1:]
    body, _ = ADAPTER.chat_response(orjson.dumps(message), MODEL)
    assert orjson.loads(body)["choices"][0]["message"]["content"] is None


def test_cache_usage() -> None:
    body, usage = ADAPTER.chat_response(fixture("message_cache.json"), MODEL)
    assert orjson.loads(body)["usage"] == {
        "prompt_tokens": 21 + 1840 + 188,
        "completion_tokens": 23,
        "total_tokens": 21 + 1840 + 188 + 23,
        "prompt_tokens_details": {"cached_tokens": 1840, "cache_write_tokens": 188},
    }
    assert usage == Usage(
        input_tokens=2049, output_tokens=23, cached_input_tokens=1840, cache_write_tokens=188
    )


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
    ],
)
def test_finish_reasons(stop_reason: str, finish: str) -> None:
    message = orjson.loads(fixture("message_text.json"))
    message["stop_reason"] = stop_reason
    body, _ = ADAPTER.chat_response(orjson.dumps(message), MODEL)
    assert orjson.loads(body)["choices"][0]["finish_reason"] == finish


# --- streams ----------------------------------------------------------------------


def test_tool_use_stream() -> None:
    chunks, translator = stream_payloads("stream_tool_use.sse")
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["id"] == "chatcmpl-msg_014p7gG3wDgGV9EUtLvnow3U"
    assert len({c["created"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    text = "".join(d.get("content") or "" for d in deltas)
    assert text == "Okay, let's check the weather."
    calls: dict[int, dict[str, Any]] = {}
    for delta in deltas:
        for piece in delta.get("tool_calls", []):
            if piece["index"] not in calls:
                assert piece["type"] == "function" and piece["id"]
                assert piece["function"]["arguments"] == ""
                calls[piece["index"]] = {**piece, "function": dict(piece["function"])}
            else:
                assert set(piece) == {"index", "function"}
                calls[piece["index"]]["function"]["arguments"] += piece["function"]["arguments"]
    assert [calls[i]["id"] for i in sorted(calls)] == [
        "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
        "toolu_01Vb2dZpyBLKhDBvmc8hxJjz",
    ]
    assert [calls[i]["function"]["name"] for i in sorted(calls)] == ["get_weather", "get_time"]
    assert orjson.loads(calls[0]["function"]["arguments"]) == {
        "location": "San Francisco, CA",
        "unit": "fahrenheit",
    }
    assert orjson.loads(calls[1]["function"]["arguments"]) == {"timezone": "America/Los_Angeles"}
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] == "tool_calls"
    assert translator.finished
    assert translator.usage == Usage(
        input_tokens=472 + 2048, output_tokens=89, cached_input_tokens=2048
    )
    assert chunks[-1]["usage"]["prompt_tokens_details"] == {
        "cached_tokens": 2048,
        "cache_write_tokens": 0,
    }


def test_stream_usage_known_early() -> None:
    translator = ADAPTER.chat_stream(MODEL, False)
    events = SSEReader().feed(fixture("stream_text.sse"))
    assert translator.feed(events[0])  # message_start
    assert translator.usage == Usage(input_tokens=25, output_tokens=1)
    assert not translator.content_started
    translator.feed(events[1])  # content_block_start with empty text
    assert translator.feed(events[2]) == []  # ping
    assert not translator.content_started
    translator.feed(events[3])
    assert translator.content_started
    assert not translator.finished


def test_message_delta_with_cumulative_usage() -> None:
    translator = ADAPTER.chat_stream(MODEL, True)
    start = {"type": "message_start", "message": {"id": "m", "usage": {"input_tokens": 5}}}
    delta = {
        "type": "message_delta",
        "delta": {"stop_reason": "max_tokens"},
        "usage": {"input_tokens": 5, "cache_read_input_tokens": 100, "output_tokens": 9},
    }
    translator.feed(SSEEvent(orjson.dumps(start)))
    (chunk,) = translator.feed(SSEEvent(orjson.dumps(delta)))
    assert orjson.loads(chunk)["choices"][0]["finish_reason"] == "length"
    assert translator.usage == Usage(input_tokens=105, output_tokens=9, cached_input_tokens=100)


def test_stream_error_event() -> None:
    reader = SSEReader()
    translator = ADAPTER.chat_stream(MODEL, True)
    events = reader.feed(fixture("stream_error.sse"))
    for event in events[:-1]:
        translator.feed(event)
    assert translator.content_started
    with pytest.raises(UpstreamError) as caught:
        translator.feed(events[-1])
    assert caught.value.reason == "server_error"
    assert caught.value.retryable
    assert "Overloaded" in caught.value.message
    assert not translator.finished


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("overloaded_error", "server_error"),
        ("rate_limit_error", "rate_limited"),
        ("api_error", "server_error"),
        ("invalid_request_error", "server_error"),
    ],
)
def test_stream_error_reasons(kind: str, reason: str) -> None:
    event = {"type": "error", "error": {"type": kind, "message": "boom"}}
    with pytest.raises(UpstreamError) as caught:
        ADAPTER.chat_stream(MODEL, True).feed(SSEEvent(orjson.dumps(event), "error"))
    assert caught.value.reason == reason


def test_unknown_stream_events_are_ignored() -> None:
    translator = ADAPTER.chat_stream(MODEL, True)
    assert translator.feed(SSEEvent(b'{"type": "something_new", "x": 1}')) == []
    thinking = {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta"}}
    assert translator.feed(SSEEvent(orjson.dumps(thinking))) == []


# --- errors -----------------------------------------------------------------------


def test_overloaded_error() -> None:
    error = ADAPTER.error(529, {"retry-after": "3"}, fixture("error_overloaded_529.json"))
    assert error.reason == "server_error" and error.retryable
    assert error.message == "provider answered 529: Overloaded"
    assert error.retry_after_s == 3.0
    assert error.client_body is not None
    assert orjson.loads(error.client_body) == {
        "error": {
            "message": "Overloaded",
            "type": "api_error",
            "param": None,
            "code": "overloaded_error",
        }
    }


def test_overloaded_type_under_another_status_is_retryable() -> None:
    error = ADAPTER.error(400, {}, fixture("error_overloaded_529.json"))
    assert error.reason == "server_error"


@pytest.mark.parametrize(
    ("status", "name", "reason", "type_"),
    [
        (400, "error_invalid_request_400.json", "client_error", "invalid_request_error"),
        (401, "error_authentication_401.json", "auth_error", "authentication_error"),
        (429, "error_rate_limit_429.json", "rate_limited", "rate_limit_error"),
        (500, "error_api_500.json", "server_error", "api_error"),
    ],
)
def test_error_types(status: int, name: str, reason: str, type_: str) -> None:
    error = ADAPTER.error(status, {}, fixture(name))
    detail = orjson.loads(fixture(name))["error"]["message"]
    assert error.reason == reason
    assert error.message == f"provider answered {status}: {detail}"[:300]
    assert error.client_body is not None
    body = orjson.loads(error.client_body)["error"]
    assert (body["message"], body["type"]) == (detail, type_)


def test_error_message_is_truncated() -> None:
    long = {"type": "error", "error": {"type": "invalid_request_error", "message": "x" * 1000}}
    error = ADAPTER.error(413, {}, orjson.dumps(long))
    assert len(error.message) == 300
    assert error.message.startswith("provider answered 413: xxx")
    assert error.reason == "client_error"


@pytest.mark.parametrize(("status", "type_"), [(403, "permission_error"), (404, "not_found_error")])
def test_error_type_from_status_when_body_unreadable(status: int, type_: str) -> None:
    error = ADAPTER.error(status, {}, b"<html>nope</html>")
    assert error.client_body is not None
    body = orjson.loads(error.client_body)["error"]
    assert body["type"] == type_
    assert body["message"] == f"provider answered {status}"
