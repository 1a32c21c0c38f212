"""What every provider adapter takes and gives.

An adapter is pure: it turns our OpenAI-shaped request into the provider's HTTP request,
and the provider's response, stream events and errors back into OpenAI's shapes, reading
the token usage in the same pass so usage is never parsed twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from gateway.config.loader import ProviderConfig
from gateway.errors import UpstreamError


class Usage(NamedTuple):
    """Token counts of one answer (a tuple: cheap to make on every request)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0  # part of input_tokens read from the provider's cache
    cache_write_tokens: int = 0  # part of input_tokens written to the cache (Anthropic)


@dataclass(slots=True)  # not frozen: made per attempt, and frozen init is slow
class UpstreamRequest:
    url: str
    headers: dict[str, str]  # made for this attempt: the engine adds the call's own
    body: bytes


# Headers of a provider's answer the client gets back: its rate limits and when to
# retry; its request id under our own name. Rate limits come as a group (OpenAI's
# names, Anthropic's): the group's first name says whether the rest is there.
RATE_LIMIT_GROUPS = (
    (
        "x-ratelimit-limit-requests",
        "x-ratelimit-limit-tokens",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-remaining-tokens",
        "x-ratelimit-reset-requests",
        "x-ratelimit-reset-tokens",
    ),
    (
        "anthropic-ratelimit-requests-limit",
        "anthropic-ratelimit-requests-remaining",
        "anthropic-ratelimit-requests-reset",
        "anthropic-ratelimit-tokens-limit",
        "anthropic-ratelimit-tokens-remaining",
        "anthropic-ratelimit-tokens-reset",
    ),
)


def passed_back(headers: Mapping[str, str], into: dict[str, str]) -> None:
    """Copy what the client should see of a provider's answer headers into `into`."""
    get = headers.get
    for group in RATE_LIMIT_GROUPS:
        if get(group[0]) is not None:
            for name in group:
                value = get(name)
                if value is not None:
                    into[name] = value
    value = get("retry-after")
    if value is not None:
        into["retry-after"] = value
    value = get("x-request-id") or get("request-id")  # OpenAI's, Anthropic's
    if value is not None:
        into["X-Gateway-Upstream-Request-Id"] = value


class SSEEvent(NamedTuple):
    """One server-sent event (a tuple: made once per stream chunk, so it must be cheap)."""

    data: bytes
    event: str | None = None


class StreamTranslator(Protocol):
    """Turns one provider stream into OpenAI `chat.completion.chunk` payloads."""

    usage: Usage | None  # known once the provider has reported it
    finished: bool  # the provider ended the stream properly
    content_started: bool  # a content or tool-call delta has been seen (first token)

    def feed(self, event: SSEEvent) -> list[bytes]:
        """Payloads (the JSON after `data: `) to send the client for one event; raises
        `UpstreamError` for an error event or a payload that cannot be read."""
        ...

    def feed_bytes(self, chunk: bytes) -> bytes:
        """One network read of the provider's stream: the bytes of the `data:` events
        to send the client (the translator keeps a half-received event for later)."""
        ...


class Adapter(Protocol):
    def chat_request(
        self, provider: ProviderConfig, model: str, body: Mapping[str, Any], stream: bool
    ) -> UpstreamRequest:
        """`body` is the client's OpenAI chat body (gateway-only fields removed). Raises
        `ApiError` 400 for a malformed body, `UpstreamError("unsupported")` (naming the
        `param`) for one this provider cannot honour: decided before any call."""
        ...

    def chat_response(
        self, body: bytes, model: str, asked: Mapping[str, Any] | None = None
    ) -> tuple[bytes, Usage | None]:
        """An OpenAI `chat.completion` body and its usage; raises `UpstreamError`
        (`bad_response`) when the body cannot be read. `asked`: the chat body that was
        sent to `chat_request`, for a translation whose answer depends on the request."""
        ...

    def chat_stream(
        self, model: str, include_usage: bool, asked: Mapping[str, Any] | None = None
    ) -> StreamTranslator:
        """`include_usage`: the client asked for the usage chunk itself."""
        ...

    def embeddings_request(
        self, provider: ProviderConfig, model: str, body: Mapping[str, Any]
    ) -> UpstreamRequest:
        """Raises `ApiError` 400 when the provider has no embeddings API."""
        ...

    def embeddings_response(self, body: bytes) -> tuple[bytes, Usage | None]: ...

    def error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        """A non-2xx answer as one error; `client_body` is OpenAI-shaped."""
        ...
