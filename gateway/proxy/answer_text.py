"""The text of an answer, kept only when a feature asks for it (shadow comparison,
capture): read from a chat completion body, or collected from a stream's chunks."""

from __future__ import annotations

from typing import Any

import orjson


def answer_text(body: bytes) -> str | None:
    """The assistant's text in an OpenAI chat completion (tool calls as JSON), or in
    a Responses object (its output items)."""
    try:
        data = orjson.loads(body)
        if isinstance(data, dict) and "output" in data and "choices" not in data:
            return _output_text(data["output"])
        message = data["choices"][0]["message"]
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
        return None
    return _message_text(message)


def _output_text(items: Any) -> str | None:
    if not isinstance(items, list):
        return None
    text = ""
    for item in items:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "message":
            parts = item.get("content") or []
            text += "".join(p.get("text", "") for p in parts if isinstance(p, dict))
        elif item.get("type") == "function_call":
            text += orjson.dumps(item).decode()
    return text


def _message_text(message: Any) -> str | None:
    if not isinstance(message, dict):
        return None
    content = message.get("content")
    text = content if isinstance(content, str) else ""
    calls = message.get("tool_calls")
    if calls:
        text += orjson.dumps(calls).decode()
    return text


class StreamAnswer:
    """Collects the text of an OpenAI chunk stream, for when the answer is kept."""

    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts: list[str] = []

    def add(self, events: bytes) -> None:
        """`events`: the SSE bytes sent to the client (complete `data:` events)."""
        for block in events.split(b"\n\n"):
            if block[:7] == b"event: ":  # a Responses stream's
                self._event(block)
                continue
            try:
                chunk = orjson.loads(block[6:])
                delta = chunk["choices"][0]["delta"]
            except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
                continue
            content = delta.get("content") if isinstance(delta, dict) else None
            if isinstance(content, str):
                self.parts.append(content)
            elif isinstance(delta, dict) and delta.get("tool_calls"):
                self.parts.append(orjson.dumps(delta["tool_calls"]).decode())

    def _event(self, block: bytes) -> None:
        name, _, data = block.partition(b"\ndata: ")
        if name == b"event: response.output_text.delta":
            delta = orjson.loads(data).get("delta")
            if isinstance(delta, str):
                self.parts.append(delta)
        elif name == b"event: response.output_item.done":
            item = orjson.loads(data).get("item")
            if isinstance(item, dict) and item.get("type") == "function_call":
                self.parts.append(orjson.dumps(item).decode())

    def text(self) -> str:
        return "".join(self.parts)
