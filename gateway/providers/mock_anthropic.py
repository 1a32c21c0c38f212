"""The mock provider's answers in Anthropic's Messages format (the OpenAI ones are in
gateway.providers.mock): a whole message, and the documented stream of events."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.providers.mock import count_tokens, split_words
from gateway.providers.mock_responses import ToolCall


def system_text(system: Any) -> str:
    if isinstance(system, str):
        return system
    if isinstance(system, list):
        return " ".join(str(b.get("text", "")) for b in system if isinstance(b, dict))
    return ""


def _event(name: str, **fields: Any) -> bytes:
    data = orjson.dumps({"type": name, **fields})
    return b"event: " + name.encode() + b"\ndata: " + data + b"\n\n"


def anthropic_message(
    model: str, text: str, input_tokens: int, id_: str, done: bool = True
) -> dict[str, Any]:
    """A Messages answer; with `done=False`, the skeleton that `message_start` carries."""
    return {
        "id": id_,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}] if done else [],
        "stop_reason": "end_turn" if done else None,
        "stop_sequence": None,
        "usage": {
            "input_tokens": input_tokens,
            "output_tokens": count_tokens(text) if done else 1,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }


def anthropic_events(model: str, text: str, input_tokens: int, id_: str) -> tuple[list[bytes], int]:
    """The framed events of a streamed Messages answer, and how many make half of it."""
    words = split_words(text)
    start = anthropic_message(model, text, input_tokens, id_, done=False)
    events = [
        _event("message_start", message=start),
        _event("content_block_start", index=0, content_block={"type": "text", "text": ""}),
        _event("ping"),
    ]
    events += [
        _event("content_block_delta", index=0, delta={"type": "text_delta", "text": w})
        for w in words
    ]
    events += [
        _event("content_block_stop", index=0),
        _event(
            "message_delta",
            delta={"stop_reason": "end_turn", "stop_sequence": None},
            usage={"output_tokens": count_tokens(text)},
        ),
        _event("message_stop"),
    ]
    return events, 3 + len(words) // 2


def anthropic_tool_use(
    model: str, call: ToolCall, input_tokens: int, id_: str
) -> tuple[dict[str, Any], list[bytes], int]:
    """A Messages answer that calls a tool: the whole message, its stream's framed
    events, and how many of those make half of it."""
    arguments = orjson.dumps(call.arguments).decode()
    block = {"type": "tool_use", "id": call.call_id, "name": call.name, "input": call.arguments}
    message = anthropic_message(model, "", input_tokens, id_)
    message["content"], message["stop_reason"] = [block], "tool_use"
    message["usage"]["output_tokens"] = count_tokens(arguments)
    start = anthropic_message(model, "", input_tokens, id_, done=False)
    events = [
        _event("message_start", message=start),
        _event("content_block_start", index=0, content_block={**block, "input": {}}),
        _event(
            "content_block_delta",
            index=0,
            delta={"type": "input_json_delta", "partial_json": arguments},
        ),
        _event("content_block_stop", index=0),
        _event(
            "message_delta",
            delta={"stop_reason": "tool_use", "stop_sequence": None},
            usage={"output_tokens": count_tokens(arguments)},
        ),
        _event("message_stop"),
    ]
    return message, events, 2
