"""OpenAI chat chunks → the Anthropic Messages event stream, for a streamed
`/v1/messages` request that a chat-speaking target served.

The target's own translator reads its stream (usage, errors, the first token, the
end); this one turns what it gives into `message_start`, one `content_block_start` /
`content_block_delta`s / `content_block_stop` per text run or tool call, and at the
end `message_delta` (stop reason, usage) and `message_stop`."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.errors import UpstreamError
from gateway.providers.base import SSEEvent, StreamTranslator, Usage
from gateway.providers.messages_from_chat import event, message_id, messages_usage, stop_reason


class ChatToMessagesStream:
    """Wraps the target's chat translator (made with `include_usage`: the usage chunk
    is read here and never reaches the client as a chunk)."""

    __slots__ = (
        "_blocks",
        "_inner",
        "_open",
        "_open_kind",
        "_started",
        "_stop",
        "_tools",
        "content_started",
        "finished",
        "model",
        "usage",
    )

    def __init__(self, inner: StreamTranslator, model: str) -> None:
        self._inner = inner
        self.model = model
        self.usage: Usage | None = None
        self.finished = False
        self.content_started = False
        self._started = False  # message_start sent
        self._blocks = 0  # content blocks begun so far
        self._open = -1  # the index of the block not yet stopped
        self._open_kind = ""
        self._tools: dict[int, int] = {}  # chat tool call index → block index
        self._stop: Any = None  # the finish reason, once given

    def feed(self, sse: SSEEvent) -> list[bytes]:
        return self._after(self._events(self._inner.feed(sse)))

    def feed_bytes(self, chunk: bytes) -> bytes:
        framed = self._inner.feed_bytes(chunk)
        payloads = [block[6:] for block in framed.split(b"\n\n") if block[:6] == b"data: "]
        return b"".join(self._after(self._events(payloads)))

    def _after(self, out: list[bytes]) -> list[bytes]:
        inner = self._inner
        self.usage = inner.usage
        self.content_started = inner.content_started
        if inner.finished and not self.finished:
            self.finished = True
            if not self._started:
                out += self._start({})
            out += self._close()
            delta = {"stop_reason": stop_reason(self._stop), "stop_sequence": None}
            out.append(
                event(
                    "message_delta",
                    {"type": "message_delta", "delta": delta, "usage": messages_usage(self.usage)},
                )
            )
            out.append(event("message_stop", {"type": "message_stop"}))
        return out

    def _events(self, payloads: list[bytes]) -> list[bytes]:
        out: list[bytes] = []
        for payload in payloads:
            try:
                chunk = orjson.loads(payload)
            except orjson.JSONDecodeError:
                raise UpstreamError(
                    "bad_response", "provider sent a chunk that is not JSON"
                ) from None
            if not isinstance(chunk, dict):
                continue
            if not self._started:
                out += self._start(chunk)
            choices = chunk.get("choices")
            first = choices[0] if isinstance(choices, list) and choices else None
            if not isinstance(first, dict):
                continue  # the usage chunk: read by the target's translator
            delta = first.get("delta")
            if isinstance(delta, dict):
                text = delta.get("content")
                if isinstance(text, str) and text:
                    out += self._text(text)
                calls = delta.get("tool_calls")
                if isinstance(calls, list):
                    for call in calls:
                        if isinstance(call, dict):
                            out += self._tool_call(call)
            if first.get("finish_reason") is not None:
                self._stop = first["finish_reason"]
        return out

    def _start(self, chunk: dict[str, Any]) -> list[bytes]:
        self._started = True
        message: dict[str, Any] = {
            "id": message_id(chunk.get("id")),
            "type": "message",
            "role": "assistant",
            "model": chunk.get("model") or self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},  # known at the end: message_delta
        }
        return [event("message_start", {"type": "message_start", "message": message})]

    def _begin(self, kind: str, block: dict[str, Any]) -> list[bytes]:
        out = self._close()
        self._open, self._open_kind = self._blocks, kind
        self._blocks += 1
        start = {"type": "content_block_start", "index": self._open, "content_block": block}
        out.append(event("content_block_start", start))
        return out

    def _close(self) -> list[bytes]:
        if self._open < 0:
            return []
        index, self._open, self._open_kind = self._open, -1, ""
        return [event("content_block_stop", {"type": "content_block_stop", "index": index})]

    def _delta(self, index: int, delta: dict[str, Any]) -> bytes:
        return event(
            "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
        )

    def _text(self, text: str) -> list[bytes]:
        out = [] if self._open_kind == "text" else self._begin("text", {"type": "text", "text": ""})
        out.append(self._delta(self._open, {"type": "text_delta", "text": text}))
        return out

    def _tool_call(self, call: dict[str, Any]) -> list[bytes]:
        position = call.get("index")
        position = position if isinstance(position, int) else len(self._tools)
        out: list[bytes] = []
        index = self._tools.get(position)
        if index is None:
            function = call.get("function")
            name = function.get("name") if isinstance(function, dict) else None
            block: dict[str, Any] = {
                "type": "tool_use",
                "id": call.get("id"),
                "name": name,
                "input": {},
            }
            out += self._begin("tool_use", block)
            index = self._tools[position] = self._open
        function = call.get("function")
        arguments = function.get("arguments") if isinstance(function, dict) else None
        if isinstance(arguments, str) and arguments:
            out.append(self._delta(index, {"type": "input_json_delta", "partial_json": arguments}))
        return out
