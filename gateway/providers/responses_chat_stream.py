"""A chat chunk stream (what every provider's stream translator gives) as the
Responses API's event stream: `response.created`, `response.in_progress`, the output
items with their content parts and deltas, and `response.completed` with usage.

The provider's own translator reads its stream (and its usage, in the same pass);
this one turns the chat chunks it yields into events and keeps the output items, so
the answer can be stored for `previous_response_id` once the stream has ended."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson

from gateway.errors import UpstreamError
from gateway.providers.base import SSEEvent, StreamTranslator, Usage
from gateway.providers.responses_chat import (
    function_call_item,
    message_item,
    new_id,
    response_object,
    usage_json,
)
from gateway.providers.sse import SSEReader


def sse_event(payload: dict[str, Any]) -> bytes:
    """One Responses event: its type as the SSE event name, as the API frames it."""
    kind: str = payload["type"]
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


class ResponseEvents:
    """Numbers the events of one response and frames them."""

    def __init__(self, request: Mapping[str, Any], response_id: str, model: str) -> None:
        self.request = request
        self.id = response_id
        self.model = model
        self.created_at = int(time.time())
        self.sequence = 0
        self.out: list[bytes] = []

    def emit(self, type_: str, **fields: Any) -> None:
        self.out.append(sse_event({"type": type_, "sequence_number": self.sequence, **fields}))
        self.sequence += 1

    def snapshot(self, status: str, **fields: Any) -> dict[str, Any]:
        return response_object(self.request, self.id, self.created_at, self.model, status, **fields)

    def take(self) -> bytes:
        out, self.out = b"".join(self.out), []
        return out

    def failed(self, message: str, code: str) -> bytes:
        """The event that ends a stream that broke after its first byte."""
        response = self.snapshot("failed")
        response["error"] = {"code": code, "message": message}
        self.emit("response.failed", response=response)
        return self.take()


class ChatToResponsesStream:
    """A `StreamTranslator` over another one: chat chunks in, Responses events out."""

    def __init__(
        self, inner: StreamTranslator, request: Mapping[str, Any], response_id: str, model: str
    ) -> None:
        self.inner = inner
        self.events = ResponseEvents(request, response_id, model)
        self.usage: Usage | None = None  # the provider's, as its translator reads it
        self.finished = False
        self.content_started = False
        self.output: list[dict[str, Any]] = []  # items done, in order
        self.response: dict[str, Any] | None = None  # the whole answer, once finished
        self._reader = SSEReader()
        self._started = False
        self._text: dict[str, Any] | None = None  # the message item being written
        self._calls: dict[int, dict[str, Any]] = {}  # chat tool-call index → open item
        self._finish_reason: str | None = None

    def feed(self, event: SSEEvent) -> list[bytes]:
        for payload in self.inner.feed(event):
            self._chunk(orjson.loads(payload))
        self.usage = self.inner.usage
        if self.inner.finished and not self.finished:
            self._finish()
        out = self.events.take()
        return [out] if out else []

    def feed_bytes(self, chunk: bytes) -> bytes:
        out: list[bytes] = []
        for event in self._reader.feed(chunk):
            out.extend(self.feed(event))
            if self.finished:
                break
        return b"".join(out)

    def failed(self, error: UpstreamError) -> bytes:
        return self.events.failed(error.message, error.reason)

    # -- chat chunk → events ---------------------------------------------------------

    def _start(self) -> None:
        self._started = True
        events = self.events
        events.emit("response.created", response=events.snapshot("in_progress"))
        events.emit("response.in_progress", response=events.snapshot("in_progress"))

    def _chunk(self, chunk: Any) -> None:
        if not self._started:
            self._start()
        if isinstance(chunk, dict) and isinstance(chunk.get("model"), str) and chunk["model"]:
            self.events.model = chunk["model"]
        choices = chunk.get("choices") if isinstance(chunk, dict) else None
        if not choices or not isinstance(choices[0], dict):
            return
        choice = choices[0]
        delta = choice.get("delta") or {}
        content = delta.get("content")
        if isinstance(content, str) and content:
            self._text_delta(content)
        for call in delta.get("tool_calls") or ():
            self._call_delta(call)
        if choice.get("finish_reason"):
            self._finish_reason = choice["finish_reason"]

    def _text_delta(self, text: str) -> None:
        events = self.events
        item = self._text
        if item is None:
            self._close_calls()  # items are told in order: one open at a time
            item = self._text = {**message_item(new_id("msg"), ""), "status": "in_progress"}
            index = len(self.output) + len(self._calls)
            item["_index"] = index
            shown = {k: v for k, v in item.items() if k != "_index"}
            shown["content"] = []
            events.emit("response.output_item.added", output_index=index, item=shown)
            events.emit(
                "response.content_part.added",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                part={"type": "output_text", "text": "", "annotations": [], "logprobs": []},
            )
        self.content_started = True
        item["content"][0]["text"] += text
        events.emit(
            "response.output_text.delta",
            item_id=item["id"],
            output_index=item["_index"],
            content_index=0,
            delta=text,
            logprobs=[],
        )

    def _call_delta(self, call: Any) -> None:
        if not isinstance(call, dict):
            return
        events = self.events
        position = call.get("index", 0)
        function = call.get("function") or {}
        item = self._calls.get(position)
        if item is None:
            self._close_text()
            self._close_calls()  # chat streams one call after another
            item = function_call_item(
                new_id("fc"),
                str(call.get("id") or new_id("call")),
                str(function.get("name") or ""),
                "",
            )
            item["status"] = "in_progress"
            item["_index"] = len(self.output) + len(self._calls)
            self._calls[position] = item
            shown = {k: v for k, v in item.items() if k != "_index"}
            events.emit("response.output_item.added", output_index=item["_index"], item=shown)
        self.content_started = True
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            item["arguments"] += arguments
            events.emit(
                "response.function_call_arguments.delta",
                item_id=item["id"],
                output_index=item["_index"],
                delta=arguments,
            )

    def _close_text(self) -> None:
        item, self._text = self._text, None
        if item is None:
            return
        events, index = self.events, item.pop("_index")
        part = item["content"][0]
        common = {"item_id": item["id"], "output_index": index, "content_index": 0}
        events.emit("response.output_text.done", **common, text=part["text"], logprobs=[])
        events.emit("response.content_part.done", **common, part=part)
        item["status"] = "completed"
        events.emit("response.output_item.done", output_index=index, item=item)
        self.output.append(item)

    def _close_calls(self) -> None:
        events = self.events
        for item in self._calls.values():
            index = item.pop("_index")
            events.emit(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=index,
                name=item["name"],
                arguments=item["arguments"],
            )
            item["status"] = "completed"
            events.emit("response.output_item.done", output_index=index, item=item)
            self.output.append(item)
        self._calls = {}

    def _finish(self) -> None:
        if not self._started:
            self._start()
        self._close_text()
        self._close_calls()
        self.finished = True
        events = self.events
        response = events.snapshot(
            "completed",
            output=self.output,
            usage=usage_json(self.inner.usage),
            finish_reason=self._finish_reason,
        )
        self.response = response
        kind = "response.completed" if response["status"] == "completed" else "response.incomplete"
        events.emit(kind, response=response)
