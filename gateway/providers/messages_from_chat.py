"""OpenAI chat answers → Anthropic Messages answers, for a `/v1/messages` request that a
chat-speaking target served: the text and tool calls as `text` and `tool_use` blocks,
the finish reason as a stop reason, the usage in Anthropic's terms (input tokens
counted apart from cache reads and writes)."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.errors import UpstreamError
from gateway.providers.base import Usage

STOP_REASONS: dict[str, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def stop_reason(finish_reason: Any) -> str:
    if not isinstance(finish_reason, str):
        return "end_turn"
    return STOP_REASONS.get(finish_reason, "end_turn")


def messages_usage(usage: Usage | None) -> dict[str, int]:
    """Our usage counts the whole prompt; Anthropic's `input_tokens` leaves out the
    part read from or written to the cache."""
    if usage is None:
        return {"input_tokens": 0, "output_tokens": 0}
    cached, written = usage.cached_input_tokens, usage.cache_write_tokens
    return {
        "input_tokens": max(usage.input_tokens - cached - written, 0),
        "output_tokens": usage.output_tokens,
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": cached,
    }


def message_id(chat_id: Any) -> str:
    """A Messages id for a chat answer's id (`chatcmpl-abc` → `msg_abc`)."""
    text = chat_id if isinstance(chat_id, str) and chat_id else "gateway"
    return "msg_" + text.removeprefix("chatcmpl-")


def tool_input(arguments: Any) -> Any:
    """A tool call's arguments (a JSON text in chat) as the object Messages carries."""
    if isinstance(arguments, dict):
        return arguments
    if not isinstance(arguments, str) or not arguments.strip():
        return {}
    try:
        return orjson.loads(arguments)
    except orjson.JSONDecodeError:
        raise UpstreamError(
            "bad_response", "provider sent tool arguments that are not JSON"
        ) from None


def message_from_chat(chat: Any, usage: Usage | None, model: str) -> dict[str, Any]:
    """A chat completion (already read by the target's adapter) as a Messages answer."""
    try:
        choice = chat["choices"][0]
        message = choice["message"]
    except (KeyError, IndexError, TypeError):
        raise UpstreamError("bad_response", "provider answer has no message") from None
    content: list[dict[str, Any]] = []
    text = message.get("content") if isinstance(message, dict) else None
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    calls = message.get("tool_calls") if isinstance(message, dict) else None
    for call in calls if isinstance(calls, list) else ():
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            continue
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id"),
                "name": function.get("name"),
                "input": tool_input(function.get("arguments")),
            }
        )
    return {
        "id": message_id(chat.get("id")),
        "type": "message",
        "role": "assistant",
        "model": chat.get("model") or model,
        "content": content,
        "stop_reason": stop_reason(choice.get("finish_reason")),
        "stop_sequence": None,
        "usage": messages_usage(usage),
    }


def event(name: str, data: dict[str, Any]) -> bytes:
    """One Messages stream event, framed (`event:` names it, as Anthropic sends it)."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


_ERROR_TYPES = {"rate_limited": "rate_limit_error", "timeout": "timeout_error"}


def stream_error_event(error: UpstreamError) -> bytes:
    """The `error` event that ends a Messages stream failing after its first byte."""
    kind = _ERROR_TYPES.get(error.reason, "api_error")
    return event("error", {"type": "error", "error": {"type": kind, "message": error.message}})
