"""Anthropic Messages streams → OpenAI `chat.completion.chunk` payloads, and the pieces
the non-streaming translation shares with them (usage, finish reasons, JSON reading).

A stream is `message_start`, then per content block `content_block_start`,
`content_block_delta`s and `content_block_stop`, then `message_delta` (stop reason and
final usage) and `message_stop`; `ping` may come anywhere, `error` ends the stream.
The request's `AnswerShape` says how tool use goes back: the forced answer tool's
`input_json_delta`s as content deltas, a legacy client's call as `function_call`
deltas; `thinking_delta`s go out as `reasoning_content` deltas.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from gateway.errors import Reason, UpstreamError
from gateway.providers.anthropic_params import PLAIN, AnswerShape
from gateway.providers.base import SSEEvent, Usage
from gateway.providers.sse import SSEReader, sse_frame

_FINISH_REASONS: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# Error types seen in `error` stream events; anything else is a provider fault.
_STREAM_ERROR_REASONS: dict[str, Reason] = {
    "rate_limit_error": "rate_limited",
    "overloaded_error": "server_error",
}

_USAGE_KEYS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
)


def loads(body: bytes, what: str) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise UpstreamError("bad_response", f"provider sent {what} that is not JSON") from None


def finish_reason(stop_reason: Any) -> str | None:
    if stop_reason is None:
        return None
    return _FINISH_REASONS.get(str(stop_reason), "stop")


def _count(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def usage_from_anthropic(raw: Any) -> Usage | None:
    """Anthropic counts cache reads and writes apart from `input_tokens`; our `Usage`
    (like OpenAI's `prompt_tokens`) counts the whole prompt."""
    if not isinstance(raw, dict):
        return None
    cache_read = _count(raw.get("cache_read_input_tokens"))
    cache_write = _count(raw.get("cache_creation_input_tokens"))
    return Usage(
        input_tokens=_count(raw.get("input_tokens")) + cache_read + cache_write,
        output_tokens=_count(raw.get("output_tokens")),
        cached_input_tokens=cache_read,
        cache_write_tokens=cache_write,
    )


def openai_usage(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": {
            "cached_tokens": usage.cached_input_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
        },
    }


def stream_error(error: Any) -> UpstreamError:
    err = error if isinstance(error, dict) else {}
    kind = str(err.get("type") or "api_error")
    reason = _STREAM_ERROR_REASONS.get(kind, "server_error")
    return UpstreamError(reason, f"provider stream error: {kind}: {err.get('message', '')}"[:300])


class AnthropicStream:
    """One Anthropic stream; every chunk it makes shares one id and `created`."""

    __slots__ = (
        "_answer_block",
        "_called",
        "_raw_usage",
        "_reader",
        "_shape",
        "_tools",
        "content_started",
        "created",
        "finished",
        "id",
        "include_usage",
        "model",
        "usage",
    )

    def __init__(self, model: str, include_usage: bool, shape: AnswerShape = PLAIN) -> None:
        self.model = model
        self._shape = shape
        self._answer_block: int | None = None  # the forced answer tool's content block
        self._called = False  # a tool call (not the answer tool) went to the client
        self.include_usage = include_usage
        self.id = "chatcmpl-anthropic"
        self.created = int(time.time())
        self.usage: Usage | None = None
        self.finished = False
        self.content_started = False
        self._raw_usage: dict[str, int] = {}
        self._tools: dict[int, int] = {}  # content block index → OpenAI tool call index
        self._reader = SSEReader()

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return orjson.dumps(
            {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [choice],
            }
        )

    def _add_usage(self, raw: Any) -> None:
        if not isinstance(raw, dict):
            return
        for key in _USAGE_KEYS:
            if raw.get(key) is not None:
                self._raw_usage[key] = _count(raw[key])
        self.usage = usage_from_anthropic(self._raw_usage)

    def feed_bytes(self, chunk: bytes) -> bytes:
        out: list[bytes] = []
        for event in self._reader.feed(chunk):
            out += self.feed(event)
        return sse_frame(out)

    def feed(self, event: SSEEvent) -> list[bytes]:
        data = loads(event.data, "a stream event")
        if not isinstance(data, dict):
            raise UpstreamError(
                "bad_response", "provider sent a stream event that is not an object"
            )
        kind = data.get("type") or event.event
        if kind == "content_block_delta":
            return self._delta(data)
        if kind == "content_block_start":
            return self._block_start(data)
        if kind == "message_start":
            message = data.get("message")
            message = message if isinstance(message, dict) else {}
            if message.get("id"):
                self.id = f"chatcmpl-{message['id']}"
            if message.get("model"):
                self.model = str(message["model"])
            self._add_usage(message.get("usage"))
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "message_delta":
            self._add_usage(data.get("usage"))
            delta = data.get("delta")
            stop = delta.get("stop_reason") if isinstance(delta, dict) else None
            finish = finish_reason(stop) or "stop"
            if finish == "tool_calls" and not self._called:
                finish = "stop"  # only the answer tool was used: this is the answer
            elif finish == "tool_calls" and self._shape.functions:
                finish = "function_call"
            return [self._chunk({}, finish)]
        if kind == "message_stop":
            self.finished = True
            if self.include_usage and self.usage is not None:
                payload = {
                    "id": self.id,
                    "object": "chat.completion.chunk",
                    "created": self.created,
                    "model": self.model,
                    "choices": [],
                    "usage": openai_usage(self.usage),
                }
                return [orjson.dumps(payload)]
            return []
        if kind == "error":
            raise stream_error(data.get("error"))
        return []  # ping, content_block_stop, and event types added later

    def _block_start(self, data: dict[str, Any]) -> list[bytes]:
        block = data.get("content_block")
        if not isinstance(block, dict):
            return []
        if block.get("type") == "tool_use":
            position = _count(data.get("index"))
            name = block.get("name")
            if self._answer_block is None and name is not None and name == self._shape.json_tool:
                self._answer_block = position  # its input comes as content deltas
                return []
            if self._shape.functions:
                if self._called:
                    return []  # a legacy client takes one call a turn
                self._called = self.content_started = True
                self._tools[position] = 0
                return [self._chunk({"function_call": {"name": name, "arguments": ""}})]
            index = len(self._tools)
            self._tools[position] = index
            self._called = self.content_started = True
            call = {
                "index": index,
                "id": block.get("id"),
                "type": "function",
                "function": {"name": block.get("name"), "arguments": ""},
            }
            return [self._chunk({"tool_calls": [call]})]
        text = block.get("text") if block.get("type") == "text" else None
        if isinstance(text, str) and text:
            self.content_started = True
            return [self._chunk({"content": text})]
        return []

    def _delta(self, data: dict[str, Any]) -> list[bytes]:
        delta = data.get("delta")
        if not isinstance(delta, dict):
            return []
        kind = delta.get("type")
        if kind == "text_delta":
            text = delta.get("text")
            if not isinstance(text, str) or not text:
                return []
            self.content_started = True
            return [self._chunk({"content": text})]
        if kind == "input_json_delta":
            piece = delta.get("partial_json")
            position = _count(data.get("index"))
            if not isinstance(piece, str) or not piece:
                return []
            if position == self._answer_block:
                self.content_started = True
                return [self._chunk({"content": piece})]
            index = self._tools.get(position)
            if index is None:
                return []
            if self._shape.functions:
                return [self._chunk({"function_call": {"arguments": piece}})]
            call = {"index": index, "function": {"arguments": piece}}
            return [self._chunk({"tool_calls": [call]})]
        if kind == "thinking_delta":
            thought = delta.get("thinking")
            if not isinstance(thought, str) or not thought:
                return []
            self.content_started = True  # the model is answering: no failover after this
            return [self._chunk({"reasoning_content": thought})]
        return []  # signature and citation deltas have no OpenAI counterpart
