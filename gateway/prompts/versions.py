"""Prompt versions and their routing, independent of where they are stored: content
hashing, routing validation, the sticky version pick and template rendering."""

from __future__ import annotations

import hashlib
import random
import re
import time
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from gateway.errors import Conflict, Invalid

BUCKETS = 10_000
_VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_VERSION_ID = re.compile(r"^v([1-9][0-9]*)$")
# Safe in URLs, in `prompt:NAME@vN`, and as a Redis Cluster hash tag.
PROMPT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
Status = Literal["draft", "approved"]


@dataclass(frozen=True)
class TargetPin:
    """A provider and model a version is pinned to, or was approved on."""

    provider: str
    model: str

    @property
    def label(self) -> str:
        return f"{self.provider}/{self.model}"

    def to_json(self) -> dict[str, str]:
        return {"provider": self.provider, "model": self.model}


@dataclass(frozen=True)
class PromptContent:
    model: str  # a route alias
    messages: tuple[Mapping[str, Any], ...]
    params: Mapping[str, Any] = field(default_factory=dict)
    targets: tuple[TargetPin, ...] = ()  # pinned: tried in this order, whatever the route says

    @property
    def hash(self) -> str:
        # Without pinned targets the hash is what it was before pins existed.
        canonical = orjson.dumps(self.to_json(), option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(canonical).hexdigest()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "model": self.model,
            "messages": list(self.messages),
            "params": dict(self.params),
        }
        if self.targets:
            out["targets"] = [t.to_json() for t in self.targets]
        return out


@dataclass(frozen=True)
class Approval:
    by: str
    at: float
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"by": self.by, "at": self.at, "note": self.note}


@dataclass(frozen=True)
class PromptVersion:
    id: str  # "v3"
    hash: str
    content: PromptContent
    status: Status = "draft"
    created_at: float = 0.0
    created_by: str = ""
    note: str = ""  # the change message it was pushed with
    approvals: tuple[Approval, ...] = ()
    # Where its route sent it when it was approved: what "approved" covers.
    approved_targets: tuple[TargetPin, ...] = ()

    @property
    def number(self) -> int:
        return version_number(self.id)

    @property
    def approved_by(self) -> str:
        return self.approvals[-1].by if self.status == "approved" and self.approvals else ""

    def approved_once_more(
        self, by: str, note: str, required: int, targets: tuple[TargetPin, ...]
    ) -> PromptVersion:
        """With one more approval; approved once `required` distinct people have."""
        approvals = (*self.approvals, Approval(by, time.time(), note))
        if len(approvals) < required:
            return replace(self, approvals=approvals)
        return replace(self, approvals=approvals, status="approved", approved_targets=targets)

    def to_json(self) -> dict[str, Any]:
        last = self.approvals[-1] if self.status == "approved" and self.approvals else None
        return {
            "version": self.id,
            "hash": self.hash,
            "status": self.status,
            **self.content.to_json(),
            "note": self.note,
            "created_at": self.created_at,
            "created_by": self.created_by,
            "approvals": [a.to_json() for a in self.approvals],
            "approved_by": last.by if last else None,
            "approved_at": last.at if last else None,
            "approval_note": (last.note or None) if last else None,
            "approved_targets": [t.to_json() for t in self.approved_targets],
        }


@dataclass(frozen=True)
class Shadow:
    versions: tuple[str, ...] = ()
    sample_rate: float = 0.0


@dataclass(frozen=True)
class Routing:
    weights: Mapping[str, int]
    shadow: Shadow = field(default_factory=Shadow)

    def to_json(self) -> dict[str, Any]:
        return {
            "weights": dict(self.weights),
            "shadow": {
                "versions": list(self.shadow.versions),
                "sample_rate": self.shadow.sample_rate,
            },
        }


@dataclass(frozen=True)
class PromptState:
    name: str
    versions: Mapping[str, PromptVersion]
    routing: Routing | None
    labels: Mapping[str, str] = field(default_factory=dict)  # label -> vN
    docs: Mapping[str, str] = field(default_factory=dict)  # description, owner, …

    def to_json(self) -> dict[str, Any]:
        ordered = sorted(self.versions.values(), key=lambda v: v.number)
        return {
            "name": self.name,
            **{key: self.docs.get(key, "") for key in DOC_FIELDS},
            "versions": [v.to_json() for v in ordered],
            "routing": self.routing.to_json() if self.routing else None,
            "labels": dict(self.labels),
        }


DOC_FIELDS = ("description", "owner", "known_issues", "runbook_notes")


def iso(at: float) -> str:
    """A time as ISO 8601 UTC, to the millisecond."""
    stamp = datetime.fromtimestamp(at, tz=UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def version_number(version_id: str) -> int:
    match = _VERSION_ID.match(version_id)
    if match is None:
        raise Invalid(f"'{version_id}' is not a version id (v1, v2, ...).")
    return int(match.group(1))


def check_routing(routing: Routing, versions: Mapping[str, PromptVersion]) -> None:
    """Unknown versions and bad sums are 400; a draft with live weight is 409."""
    for version in [*routing.weights, *routing.shadow.versions]:
        if version not in versions:
            raise Invalid(f"Unknown version '{version}'.", code="unknown_version")
    total = sum(routing.weights.values())
    if total != 100:
        raise Invalid(f"Weights must sum to 100, not {total}.", code="bad_weights", param="weights")
    for version, weight in routing.weights.items():
        if weight and versions[version].status != "approved":
            raise Conflict(
                f"Version {version} is a draft: approve it before it gets "
                "live weight (drafts may only be shadowed).",
                code="draft_version",
            )


def sticky_bucket(prompt: str, sticky_key: str) -> int:
    digest = hashlib.blake2b(f"{prompt}\x00{sticky_key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


@dataclass(frozen=True)
class VersionPicker:
    """Weights laid over 10,000 buckets in version order, so raising the newest
    version's share only moves users onto it, never off it."""

    prompt: str
    bounds: tuple[int, ...]  # exclusive upper bucket of each version
    versions: tuple[str, ...]

    @classmethod
    def from_weights(cls, prompt: str, weights: Mapping[str, int]) -> VersionPicker:
        live = sorted((v for v, w in weights.items() if w > 0), key=version_number)
        bounds, edge = [], 0
        for version in live:
            edge += weights[version] * BUCKETS // 100
            bounds.append(edge)
        return cls(prompt, tuple(bounds), tuple(live))

    def pick(self, sticky_key: str | None, rng: random.Random | None = None) -> str:
        if sticky_key:
            bucket = sticky_bucket(self.prompt, sticky_key)
        else:
            bucket = (rng or random).randrange(BUCKETS)
        return self.versions[min(bisect_right(self.bounds, bucket), len(self.versions) - 1)]


def render_messages(content: PromptContent, variables: Mapping[str, Any]) -> list[dict[str, Any]]:
    """`{{name}}` replaced by the variable's text in one pass: a value is inserted as
    text and never read again as a template. A missing variable is the request's
    fault: `Invalid` (a 400) at once."""

    def value_of(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in variables:
            raise Invalid(
                f"Missing prompt variable '{name}'.",
                param="prompt_variables",
                code="missing_variable",
            )
        value = variables[name]
        return value if isinstance(value, str) else orjson.dumps(value).decode()

    rendered = []
    for message in content.messages:
        text = message.get("content")
        out = dict(message)
        if isinstance(text, str) and "{{" in text:
            out["content"] = _VARIABLE.sub(value_of, text)
        rendered.append(out)
    return rendered


def template_variables(content: PromptContent) -> list[str]:
    """The `{{name}}`s its messages use, in the order they first appear."""
    found: list[str] = []
    for message in content.messages:
        text = message.get("content")
        for match in _VARIABLE.finditer(text if isinstance(text, str) else ""):
            if match.group(1) not in found:
                found.append(match.group(1))
    return found
