"""The text of an answer, kept only when a feature asks for it (shadow comparison,
capture): read from a chat completion body, or collected from a stream's chunks."""

from __future__ import annotations

from typing import Any

import orjson


def answer_text(body: bytes) -> str | None:
    """The assistant's text in an OpenAI chat completion (tool calls as JSON), or in
    an Anthropic Messages answer (its text blocks; tool_use blocks as JSON)."""
    try:
        data = orjson.loads(body)
        if isinstance(data, dict) and data.get("type") == "message":
            return _blocks_text(data["content"])
        message = data["choices"][0]["message"]
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
        return None
    return _message_text(message)


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
    """Collects the text of an OpenAI chunk stream, for when the answer is kept."""

    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts: list[str] = []

    def add(self, events: bytes) -> None:
        """`events`: the SSE bytes sent to the client (complete `data:` events)."""
        for block in events.split(b"\n\n"):
            if block[:7] == b"event: ":  # a Messages stream's
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
        if name == b"event: content_block_delta":
            delta = orjson.loads(data).get("delta")
            piece = (
                delta.get("text") or delta.get("partial_json") if isinstance(delta, dict) else None
            )
            if isinstance(piece, str):
                self.parts.append(piece)
        elif name == b"event: content_block_start":
            block_ = orjson.loads(data).get("content_block")
            if isinstance(block_, dict) and block_.get("type") == "tool_use":
                self.parts.append(orjson.dumps({"tool_use": block_.get("name")}).decode())

    def text(self) -> str:
        return "".join(self.parts)
