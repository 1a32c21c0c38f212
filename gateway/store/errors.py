"""What the store raises when it cannot do what it was asked."""

from __future__ import annotations

from gateway.errors import ApiError


class StoreUnavailable(ApiError):
    """The store cannot be reached: admin writes answer 503 at once, never hang."""

    def __init__(self, detail: str) -> None:
        super().__init__(
            503, f"The store is unavailable: {detail}", type_="api_error", code="store_unavailable"
        )
