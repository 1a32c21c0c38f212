"""OpenAI chat completions and embeddings: our own wire format, so requests and
responses pass through nearly untouched; we only read usage and check the shape.
Azure OpenAI is the same format behind deployment URLs and an `api-key` header."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from gateway.config import ProviderConfig
from gateway.errors import UpstreamError, classify_status, error_body, parse_retry_after
from gateway.providers.base import SSEEvent, UpstreamRequest, Usage
from gateway.streaming import DONE, SSEReader, parse_block

_JSON = "application/json"


def usage_from_openai(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    details = raw.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    try:
        return Usage(
            input_tokens=int(raw.get("prompt_tokens") or 0),
            output_tokens=int(raw.get("completion_tokens") or 0),
            cached_input_tokens=int(cached or 0),
        )
    except (TypeError, ValueError):
        raise UpstreamError("bad_response", "provider usage is not a number") from None


def _loads(body: bytes, what: str) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise UpstreamError("bad_response", f"provider sent {what} that is not JSON") from None


class OpenAIStream:
    """OpenAI chunks pass through as they came; usage is read from the last one."""

    __slots__ = ("_reader", "content_started", "finished", "include_usage", "usage")

    def __init__(self, include_usage: bool) -> None:
        self.include_usage = include_usage
        self.usage: Usage | None = None
        self.finished = False
        self.content_started = False
        self._reader = SSEReader()

    def feed(self, event: SSEEvent) -> list[bytes]:
        data = event.data
        if data == DONE:
            self.finished = True
            return []
        return self._passed(data, _loads(data, "a stream chunk"))

    def feed_bytes(self, chunk: bytes) -> bytes:
        """Until the first token every event is parsed. After it, an event in the usual
        form (one `data: {"…}` line with no usage counts in it, in a read that names no
        error) goes on as it came, unparsed: building objects from every chunk's JSON
        was most of a stream's cost. Anything else (the usage chunk, an error, [DONE],
        an event that does not look like an object) is parsed and checked as before."""
        reader = self._reader
        blocks = reader.blocks(chunk)
        out: list[bytes] = []
        plain: bool | None = None  # this read's events are all single lines, none an error
        for block in blocks:
            if self.finished:
                break  # nothing after [DONE] is sent on
            if self.content_started and block[:8] == b'data: {"' and block[-1:] == b"}":
                if plain is None:
                    text = reader.text
                    plain = b'"error"' not in text and text.count(b"\n") == 2 * len(blocks)
                if plain and (block[-13:] == b'"usage":null}' or b'"usage"' not in block):
                    out.append(block)
                    continue
            event = parse_block(block)
            if event is not None:
                out += [b"data: " + payload for payload in self.feed(event)]
        return b"\n\n".join(out) + b"\n\n" if out else b""

    def _passed(self, data: bytes, chunk: Any) -> list[bytes]:
        if not isinstance(chunk, dict):
            raise UpstreamError(
                "bad_response", "provider sent a stream chunk that is not an object"
            )
        if "error" in chunk:
            err = chunk["error"] if isinstance(chunk["error"], dict) else {}
            raise UpstreamError(
                "server_error", f"provider stream error: {err.get('message', '')}"[:300]
            )
        choices = chunk.get("choices")
        if choices is not None and not isinstance(choices, list):
            raise UpstreamError("bad_response", "provider stream chunk has bad choices")
        if not self.content_started and choices:
            first = choices[0]
            delta = first.get("delta") if isinstance(first, dict) else None
            if not isinstance(delta, dict):
                raise UpstreamError("bad_response", "provider stream chunk has no delta")
            if delta.get("content") or delta.get("tool_calls") or first.get("finish_reason"):
                self.content_started = True
        usage = chunk.get("usage")
        if usage:
            self.usage = usage_from_openai(usage)
            if not choices and not self.include_usage:
                return []  # the usage chunk we asked for on the client's behalf
        return [data]


class OpenAIAdapter:
    """`type = "openai"`: any OpenAI-compatible API."""

    def endpoint(self, provider: ProviderConfig, model: str, operation: str) -> str:
        return f"{provider.base_url}/{operation}"

    def auth_headers(self, provider: ProviderConfig) -> dict[str, str]:
        key = provider.api_key.reveal()
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _request(
        self, provider: ProviderConfig, model: str, operation: str, body: dict[str, Any]
    ) -> UpstreamRequest:
        headers = {"Content-Type": _JSON, "Accept": _JSON, **self.auth_headers(provider)}
        return UpstreamRequest(
            self.endpoint(provider, model, operation), headers, orjson.dumps(body)
        )

    def chat_request(
        self, provider: ProviderConfig, model: str, body: Mapping[str, Any], stream: bool
    ) -> UpstreamRequest:
        out = dict(body)
        out["model"] = model
        if stream:
            options = out.get("stream_options")
            out["stream_options"] = {
                **(options if isinstance(options, dict) else {}),
                "include_usage": True,
            }
        return self._request(provider, model, "chat/completions", out)

    def chat_response(self, body: bytes, model: str) -> tuple[bytes, Usage | None]:
        data = _loads(body, "a response")
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
            raise UpstreamError("bad_response", "provider response has no choices")
        return body, usage_from_openai(data.get("usage"))

    def chat_stream(self, model: str, include_usage: bool) -> OpenAIStream:
        return OpenAIStream(include_usage)

    def embeddings_request(
        self, provider: ProviderConfig, model: str, body: Mapping[str, Any]
    ) -> UpstreamRequest:
        return self._request(provider, model, "embeddings", {**body, "model": model})

    def embeddings_response(self, body: bytes) -> tuple[bytes, Usage | None]:
        data = _loads(body, "a response")
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            raise UpstreamError("bad_response", "provider embeddings response has no data")
        return body, usage_from_openai(data.get("usage"))

    def error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        reason = classify_status(status)
        message = f"provider answered {status}"
        client_body: bytes | None = None
        try:
            data = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            detail = data["error"].get("message")
            if isinstance(detail, str) and detail:
                message = f"{message}: {detail[:300]}"
            client_body = body
        else:
            client_body = error_body(
                message, "invalid_request_error" if status < 500 else "api_error"
            )
        retry_after = parse_retry_after(headers.get("Retry-After"))
        if retry_after is None and headers.get("retry-after-ms"):
            ms = parse_retry_after(headers.get("retry-after-ms"))
            retry_after = ms / 1000 if ms is not None else None
        return UpstreamError(
            reason, message, status=status, retry_after_s=retry_after, client_body=client_body
        )


class AzureAdapter(OpenAIAdapter):
    """`type = "azure"`: the target's model is the deployment name."""

    def endpoint(self, provider: ProviderConfig, model: str, operation: str) -> str:
        return (
            f"{provider.base_url}/openai/deployments/{model}/{operation}"
            f"?api-version={provider.api_version}"
        )

    def auth_headers(self, provider: ProviderConfig) -> dict[str, str]:
        key = provider.api_key.reveal()
        return {"api-key": key} if key else {}
