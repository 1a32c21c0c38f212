"""Legacy completions (`POST /v1/completions`): the body passes through to targets that
have the endpoint (OpenAI-compatible APIs, Azure deployments); for any other target it
is `unsupported` (no translation keeps the meaning of a raw prompt continuation), so the
next target is tried. Usage is read from the answer, or from the stream's last chunk."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from gateway.config.loader import ProviderConfig
from gateway.errors import UpstreamError
from gateway.providers.base import Adapter, UpstreamRequest, Usage
from gateway.providers.openai import OpenAIAdapter
from gateway.providers.openai_stream import OpenAIStream, loads, usage_from_openai

ENDPOINT = "/v1/completions"
_JSON = "application/json"


def completions_request(
    adapter: Adapter,
    provider: ProviderConfig,
    model: str,
    body: Mapping[str, Any],
    stream: bool,
) -> UpstreamRequest:
    """Raises `UpstreamError("unsupported")` for a target without the endpoint."""
    # The built-in mock speaks OpenAI's chat format in-process, without this endpoint.
    if not isinstance(adapter, OpenAIAdapter) or provider.type == "mock":
        raise UpstreamError(
            "unsupported", f"provider type {provider.type} has no {ENDPOINT} endpoint"
        )
    out = dict(body)
    out["model"] = model
    if stream:  # usage is asked for, so cost is known; the client sees it only if it asked
        options = out.get("stream_options")
        out["stream_options"] = {
            **(options if isinstance(options, dict) else {}),
            "include_usage": True,
        }
    headers = {"Content-Type": _JSON, "Accept": _JSON, **adapter.auth_headers(provider)}
    url = adapter.endpoint(provider, model, "completions")
    return UpstreamRequest(url, headers, orjson.dumps(out))


def completions_response(body: bytes) -> tuple[bytes, Usage | None]:
    data = loads(body, "a response")
    if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
        raise UpstreamError("bad_response", "provider completion has no choices")
    return body, usage_from_openai(data.get("usage"))


class CompletionStream(OpenAIStream):
    """`text_completion` chunks pass through as they came (the fast path is the chat
    stream's); the first token is the first text."""

    __slots__ = ()

    def _starts(self, first: Any) -> bool:
        return isinstance(first, dict) and bool(first.get("text") or first.get("finish_reason"))
