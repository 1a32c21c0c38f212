"""Prompt versions, routings and routing changes as the Redis store keeps them (JSON),
decoded by msgspec into the prompt types."""

from __future__ import annotations

from typing import Any

import msgspec

from gateway.prompts.versions import PromptContent, PromptVersion, Routing, RoutingChange, Status


class VersionRecord(msgspec.Struct, frozen=True):
    """`PromptVersion.to_json`: the content's fields beside the version's own."""

    version: str
    hash: str
    status: Status
    model: str
    messages: list[dict[str, Any]]
    params: dict[str, Any] | None = None
    created_at: float | None = None
    created_by: str | None = None
    approved_by: str | None = None
    approved_at: float | None = None
    approval_note: str | None = None

    def prompt_version(self) -> PromptVersion:
        return PromptVersion(
            id=self.version,
            hash=self.hash,
            content=PromptContent(self.model, tuple(self.messages), self.params or {}),
            status=self.status,
            created_at=self.created_at or 0.0,
            created_by=self.created_by or "",
            approved_by=self.approved_by or "",
            approved_at=self.approved_at or 0.0,
            approval_note=self.approval_note or "",
        )


_versions = msgspec.json.Decoder(VersionRecord)
_routing = msgspec.json.Decoder(Routing)
_change = msgspec.json.Decoder(RoutingChange)


def decode_version(raw: bytes | str) -> PromptVersion:
    return _versions.decode(raw).prompt_version()


def decode_routing(raw: bytes | str) -> Routing:
    return _routing.decode(raw)


def decode_change(raw: bytes | str) -> RoutingChange:
    return _change.decode(raw)
