"""What a client of a limited key is told: OpenAI's x-ratelimit-* headers on every
answer, and a 429 (`rate_limited` or `budget_exceeded`) with Retry-After."""

from __future__ import annotations

from gateway.errors import ApiError
from gateway.limits.meter import Meter
from gateway.limits.windows import reset_text

WHAT = {"rpm": "requests", "tpm": "tokens"}


def rate_headers(meter: Meter, what: str, reset_s: float, headers: dict[str, str]) -> None:
    headers[f"x-ratelimit-limit-{what}"] = str(meter.limit)
    headers[f"x-ratelimit-remaining-{what}"] = str(meter.remaining())
    headers[f"x-ratelimit-reset-{what}"] = reset_text(reset_s)


def refused(limit: str, scope: str, reset_s: float, headers: dict[str, str]) -> ApiError:
    """`limit`: rpm, tpm, max_concurrent or budget; `scope`: "key" or "team"."""
    headers["Retry-After"] = str(max(int(reset_s + 0.999), 1))
    if limit == "budget":
        message = f"The {scope}'s budget for this period is spent."
        return ApiError(
            429, message, type_="insufficient_quota", code="budget_exceeded", headers=headers
        )
    names = {
        "rpm": "requests per minute",
        "tpm": "tokens per minute",
        "max_concurrent": "concurrent requests",
    }
    message = f"Rate limit reached: the {scope}'s limit of {names[limit]}."
    return ApiError(429, message, type_="requests", code="rate_limited", headers=headers)
