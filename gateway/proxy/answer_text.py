"""The text of an answer, kept only when a feature asks for it (shadow comparison,
capture): read from an answer body (a chat completion, a text completion, a Responses
object, a Messages answer), or collected from a stream's chunks or events."""

from __future__ import annotations

from typing import Any

import orjson


def answer_text(body: bytes) -> str | None:
    """The assistant's text (tool calls as JSON)."""
    try:
        data = orjson.loads(body)
        if isinstance(data, dict) and "choices" not in data:
            if data.get("type") == "message":  # Anthropic Messages
                return _blocks_text(data["content"])
            if "output" in data:  # a Responses object
                return _output_text(data["output"])
        choice = data["choices"][0]
        if "message" not in choice:  # a legacy text completion
            text = choice["text"]
            return text if isinstance(text, str) else None
        message = choice["message"]
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


def _blocks_text(blocks: Any) -> str | None:
    if not isinstance(blocks, list):
        return None
    text = ""
    for block in blocks:
        if isinstance(block, dict) and block.get("type") == "text":
            text += str(block.get("text", ""))
        elif isinstance(block, dict) and block.get("type") == "tool_use":
            text += orjson.dumps(block).decode()
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
    """Collects the text of a stream, for when the answer is kept."""

    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts: list[str] = []

    def add(self, events: bytes) -> None:
        """`events`: the SSE bytes sent to the client (complete events)."""
        for block in events.split(b"\n\n"):
            if block[:7] == b"event: ":  # a Responses or a Messages stream's
                self._event(block)
                continue
            try:
                choice = orjson.loads(block[6:])["choices"][0]
                delta = choice.get("delta")
                if delta is None:  # a legacy text completion's chunk
                    delta = {"content": choice.get("text")}
            except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError):
                continue
            content = delta.get("content") if isinstance(delta, dict) else None
            if isinstance(content, str):
                self.parts.append(content)
            elif isinstance(delta, dict) and delta.get("tool_calls"):
                self.parts.append(orjson.dumps(delta["tool_calls"]).decode())

    def _event(self, block: bytes) -> None:
        name, _, data = block.partition(b"\ndata: ")
        try:
            if name.startswith(b"event: response."):
                self._responses_event(name, orjson.loads(data))
            elif name.startswith(b"event: content_block_"):
                self._messages_event(name, orjson.loads(data))
        except (orjson.JSONDecodeError, AttributeError):
            return

    def _responses_event(self, name: bytes, data: Any) -> None:
        if name == b"event: response.output_text.delta":
            delta = data.get("delta")
            if isinstance(delta, str):
                self.parts.append(delta)
        elif name == b"event: response.output_item.done":
            item = data.get("item")
            if isinstance(item, dict) and item.get("type") == "function_call":
                self.parts.append(orjson.dumps(item).decode())

    def _messages_event(self, name: bytes, data: Any) -> None:
        if name == b"event: content_block_delta":
            delta = data.get("delta")
            piece = (
                delta.get("text") or delta.get("partial_json") if isinstance(delta, dict) else None
            )
            if isinstance(piece, str):
                self.parts.append(piece)
        elif name == b"event: content_block_start":
            block = data.get("content_block")
            if isinstance(block, dict) and block.get("type") == "tool_use":
                self.parts.append(orjson.dumps({"tool_use": block.get("name")}).decode())

    def text(self) -> str:
        return "".join(self.parts)
