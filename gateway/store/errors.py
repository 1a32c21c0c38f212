"""What the store raises when it cannot do what it was asked."""

from __future__ import annotations

from gateway.errors import Unavailable


class StoreUnavailable(Unavailable):
    """The store cannot be reached: admin writes answer 503 at once, never hang."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"The store is unavailable: {detail}", code="store_unavailable")
