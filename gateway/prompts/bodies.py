"""The admin bodies that change a prompt: a version's content, an approval, a
routing, a rollback (decoded with gateway.decoding)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from gateway.decoding import Body
from gateway.errors import Invalid
from gateway.prompts.versions import DOC_FIELDS, PromptContent, Routing, Shadow, TargetPin

Percent = Annotated[int, msgspec.Meta(ge=0, le=100)]
Text = Annotated[str, msgspec.Meta(max_length=20_000)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class PinBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    provider: Name
    model: Name


class DocsBody(Body, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`PATCH /admin/prompts/{name}`: the documentation fields given are set."""

    description: Text | None = None
    owner: Text | None = None
    known_issues: Text | None = None
    runbook_notes: Text | None = None

    def docs(self) -> dict[str, str]:
        given = {k: getattr(self, k) for k in DOC_FIELDS}
        return {k: v for k, v in given.items() if v is not None}


class VersionBody(DocsBody, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`POST /admin/prompts/{name}/versions`: a version's content and change message,
    and the prompt's documentation fields if given."""

    model: Annotated[str, msgspec.Meta(min_length=1)]
    messages: Annotated[list[dict[str, Any]], msgspec.Meta(min_length=1)]
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    targets: list[PinBody] = msgspec.field(default_factory=list)
    note: Text = ""

    def content(self) -> PromptContent:
        for i, message in enumerate(self.messages):
            if not isinstance(message.get("role"), str) or not isinstance(
                message.get("content"), str
            ):
                raise Invalid(
                    f"messages[{i}] must have a string role and content.", param=f"messages[{i}]"
                )
        pins = tuple(TargetPin(t.provider, t.model) for t in self.targets)
        return PromptContent(self.model, tuple(self.messages), self.params, pins)


class ApproveBody(Body, frozen=True):
    note: str | None = None


class ShadowBody(msgspec.Struct, frozen=True):
    versions: list[str] = msgspec.field(default_factory=list)
    sample_rate: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None  # None: 1 if any


class RoutingBody(Body, frozen=True):
    """`PUT /admin/prompts/{name}/routing`."""

    weights: Annotated[dict[str, Percent], msgspec.Meta(min_length=1)]
    shadow: ShadowBody | None = None
    reason: str | None = None

    def routing(self) -> Routing:
        shadow = self.shadow or ShadowBody()
        rate = shadow.sample_rate
        if rate is None:
            rate = 1.0 if shadow.versions else 0.0
        return Routing(dict(self.weights), Shadow(tuple(shadow.versions), float(rate)))


class RollbackBody(Body, frozen=True, forbid_unknown_fields=True):
    """`POST /admin/prompts/{name}/rollback`: `to` a history entry's id, or
    `before_rollout`; without it, the routing before the last routing change."""

    to: Name | None = None
    reason: Text | None = None


class LabelBody(Body, frozen=True, forbid_unknown_fields=True):
    version: Annotated[str, msgspec.Meta(pattern="^v[1-9][0-9]*$")]
    reason: Text | None = None
