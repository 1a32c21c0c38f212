"""Prompt versions, routings and history entries as the Redis store keeps them (JSON),
decoded by msgspec into the prompt types. Records written before a field existed
decode with its default (a version approved once, a history entry of kind routing)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from gateway.prompts.history import HistoryEntry, Kind
from gateway.prompts.versions import (
    Approval,
    PromptContent,
    PromptVersion,
    Routing,
    Status,
    TargetPin,
)


class PinRecord(msgspec.Struct, frozen=True):
    provider: str
    model: str


class ApprovalRecord(msgspec.Struct, frozen=True):
    by: str
    at: str | float
    note: str = ""


class VersionRecord(msgspec.Struct, frozen=True):
    """`PromptVersion.to_json`: the content's fields beside the version's own."""

    version: str
    hash: str
    status: Status
    model: str
    messages: list[dict[str, Any]]
    params: dict[str, Any] | None = None
    targets: list[PinRecord] = []
    note: str | None = None
    created_at: float | None = None
    created_by: str | None = None
    approvals: list[ApprovalRecord] | None = None
    approved_targets: list[PinRecord] = []
    approved_by: str | None = None  # before `approvals`: the one approval
    approved_at: float | None = None
    approval_note: str | None = None

    def prompt_version(self) -> PromptVersion:
        if self.approvals is not None:
            approvals = tuple(Approval(a.by, _seconds(a.at), a.note) for a in self.approvals)
        elif self.approved_by:
            approvals = (
                Approval(self.approved_by, self.approved_at or 0.0, self.approval_note or ""),
            )
        else:
            approvals = ()
        return PromptVersion(
            id=self.version,
            hash=self.hash,
            content=PromptContent(
                self.model, tuple(self.messages), self.params or {}, _pins(self.targets)
            ),
            status=self.status,
            created_at=self.created_at or 0.0,
            created_by=self.created_by or "",
            note=self.note or "",
            approvals=approvals,
            approved_targets=_pins(self.approved_targets),
        )


class EntryRecord(msgspec.Struct, frozen=True):
    at: str | float
    by: str
    kind: Kind = "routing"  # the one kind there was
    id: str = ""
    reason: str = ""
    before: Any = None
    after: Any = None
    version: str | None = None
    detail: dict[str, Any] = {}

    def entry(self) -> HistoryEntry:
        at = _seconds(self.at)
        return HistoryEntry(
            self.kind,
            at,
            self.by,
            self.reason,
            self.before,
            self.after,
            self.version or "",
            self.detail,
            id=self.id or f"h{int(at * 1000):x}",
        )


def _pins(records: list[PinRecord]) -> tuple[TargetPin, ...]:
    return tuple(TargetPin(p.provider, p.model) for p in records)


def _seconds(at: str | float) -> float:
    if isinstance(at, str):
        return datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()
    return at


def entry_json(entry: HistoryEntry) -> dict[str, Any]:
    """As stored: `at` in seconds (exact), the rest as the admin API shows it."""
    return {**entry.to_json(), "at": entry.at}


_versions = msgspec.json.Decoder(VersionRecord)
_routing = msgspec.json.Decoder(Routing)
_entry = msgspec.json.Decoder(EntryRecord)


def decode_version(raw: bytes | str) -> PromptVersion:
    return _versions.decode(raw).prompt_version()


def decode_routing(raw: bytes | str) -> Routing:
    return _routing.decode(raw)


def decode_entry(raw: bytes | str) -> HistoryEntry:
    return _entry.decode(raw).entry()
