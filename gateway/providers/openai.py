"""OpenAI chat completions and embeddings: our own wire format, so requests and
responses pass through nearly untouched; we only read usage and check the shape.
Azure OpenAI is the same format behind deployment URLs and an `api-key` header."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from gateway.config.loader import ProviderConfig
from gateway.errors import UpstreamError, classify_status, error_body, parse_retry_after
from gateway.providers.base import UpstreamRequest, Usage
from gateway.providers.openai_stream import OpenAIStream, loads, usage_from_openai

_JSON = "application/json"


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

    def chat_response(
        self, body: bytes, model: str, asked: Mapping[str, Any] | None = None
    ) -> tuple[bytes, Usage | None]:
        data = loads(body, "a response")
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
            raise UpstreamError("bad_response", "provider response has no choices")
        return body, usage_from_openai(data.get("usage"))

    def chat_stream(
        self, model: str, include_usage: bool, asked: Mapping[str, Any] | None = None
    ) -> OpenAIStream:
        return OpenAIStream(include_usage)

    def embeddings_request(
        self, provider: ProviderConfig, model: str, body: Mapping[str, Any]
    ) -> UpstreamRequest:
        return self._request(provider, model, "embeddings", {**body, "model": model})

    def embeddings_response(self, body: bytes) -> tuple[bytes, Usage | None]:
        data = loads(body, "a response")
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
