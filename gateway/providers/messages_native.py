"""`/v1/messages` to a target that speaks the Messages API (`type = "anthropic"`): the
client's body goes as it came, with the target's model (and a prompt's part put in
front); the answer and the event stream come back as they came, usage read on the way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gateway.config.loader import ProviderConfig
from gateway.errors import UpstreamError
from gateway.providers.anthropic import API_VERSION, DEFAULT_MAX_TOKENS, translate_request
from gateway.providers.anthropic_stream import loads, stream_error, usage_from_anthropic
from gateway.providers.base import SSEEvent, UpstreamRequest, Usage
from gateway.providers.sse import SSEReader, parse_block

GATEWAY_FIELDS = ("prompt_variables",)  # ours: never sent upstream
_PROMPT_DEFAULTS = ("max_tokens", "temperature", "top_p", "stop_sequences", "metadata")
_USAGE_KEYS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
)


def native_body(
    client: Mapping[str, Any],
    prompt_messages: Sequence[Any] = (),
    prompt_params: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The body to send, less its `model`: the client's, after a prompt's rendered chat
    messages (as `system` and messages) and with its params as defaults."""
    body = {k: v for k, v in client.items() if k not in GATEWAY_FIELDS}
    if prompt_messages or prompt_params:
        chat = {**(prompt_params or {}), "messages": list(prompt_messages)}
        prompt = translate_request(chat, "", False)
        for name in _PROMPT_DEFAULTS:
            if name in prompt and body.get(name) is None:
                body[name] = prompt[name]
        if "system" in prompt:
            body["system"] = _joined(prompt["system"], body.get("system"))
        body["messages"] = _conversation(prompt["messages"], body.get("messages") or [])
    if body.get("max_tokens") is None:
        body["max_tokens"] = DEFAULT_MAX_TOKENS
    return body


def _blocks(content: Any) -> list[Any]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return list(content) if isinstance(content, list) else []


def _joined(prompt: Any, client: Any) -> Any:
    if not client:
        return prompt
    if isinstance(prompt, str) and isinstance(client, str):
        return f"{prompt}\n\n{client}"
    return [*_blocks(prompt), *_blocks(client)]


def _conversation(prompt: list[Any], client: list[Any]) -> list[Any]:
    """The prompt's turns, then the client's; two turns of one role where they meet
    become one (the Messages API alternates roles)."""
    if prompt and client and isinstance(client[0], dict):
        last, first = prompt[-1], client[0]
        if last.get("role") == first.get("role"):
            merged = {**first, "content": [*_blocks(last["content"]), *_blocks(first["content"])]}
            return [*prompt[:-1], merged, *client[1:]]
    return [*prompt, *client]


def native_request(
    provider: ProviderConfig,
    body: bytes,
    stream: bool,
    headers: Mapping[str, str],
    path: str = "/v1/messages",
) -> UpstreamRequest:
    """`headers`: the client's `anthropic-version` and `anthropic-beta`, passed on;
    `path`: the Messages API's endpoint (its token counter too)."""
    sent = {
        "content-type": "application/json",
        "accept": "text/event-stream" if stream else "application/json",
        "anthropic-version": headers.get("anthropic-version") or API_VERSION,
    }
    beta = headers.get("anthropic-beta")
    if beta:
        sent["anthropic-beta"] = beta
    key = provider.api_key.reveal()
    if key:
        sent["x-api-key"] = key
    return UpstreamRequest(f"{provider.base_url}{path}", sent, body)


def read_message(raw: bytes) -> Usage | None:
    """The usage of a Messages answer, which goes to the client as it came."""
    data = loads(raw, "a response")
    if not isinstance(data, dict) or not isinstance(data.get("content"), list):
        raise UpstreamError("bad_response", "provider response has no content")
    return usage_from_anthropic(data.get("usage"))


class NativeMessagesStream:
    """A Messages event stream passed through event by event; only the events that
    carry usage, say where it ends or report an error are parsed."""

    __slots__ = ("_raw_usage", "_reader", "content_started", "finished", "usage")

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.finished = False
        self.content_started = False
        self._raw_usage: dict[str, Any] = {}
        self._reader = SSEReader()

    def feed_bytes(self, chunk: bytes) -> bytes:
        out: list[bytes] = []
        for block in self._reader.blocks(chunk):
            found = parse_block(block) if block else None
            if found is not None and not self.finished:
                self.feed(found)
                out.append(block + b"\n\n")
        return b"".join(out)

    def feed(self, sse: SSEEvent) -> list[bytes]:
        kind = sse.event
        if kind == "content_block_delta":
            self.content_started = True
        elif kind == "message_stop":
            self.finished = True
        elif kind not in ("ping", "content_block_start", "content_block_stop"):
            self._read(loads(sse.data, "a stream event"))
        return [sse.data]

    def _read(self, data: Any) -> None:
        if not isinstance(data, dict):
            raise UpstreamError(
                "bad_response", "provider sent a stream event that is not an object"
            )
        kind = data.get("type")
        if kind == "message_start":
            message = data.get("message")
            self._add_usage(message.get("usage") if isinstance(message, dict) else None)
        elif kind == "message_delta":
            self._add_usage(data.get("usage"))
        elif kind == "content_block_delta":
            self.content_started = True
        elif kind == "message_stop":
            self.finished = True
        elif kind == "error":
            raise stream_error(data.get("error"))

    def _add_usage(self, raw: Any) -> None:
        if isinstance(raw, dict):  # counts are running totals: the last one stands
            self._raw_usage.update({k: raw[k] for k in _USAGE_KEYS if raw.get(k) is not None})
            self.usage = usage_from_anthropic(self._raw_usage)
