"""Errors in Anthropic's shape, `{"type": "error", "error": {"type", "message"}}`, for
`/v1/messages`: made from the gateway's own (OpenAI-shaped) error bodies; a body that
an Anthropic target sent is already in this shape and goes on as it came."""

from __future__ import annotations

from typing import Any

import orjson

# The error type Anthropic gives each status.
_TYPES_BY_STATUS: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}
ANTHROPIC_TYPES = frozenset(_TYPES_BY_STATUS.values())
_OPENAI_FIELDS = ("message", "type", "param", "code")


def error_type(status: int) -> str:
    found = _TYPES_BY_STATUS.get(status)
    if found is not None:
        return found
    return "api_error" if status >= 500 else "invalid_request_error"


def anthropic_error(
    status: int, message: str, kind: str | None = None, extra: dict[str, Any] | None = None
) -> bytes:
    error = {"type": kind or error_type(status), "message": message, **(extra or {})}
    return orjson.dumps({"type": "error", "error": error})


def reshaped(status: int, body: bytes) -> bytes:
    """An error body as Anthropic's. An OpenAI-shaped one keeps its message, and its
    `code` when that names an Anthropic error type (an Anthropic target's own)."""
    try:
        data: Any = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict) and data.get("type") == "error":
        return body
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return anthropic_error(status, body.decode("utf-8", "replace")[:300] or "error")
    message = error.get("message")
    code = error.get("code")
    kind = code if isinstance(code, str) and code in ANTHROPIC_TYPES else error_type(status)
    text = message if isinstance(message, str) else "error"
    if isinstance(error.get("param"), str):
        text = f"{error['param']}: {text}" if not text.startswith(error["param"]) else text
    extra = {k: v for k, v in error.items() if k not in _OPENAI_FIELDS}  # e.g. the attempts
    return anthropic_error(status, text, kind, extra)
