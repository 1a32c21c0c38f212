"""The error types every decision reads.

`ApiError` is what a client sees: an OpenAI-shaped JSON body with a status.
`UpstreamError` is one failed provider attempt: retry, failover, circuit breaking,
the final status code and the metrics all decide from its `reason`.
`DomainError` and its kinds (`Invalid`, `NotFound`, `Conflict`, `Unavailable`) are
what domain and store code raise; `api_error` is the one place a kind becomes a status.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import orjson

Reason = Literal[
    "timeout",
    "connect",
    "rate_limited",
    "server_error",
    "bad_response",
    "stream_cut",
    "circuit_open",
    "client_error",
    "auth_error",
    "unsupported",
    "guard_failed",  # the answer failed an output guard whose on_fail is `fallback`
]

# Which reasons make the router try again (same target later, or the next one).
# `unsupported` is not one: a target that cannot honour the request is skipped before
# any call (see the engine), and the next target is tried without a retry or a verdict.
RETRYABLE: frozenset[str] = frozenset(
    {
        "timeout",
        "connect",
        "rate_limited",
        "server_error",
        "bad_response",
        "circuit_open",
        "auth_error",
    }
)


def error_body(
    message: str, type_: str, code: str | None = None, param: str | None = None
) -> bytes:
    error = {"message": message, "type": type_, "param": param, "code": code}
    return orjson.dumps({"error": error})


class ApiError(Exception):
    """An error answered to the client in OpenAI's shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
        details: dict[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.details = details
        self.status = status
        self.message = message
        self.type = type_
        self.code = code
        self.param = param
        self.headers = headers or {}

    def body(self) -> bytes:
        if not self.details:
            return error_body(self.message, self.type, self.code, self.param)
        error = {
            "message": self.message,
            "type": self.type,
            "param": self.param,
            "code": self.code,
            **self.details,
        }
        return orjson.dumps({"error": error})


class DomainError(Exception):
    """A request the domain refuses: a machine-readable `code`, a message for people,
    and `param`, the field at fault when one is."""

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param


class Invalid(DomainError):
    """Bad input: a field of the wrong type or value, an unknown name."""


class NotFound(DomainError):
    """What was named does not exist."""


class Conflict(DomainError):
    """Valid, but not in the current state (a draft given weight, a rollout running)."""


class Unavailable(DomainError):
    """A back end (the store) cannot be reached now; trying again later may work."""


_STATUS: dict[type[DomainError], tuple[int, str]] = {
    Invalid: (400, "invalid_request_error"),
    NotFound: (404, "invalid_request_error"),
    Conflict: (409, "invalid_request_error"),
    Unavailable: (503, "api_error"),
}


def api_error(error: DomainError) -> ApiError:
    """The answer a client gets for a domain error."""
    found = (v for kind, v in _STATUS.items() if isinstance(error, kind))
    status, type_ = next(found, (400, "invalid_request_error"))
    return ApiError(status, error.message, type_=type_, code=error.code, param=error.param)


@dataclass
class UpstreamError(Exception):
    """One provider attempt that did not succeed."""

    reason: Reason
    message: str
    status: int | None = None
    retry_after_s: float | None = None
    # For client_error: the OpenAI-shaped body to hand back as it came.
    client_body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # For unsupported: the request field the target cannot honour (None: the endpoint).
    param: str | None = None

    def __post_init__(self) -> None:
        super().__init__(self.message)

    @property
    def retryable(self) -> bool:
        return self.reason in RETRYABLE


def classify_status(status: int) -> Reason:
    """The reason for a non-2xx provider status, the same for every wire format."""
    if status == 429:
        return "rate_limited"
    if status in (401, 403):
        # Our provider key is wrong or lacks access: not the client's fault, try elsewhere.
        return "auth_error"
    if status == 408:
        return "timeout"
    if status >= 500:
        return "server_error"
    if status < 400 or status == 404:
        # A redirect (the base URL is wrong) or an unknown model or deployment: the
        # target's config, not the client's request, is at fault; another target may do.
        return "bad_response"
    return "client_error"


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # HTTP-date form: rare for LLM APIs; treat as absent
    return max(seconds, 0.0)


def scrub_secret(error: UpstreamError, secret: str) -> UpstreamError:
    """A provider may quote the credentials it was sent in its error: never pass them on."""
    if not secret:
        return error
    if secret in error.message:
        error.message = error.message.replace(secret, "***")
    if error.client_body is not None and secret.encode() in error.client_body:
        error.client_body = error.client_body.replace(secret.encode(), b"***")
    return error
