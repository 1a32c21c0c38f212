"""The review queue: answers a guard flagged (delivered, to look at) or held (waiting
for a reviewer before the client gets them). One item per answer; a decision is made
once (the first one wins, on any replica), so deciding is safe to repeat."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Literal, Protocol

import msgspec

from gateway.errors import Conflict, NotFound

State = Literal["pending", "approved", "rejected", "expired"]
STATES: tuple[str, ...] = ("pending", "approved", "rejected", "expired")
ItemKind = Literal["held", "flagged"]
LIST_LIMIT = 500


class ReviewItem(msgspec.Struct, kw_only=True):
    id: str
    kind: ItemKind
    prompt: str
    version: str
    route: str
    key: str  # the client key's name: only that key reads a held item back
    guard: str
    reason: str
    answer: str  # the model's answer text
    messages: list[Any]  # the request's messages, redacted as captures are
    request_id: str = ""
    model: str = ""  # what the client asked for (`prompt:NAME`, a route alias)
    completion: dict[str, Any] = msgspec.field(default_factory=dict)  # the answer body
    state: State = "pending"
    created_at: float = 0.0
    expires_at: float | None = None  # [review] timeout_s after created_at
    decided_at: float | None = None
    decided_by: str | None = None
    note: str = ""
    edited_answer: str | None = None
    # An item past its time, released (the answer delivered) or rejected by config.
    timed_out: bool = False

    def to_json(self) -> dict[str, Any]:
        """The admin shape: everything but the raw completion body."""
        out = msgspec.to_builtins(self)
        out.pop("completion", None)
        return out  # type: ignore[no-any-return]

    def delivered_answer(self) -> str:
        return self.edited_answer if self.edited_answer is not None else self.answer


def encode(item: ReviewItem) -> bytes:
    return msgspec.json.encode(item)


def decode_item(raw: bytes | str) -> ReviewItem:
    return msgspec.json.decode(raw, type=ReviewItem)


class ReviewStore(Protocol):
    async def add(self, item: ReviewItem) -> None: ...

    async def get(self, item_id: str) -> ReviewItem | None: ...

    async def query(self, state: str | None, prompt: str | None, limit: int) -> list[ReviewItem]:
        """Newest first."""
        ...

    async def decide(self, decided: ReviewItem) -> ReviewItem:
        """Write `decided` (its state no longer pending) if the item is still pending;
        `Conflict` naming the state otherwise, `NotFound` for no such item."""
        ...

    async def due(self, now: float) -> list[str]:
        """Pending items whose `expires_at` has passed."""
        ...

    async def pending_count(self) -> int: ...


def decided_copy(
    item: ReviewItem,
    state: State,
    by: str,
    note: str,
    edited_answer: str | None = None,
    timed_out: bool = False,
) -> ReviewItem:
    return msgspec.structs.replace(
        item,
        state=state,
        decided_at=time.time(),
        decided_by=by,
        note=note,
        edited_answer=edited_answer,
        timed_out=timed_out,
    )


def not_found(item_id: str) -> NotFound:
    return NotFound(f"No review item '{item_id[:64]}'.", code="review_not_found")


def already_decided(item: ReviewItem) -> Conflict:
    return Conflict(
        f"Review item '{item.id}' is {item.state} already (by {item.decided_by}).",
        code="review_decided",
    )


def matches(item: ReviewItem, state: str | None, prompt: str | None) -> bool:
    return (state is None or item.state == state) and (prompt is None or item.prompt == prompt)


class MemoryReviews:
    def __init__(self) -> None:
        self._items: dict[str, ReviewItem] = {}
        self._lock = asyncio.Lock()

    async def add(self, item: ReviewItem) -> None:
        self._items[item.id] = item

    async def get(self, item_id: str) -> ReviewItem | None:
        return self._items.get(item_id)

    async def query(self, state: str | None, prompt: str | None, limit: int) -> list[ReviewItem]:
        found = [i for i in reversed(self._items.values()) if matches(i, state, prompt)]
        return found[:limit]

    async def decide(self, decided: ReviewItem) -> ReviewItem:
        async with self._lock:
            item = self._items.get(decided.id)
            if item is None:
                raise not_found(decided.id)
            if item.state != "pending":
                raise already_decided(item)
            self._items[decided.id] = decided
        return decided

    async def due(self, now: float) -> list[str]:
        return [
            i.id
            for i in self._items.values()
            if i.state == "pending" and i.expires_at is not None and i.expires_at <= now
        ]

    async def pending_count(self) -> int:
        return sum(1 for i in self._items.values() if i.state == "pending")
