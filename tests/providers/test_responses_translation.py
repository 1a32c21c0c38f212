"""The Responses translators, pure: native streams and bodies read from the documented
shapes (golden fixtures), chat answers and chunks turned into the same shapes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.errors import UpstreamError
from gateway.providers.anthropic import AnthropicAdapter
from gateway.providers.base import StreamTranslator, Usage
from gateway.providers.openai_stream import OpenAIStream
from gateway.providers.responses_chat import chat_body, response_from_chat
from gateway.providers.responses_chat_stream import ChatToResponsesStream
from gateway.providers.responses_native import NativeResponsesStream, native_body, read_response
from gateway.providers.sse import SSEReader

FIXTURES = Path(__file__).parents[1] / "fixtures"
REQUEST: dict[str, Any] = {"model": "alias", "input": "hi"}


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def events_of(raw: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(e.data) for e in SSEReader().feed(raw)]


def kinds(events: list[dict[str, Any]]) -> list[str]:
    """Event types with runs of deltas counted once (their number is the model's)."""
    out: list[str] = []
    for event in events:
        if not (event["type"].endswith(".delta") and out and out[-1] == event["type"]):
            out.append(event["type"])
    return out


def test_native_stream_passes_events_on_and_reads_usage() -> None:
    raw = fixture("openai/responses_stream_text.sse")
    stream = NativeResponsesStream(REQUEST, "gpt-4.1")
    out = b"".join(stream.feed_bytes(raw[i : i + 50]) for i in range(0, len(raw), 50))
    assert events_of(out) == events_of(raw)
    assert stream.finished and stream.content_started
    assert stream.usage == Usage(37, 11, 0)
    assert stream.response is not None
    assert stream.response["output"][0]["content"][0]["text"] == "Hi there!"


def test_native_stream_error_event_is_a_failure() -> None:
    stream = NativeResponsesStream(REQUEST, "gpt-4.1")
    with pytest.raises(UpstreamError) as caught:
        stream.feed_bytes(fixture("openai/responses_stream_error.sse"))
    assert caught.value.reason == "server_error"
    assert not stream.content_started  # failover is still open


def test_native_body_is_the_clients_with_model_and_input_replaced() -> None:
    body = {"model": "alias", "input": "x", "previous_response_id": "resp_1", "store": False}
    items = [{"role": "user", "content": "x"}]
    out = native_body(body, "gpt-4.1", items, {"max_tokens": 10, "temperature": 0.2})
    assert out == {
        "model": "gpt-4.1",
        "input": items,
        "store": False,
        "max_output_tokens": 10,
        "temperature": 0.2,
    }


def test_read_response_usage() -> None:
    data, usage = read_response(fixture("openai/responses_text.json"))
    assert usage == Usage(36, 87, 0)
    assert data["object"] == "response"


def test_chat_answer_as_a_response_has_the_documented_fields() -> None:
    documented = orjson.loads(fixture("openai/responses_text.json"))
    chat = fixture("openai/chat_completion.json")
    out = response_from_chat(chat, Usage(10, 5), REQUEST, "resp_x")
    assert set(documented) <= set(out)
    assert set(documented["output"][0]) <= set(out["output"][0])
    assert set(documented["usage"]) == set(out["usage"])
    assert out["status"] == "completed" and out["id"] == "resp_x"


def test_chat_tool_calls_as_function_call_items() -> None:
    out = response_from_chat(fixture("openai/chat_tool_calls.json"), None, REQUEST, "resp_x")
    (item,) = out["output"]
    assert item["type"] == "function_call"
    assert item["call_id"] == "call_abc123"
    assert item["name"] == "get_current_weather"
    assert orjson.loads(item["arguments"]) == {"location": "Boston, MA"}


def _translated(inner: StreamTranslator, raw: bytes) -> ChatToResponsesStream:
    stream = ChatToResponsesStream(inner, REQUEST, "resp_x", "m")
    out = b"".join(stream.feed_bytes(raw[i : i + 64]) for i in range(0, len(raw), 64))
    stream.sent = events_of(out)  # type: ignore[attr-defined]
    return stream


def test_chat_chunks_become_the_documented_text_events() -> None:
    stream = _translated(OpenAIStream(False), fixture("openai/stream_text.sse"))
    sent: list[dict[str, Any]] = stream.sent  # type: ignore[attr-defined]
    assert kinds(sent) == kinds(events_of(fixture("openai/responses_stream_text.sse")))
    assert [e["sequence_number"] for e in sent] == list(range(len(sent)))
    assert sent[-1]["response"]["usage"]["total_tokens"] > 0


def test_anthropic_tool_use_becomes_the_documented_function_call_events() -> None:
    inner = AnthropicAdapter().chat_stream("claude", False)
    stream = _translated(inner, fixture("anthropic/stream_tool_use.sse"))
    sent: list[dict[str, Any]] = stream.sent  # type: ignore[attr-defined]
    documented = kinds(events_of(fixture("openai/responses_stream_function_call.sse")))
    # text first, then two calls: each item added and done before the next is added
    assert [i["type"] for i in stream.output] == ["message", "function_call", "function_call"]
    added = [e["output_index"] for e in sent if e["type"] == "response.output_item.added"]
    done = [e["output_index"] for e in sent if e["type"] == "response.output_item.done"]
    assert added == done == [0, 1, 2]
    one_call = kinds(sent)[kinds(sent).index("response.content_part.done") + 2 :]
    assert one_call[:4] == documented[2:6]
    assert kinds(sent)[-1] == documented[-1] == "response.completed"
    first = stream.output[1]
    assert orjson.loads(first["arguments"]) == {
        "location": "San Francisco, CA",
        "unit": "fahrenheit",
    }
    assert sent[-1]["response"]["output"] == stream.output


def test_chat_body_from_a_responses_request() -> None:
    body = {
        "model": "m",
        "instructions": "Be brief.",
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "weather?"}]},
            {"type": "function_call", "call_id": "c1", "name": "w", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
        ],
        "tools": [{"type": "function", "name": "w", "parameters": {"type": "object"}}],
        "tool_choice": {"type": "function", "name": "w"},
        "text": {"format": {"type": "json_schema", "name": "A", "schema": {"type": "object"}}},
        "max_output_tokens": 50,
        "safety_identifier": "u1",
        "metadata": {"a": "b"},
    }
    out, untranslatable = chat_body(body, [])
    assert untranslatable is None
    assert out["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]
    assert out["tools"][0]["function"]["name"] == "w"
    assert out["tool_choice"] == {"type": "function", "function": {"name": "w"}}
    assert out["response_format"]["json_schema"]["name"] == "A"
    assert out["max_completion_tokens"] == 50
    assert out["user"] == "u1"
    assert "metadata" not in out


def test_what_chat_cannot_carry_is_named() -> None:
    _, untranslatable = chat_body(
        {"model": "m", "input": "x", "tools": [{"type": "web_search"}]}, []
    )
    assert untranslatable == "tools"
    ref = {"model": "m", "input": [{"type": "item_reference", "id": "x"}]}
    assert chat_body(ref, [])[1] == "input"
