"""The `/v1/messages` translators against golden fixtures: a Messages request in chat
form, chat answers and chunk streams as Messages answers and events (whatever the
network reads' boundaries), the native pass-through with its usage, a prompt's part
put in front of a native body, and errors in Anthropic's shape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.errors import UpstreamError
from gateway.providers.base import Usage
from gateway.providers.messages_chat import chat_form
from gateway.providers.messages_errors import reshaped
from gateway.providers.messages_from_chat import message_from_chat, stream_error_event
from gateway.providers.messages_from_chat_stream import ChatToMessagesStream
from gateway.providers.messages_native import NativeMessagesStream, native_body
from gateway.providers.openai_stream import OpenAIStream, usage_from_openai

FIXTURES = Path(__file__).parents[1] / "fixtures"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def golden(name: str) -> Any:
    return orjson.loads(fixture(name))


def pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


# --- Messages request → chat ----------------------------------------------------------


def test_a_full_request_in_chat_form() -> None:
    form = chat_form(golden("messages/request_full.json"))
    assert form.untranslatable is None
    assert form.body == golden("messages/request_full.chat.json")


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "document", "source": {"type": "text"}}],
                    }
                ]
            },
            "messages.0.content (document)",
        ),
        ({"citations": {"enabled": True}}, "citations"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image", "source": {"type": "file", "file_id": "file_01"}}
                        ],
                    }
                ]
            },
            "messages.0.content (image source file)",
        ),
    ],
)
def test_what_chat_cannot_carry_is_named(change: dict[str, Any], named: str) -> None:
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    form = chat_form({**body, **change})
    assert form.untranslatable is not None and form.untranslatable.startswith(named)


# --- chat → Messages ------------------------------------------------------------------


def test_a_chat_tool_call_answer_as_a_message() -> None:
    chat = golden("openai/chat_tool_calls.json")
    answer = message_from_chat(chat, usage_from_openai(chat["usage"]), "gpt-4o-mini")
    assert answer == golden("messages/from_chat_tool_use.json")


def test_a_chat_text_answer_as_a_message() -> None:
    chat = golden("openai/chat_completion.json")
    answer = message_from_chat(chat, usage_from_openai(chat["usage"]), "gpt-4o")
    assert answer["content"] == [{"type": "text", "text": "Hello! How can I assist you today?"}]
    assert (answer["stop_reason"], answer["model"]) == ("end_turn", "gpt-4o-2024-08-06")
    assert answer["usage"]["input_tokens"] == 19 and answer["usage"]["output_tokens"] == 10


@pytest.mark.parametrize(
    ("finish", "stop"),
    [("stop", "end_turn"), ("length", "max_tokens"), ("content_filter", "refusal")],
)
def test_finish_reasons_become_stop_reasons(finish: str, stop: str) -> None:
    chat = {"id": "x", "choices": [{"message": {"content": "hi"}, "finish_reason": finish}]}
    assert message_from_chat(chat, None, "m")["stop_reason"] == stop


def test_cache_writes_count_apart_from_input_tokens() -> None:
    chat = {"choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}]}
    usage = Usage(input_tokens=100, output_tokens=5, cached_input_tokens=60, cache_write_tokens=30)
    assert message_from_chat(chat, usage, "m")["usage"] == {
        "input_tokens": 10,
        "output_tokens": 5,
        "cache_creation_input_tokens": 30,
        "cache_read_input_tokens": 60,
    }


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("openai/stream_text.sse", "messages/from_chat_stream_text.sse"),
        ("openai/stream_tool_calls.sse", "messages/from_chat_stream_tool_use.sse"),
    ],
)
@pytest.mark.parametrize("size", [1, 7, 10_000])
def test_chat_chunks_as_messages_events(source: str, expected: str, size: int) -> None:
    translator = ChatToMessagesStream(OpenAIStream(True), "gpt-4o-mini")
    out = b"".join(translator.feed_bytes(p) for p in pieces(fixture(source), size))
    assert out == fixture(expected)
    assert translator.finished and translator.usage is not None


def test_a_stream_error_event_is_anthropic_shaped() -> None:
    framed = stream_error_event(UpstreamError("rate_limited", "slow down"))
    name, _, data = framed.partition(b"\ndata: ")
    assert name == b"event: error" and framed.endswith(b"\n\n")
    assert orjson.loads(data) == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "slow down"},
    }


# --- native ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 13, 10_000])
def test_a_native_stream_passes_through_with_its_usage(size: int) -> None:
    source = fixture("anthropic/stream_tool_use.sse")
    translator = NativeMessagesStream()
    out = b"".join(translator.feed_bytes(p) for p in pieces(source, size))
    assert out == source
    assert translator.finished and translator.content_started
    assert translator.usage == Usage(
        input_tokens=472 + 2048, output_tokens=89, cached_input_tokens=2048
    )


def test_a_native_stream_error_event_is_an_upstream_error() -> None:
    translator = NativeMessagesStream()
    with pytest.raises(UpstreamError) as caught:
        translator.feed_bytes(fixture("anthropic/stream_error.sse"))
    assert caught.value.reason == "server_error" and "Overloaded" in caught.value.message


def test_a_prompt_goes_in_front_of_a_native_body() -> None:
    client = {
        "model": "prompt:support",
        "system": [{"type": "text", "text": "Client rules."}],
        "messages": [{"role": "user", "content": "Where is my order?"}],
        "prompt_variables": {"product": "Acme"},
    }
    prompt = [
        {"role": "system", "content": "You answer for Acme."},
        {"role": "user", "content": "Be kind."},
    ]
    body = native_body(client, prompt, {"temperature": 0.2, "max_tokens": 300})
    assert body == {
        "model": "prompt:support",  # the attempt puts the target's model in
        "system": [
            {"type": "text", "text": "You answer for Acme."},
            {"type": "text", "text": "Client rules."},
        ],
        "messages": [  # one user turn: the Messages API alternates roles
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Be kind."},
                    {"type": "text", "text": "Where is my order?"},
                ],
            }
        ],
        "temperature": 0.2,
        "max_tokens": 300,
    }


def test_a_native_body_without_max_tokens_gets_the_default() -> None:
    body = native_body({"model": "m", "messages": []})
    assert body["max_tokens"] == 4096


# --- errors ---------------------------------------------------------------------------


def test_an_openai_shaped_error_becomes_anthropic_shaped() -> None:
    body = reshaped(429, fixture("openai/error_rate_limit_429.json"))
    data = orjson.loads(body)
    assert data["type"] == "error" and data["error"]["type"] == "rate_limit_error"
    assert (
        data["error"]["message"] == golden("openai/error_rate_limit_429.json")["error"]["message"]
    )


def test_an_anthropic_error_goes_on_as_it_came() -> None:
    body = fixture("anthropic/error_invalid_request_400.json")
    assert reshaped(400, body) == body
