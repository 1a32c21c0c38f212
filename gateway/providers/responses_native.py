"""The OpenAI Responses API to a target that speaks it (`type = "openai"`): the body
goes on as the client sent it, `model` replaced and the conversation the gateway kept
for `previous_response_id` written into `input`; the answer and its event stream come
back as they came, usage and the output items read on the way."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from gateway.config.loader import ProviderConfig
from gateway.errors import Reason, UpstreamError
from gateway.providers.base import SSEEvent, UpstreamRequest, Usage
from gateway.providers.openai import OpenAIAdapter
from gateway.providers.responses_chat_stream import ResponseEvents
from gateway.providers.sse import SSEReader

_JSON = "application/json"
# Our own fields, and what the gateway resolves itself, never go upstream.
_NOT_SENT = frozenset({"prompt_variables", "previous_response_id"})
# A prompt's chat params as the Responses API names them.
_PARAMS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "max_tokens": "max_output_tokens",
    "max_completion_tokens": "max_output_tokens",
}
# Events after which the answer has begun: failover is over once one is sent.
_CONTENT_EVENTS = frozenset(
    {
        "response.output_text.delta",
        "response.refusal.delta",
        "response.function_call_arguments.delta",
        "response.reasoning_summary_text.delta",
    }
)


def native_body(
    body: Mapping[str, Any],
    model: str,
    items: Sequence[Mapping[str, Any]],
    params: Mapping[str, Any],
) -> dict[str, Any]:
    """`items`: the whole `input` (a prompt's messages, the kept conversation, the
    client's own); `params`: a prompt's, as defaults the client overrides."""
    out = {_PARAMS[k]: v for k, v in params.items() if k in _PARAMS}
    out.update((k, v) for k, v in body.items() if k not in _NOT_SENT)
    out["model"] = model
    out["input"] = list(items)
    return out


def usage_from_responses(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    details = raw.get("input_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    try:
        return Usage(
            input_tokens=int(raw.get("input_tokens") or 0),
            output_tokens=int(raw.get("output_tokens") or 0),
            cached_input_tokens=int(cached or 0),
        )
    except (TypeError, ValueError):
        raise UpstreamError("bad_response", "provider usage is not a number") from None


def _loads(raw: bytes, what: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise UpstreamError("bad_response", f"provider sent {what} that is not JSON") from None


def read_response(raw: bytes) -> tuple[dict[str, Any], Usage | None]:
    """A Responses object (to pass on as it came) and its usage."""
    data = _loads(raw, "a response")
    if not isinstance(data, dict) or not isinstance(data.get("output"), list):
        raise UpstreamError("bad_response", "provider response has no output")
    return data, usage_from_responses(data.get("usage"))


def _failure(data: Mapping[str, Any]) -> UpstreamError:
    error = data.get("error")
    if not isinstance(error, dict):
        response = data.get("response")
        error = response.get("error") if isinstance(response, dict) else None
    error = error if isinstance(error, dict) else {}
    message = str(error.get("message") or "the provider's response failed")[:300]
    limited = error.get("code") == "rate_limit_exceeded"
    reason: Reason = "rate_limited" if limited else "server_error"
    return UpstreamError(reason, f"provider stream failed: {message}")


class NativeResponsesStream:
    """A `StreamTranslator` for a Responses event stream: the events pass on as they
    came; usage and the final response are read from `response.completed` (or
    `response.incomplete`); `error` and `response.failed` are failures."""

    def __init__(self, request: Mapping[str, Any], model: str) -> None:
        self.usage: Usage | None = None
        self.finished = False
        self.content_started = False
        self.response: dict[str, Any] | None = None
        self._reader = SSEReader()
        self._events = ResponseEvents(request, "", model)  # for `failed`, once the id is known

    def feed(self, event: SSEEvent) -> list[bytes]:
        data = _loads(event.data, "a stream event")
        kind = data.get("type") if isinstance(data, dict) else None
        if not isinstance(kind, str):
            raise UpstreamError("bad_response", "provider stream event has no type")
        if kind in ("error", "response.failed"):
            raise _failure(data)
        if isinstance(data.get("sequence_number"), int):
            self._events.sequence = data["sequence_number"] + 1
        response = data.get("response")
        if kind == "response.created" and isinstance(response, dict):
            self._events.id = str(response.get("id") or "")
            self._events.created_at = response.get("created_at") or self._events.created_at
        elif kind in _CONTENT_EVENTS or (
            kind == "response.output_item.added"
            and isinstance(data.get("item"), dict)
            and data["item"].get("type") != "message"
        ):
            self.content_started = True
        elif kind in ("response.completed", "response.incomplete") and isinstance(response, dict):
            self.finished = True
            self.response = response
            self.usage = usage_from_responses(response.get("usage"))
        return [b"event: " + kind.encode() + b"\ndata: " + event.data + b"\n\n"]

    def feed_bytes(self, chunk: bytes) -> bytes:
        out: list[bytes] = []
        for event in self._reader.feed(chunk):
            out.extend(self.feed(event))
            if self.finished:
                break
        return b"".join(out)

    def failed(self, error: UpstreamError) -> bytes:
        return self._events.failed(error.message, error.reason)


def native_request(
    adapter: OpenAIAdapter, provider: ProviderConfig, model: str, body: Mapping[str, Any]
) -> UpstreamRequest:
    """`POST {base_url}/responses` with the target's credentials."""
    accept = "text/event-stream" if body.get("stream") else _JSON
    headers = {"Content-Type": _JSON, "Accept": accept, **adapter.auth_headers(provider)}
    url = adapter.endpoint(provider, model, "responses")
    return UpstreamRequest(url, headers, orjson.dumps(body))
