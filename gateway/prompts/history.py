"""One history per prompt: every event that changed it or judged it, newest first.

An entry has an `id`, a `kind`, when (`at`), who (`by`, always an authenticated name,
or `config`, `rollout`, `gateway`), why, and its before/after where one applies. The
routing kinds carry whole routings; rollback to an entry restores the routing as it
was right after it."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from gateway.errors import Conflict, NotFound
from gateway.prompts.versions import Routing, Shadow, iso

Kind = Literal[
    "pushed",  # a new version
    "approved",  # one approval (the version may need more)
    "label",  # a label set, moved or removed
    "routing",  # weights or shadow set by hand
    "rollback",
    "rollout",  # a rollout's step, pause, rollback or abort moved the weights
    "drift",  # a config reload changed where an approved version goes
    "test_run",
    "replay",
    "review",
    "docs",  # description, owner, known issues, runbook notes
    "restored",  # written back from a replica's snapshot after the store lost its data
]
ROUTING_KINDS = frozenset({"routing", "rollback", "rollout", "restored"})


@dataclass(frozen=True)
class HistoryEntry:
    kind: Kind
    at: float
    by: str
    reason: str = ""
    before: Any = None  # plain JSON; a routing's JSON for the routing kinds
    after: Any = None
    version: str = ""  # the version it is about, if one
    detail: Mapping[str, Any] = field(default_factory=dict)  # a run's id, its pass rate…
    id: str = field(default_factory=lambda: new_entry_id())

    @property
    def routing_after(self) -> Routing | None:
        """The routing it left, for the routing kinds."""
        if self.kind not in ROUTING_KINDS or not isinstance(self.after, dict):
            return None
        return routing_from_json(self.after)

    @property
    def routing_before(self) -> Routing | None:
        if self.kind not in ROUTING_KINDS or not isinstance(self.before, dict):
            return None
        return routing_from_json(self.before)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "at": iso(self.at),
            "by": self.by,
            "reason": self.reason,
            "version": self.version or None,
            "before": self.before,
            "after": self.after,
            "detail": dict(self.detail),
        }


def new_entry_id() -> str:
    """Sortable by time within a prompt, unique without coordination."""
    return f"h{int(time.time() * 1000):x}{secrets.token_hex(3)}"


def routing_entry(
    kind: Kind,
    by: str,
    before: Routing | None,
    after: Routing,
    reason: str = "",
    detail: Mapping[str, Any] | None = None,
) -> HistoryEntry:
    return HistoryEntry(
        kind,
        time.time(),
        by,
        reason,
        before=before.to_json() if before is not None else None,
        after=after.to_json(),
        detail=detail or {},
    )


def routing_from_json(data: Mapping[str, Any]) -> Routing:
    shadow = data.get("shadow") or {}
    return Routing(
        dict(data.get("weights") or {}),
        Shadow(tuple(shadow.get("versions") or ()), float(shadow.get("sample_rate") or 0.0)),
    )


def rollback_target(
    name: str, history: Sequence[HistoryEntry], to: str | None
) -> tuple[Routing, str, dict[str, Any]]:
    """The routing a rollback restores, why, and the detail to record. Without `to`:
    undo, the routing before the newest routing change not undone yet (so a second
    rollback steps further back instead of toggling); with `to`, the routing right
    after entry `to`."""
    if to is None:
        undone = {e.detail.get("undid") for e in history if e.kind == "rollback"}
        for entry in history:
            if entry.kind not in ROUTING_KINDS or entry.kind == "rollback":
                continue
            if entry.id in undone:
                continue
            before = entry.routing_before
            if before is None:
                break
            why = f"rollback of {entry.id} ({entry.kind} at {iso(entry.at)})"
            return before, why, {"undid": entry.id}
        raise Conflict(
            f"Prompt '{name}' has no earlier routing to go back to.", code="nothing_to_roll_back"
        )
    for i, entry in enumerate(history):
        if entry.id != to:
            continue
        for earlier in history[i:]:
            after = earlier.routing_after
            if after is not None:
                return after, f"rollback to {to} ({entry.kind} at {iso(entry.at)})", {"to": to}
        raise Conflict(f"Prompt '{name}' had no routing yet at {to}.", code="nothing_to_roll_back")
    raise NotFound(f"Prompt '{name}' has no history entry '{to}'.", code="history_not_found")
