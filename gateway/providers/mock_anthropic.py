"""The mock provider's answers in Anthropic's Messages format (the OpenAI ones are in
gateway.providers.mock): a whole message, and the documented stream of events.

As Anthropic does: a forced tool (`tool_choice` `tool`, or `any`: the last tool) is
answered with a `tool_use` block whose input follows the tool's `input_schema`, and
stop reason `tool_use`; `thinking` enabled puts a `thinking` block (with its
signature) before the answer."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from gateway.providers.mock import count_tokens, split_words

Blocks = list[dict[str, Any]]


def system_text(system: Any) -> str:
    if isinstance(system, str):
        return system
    if isinstance(system, list):
        return " ".join(str(b.get("text", "")) for b in system if isinstance(b, dict))
    return ""


def _event(name: str, **fields: Any) -> bytes:
    data = orjson.dumps({"type": name, **fields})
    return b"event: " + name.encode() + b"\ndata: " + data + b"\n\n"


def _forced_tool(body: dict[str, Any]) -> dict[str, Any] | None:
    choice, tools = body.get("tool_choice"), body.get("tools")
    if not isinstance(choice, dict) or not isinstance(tools, list) or not tools:
        return None
    if choice.get("type") == "any":
        return tools[-1] if isinstance(tools[-1], dict) else None
    if choice.get("type") == "tool":
        return next(
            (t for t in tools if isinstance(t, dict) and t.get("name") == choice.get("name")), None
        )
    return None


def schema_value(schema: Any, defs: dict[str, Any], text: str, depth: int = 0) -> Any:
    """A value that follows a JSON schema (properties, items, enums, `$ref`s to `$defs`,
    anyOf), made from the answer's text so it is the same for the same request."""
    if not isinstance(schema, dict) or depth > 8:
        return None
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return schema_value(defs.get(ref.removeprefix("#/$defs/")), defs, text, depth + 1)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        branches = [
            b for b in schema.get(key) or () if isinstance(b, dict) and b.get("type") != "null"
        ]
        if branches:
            return schema_value(branches[0], defs, text, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        properties = schema.get("properties")
        properties = properties if isinstance(properties, dict) else {}
        return {k: schema_value(v, defs, text, depth + 1) for k, v in properties.items()}
    if kind == "array":
        return [schema_value(schema.get("items"), defs, text, depth + 1)]
    if kind == "string":
        return text
    if kind == "integer":
        return len(text.split())
    if kind == "number":
        return len(text.split()) + 0.5
    if kind == "boolean":
        return True
    return None


def answer_content(body: dict[str, Any], text: str, id_: str) -> tuple[Blocks, str]:
    """The content blocks and stop reason Anthropic would give for this request."""
    blocks: Blocks = []
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        signature = hashlib.sha256(text.encode()).hexdigest()
        blocks.append(
            {"type": "thinking", "thinking": f"Thinking about: {text}", "signature": signature}
        )
    tool = _forced_tool(body)
    if tool is None:
        return [*blocks, {"type": "text", "text": text}], "end_turn"
    schema = tool.get("input_schema")
    defs = schema.get("$defs") if isinstance(schema, dict) else None
    value = schema_value(schema, defs if isinstance(defs, dict) else {}, text)
    use = {"type": "tool_use", "id": f"toolu_{id_}", "name": tool.get("name"), "input": value or {}}
    return [*blocks, use], "tool_use"


def _output_tokens(blocks: Blocks) -> int:
    words = [
        b.get("text") or b.get("thinking") or orjson.dumps(b.get("input")).decode() for b in blocks
    ]
    return sum(count_tokens(str(w)) for w in words)


def anthropic_message(
    model: str, blocks: Blocks, stop_reason: str, input_tokens: int, id_: str, done: bool = True
) -> dict[str, Any]:
    """A Messages answer; with `done=False`, the skeleton that `message_start` carries."""
    return {
        "id": id_,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": blocks if done else [],
        "stop_reason": stop_reason if done else None,
        "stop_sequence": None,
        "usage": {
            "input_tokens": input_tokens,
            "output_tokens": _output_tokens(blocks) if done else 1,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }


def _block_events(index: int, block: dict[str, Any]) -> list[bytes]:
    kind = block["type"]
    start: dict[str, Any]
    if kind == "thinking":
        start = {"type": "thinking", "thinking": ""}
        deltas = [{"type": "thinking_delta", "thinking": p} for p in split_words(block["thinking"])]
        deltas.append({"type": "signature_delta", "signature": block["signature"]})
    elif kind == "tool_use":
        start = {**block, "input": {}}
        json = orjson.dumps(block["input"]).decode()
        deltas = [{"type": "input_json_delta", "partial_json": ""}]
        deltas += [
            {"type": "input_json_delta", "partial_json": json[i : i + 12]}
            for i in range(0, len(json), 12)
        ]
    else:
        start = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": w} for w in split_words(block["text"])]
    events = [_event("content_block_start", index=index, content_block=start)]
    events += [_event("content_block_delta", index=index, delta=d) for d in deltas]
    return [*events, _event("content_block_stop", index=index)]


def anthropic_events(
    model: str, blocks: Blocks, stop_reason: str, input_tokens: int, id_: str
) -> tuple[list[bytes], int]:
    """The framed events of a streamed Messages answer, and how many make half of it."""
    start = anthropic_message(model, blocks, stop_reason, input_tokens, id_, done=False)
    events = [_event("message_start", message=start)]
    for index, block in enumerate(blocks):
        events += _block_events(index, block)
    events.insert(2, _event("ping"))  # after the first block's start, as Anthropic sends
    events += [
        _event(
            "message_delta",
            delta={"stop_reason": stop_reason, "stop_sequence": None},
            usage={"output_tokens": _output_tokens(blocks)},
        ),
        _event("message_stop"),
    ]
    return events, len(events) // 2
