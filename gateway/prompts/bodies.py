"""The admin bodies that change a prompt: a version's content, an approval, a
routing, a rollback (decoded with gateway.decoding)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from gateway.decoding import Body
from gateway.errors import Invalid
from gateway.prompts.versions import PromptContent, Routing, Shadow

Percent = Annotated[int, msgspec.Meta(ge=0, le=100)]


class VersionBody(Body, frozen=True, forbid_unknown_fields=True):
    """`POST /admin/prompts/{name}/versions`."""

    model: Annotated[str, msgspec.Meta(min_length=1)]
    messages: Annotated[list[dict[str, Any]], msgspec.Meta(min_length=1)]
    params: dict[str, Any] = msgspec.field(default_factory=dict)

    def content(self) -> PromptContent:
        for i, message in enumerate(self.messages):
            if not isinstance(message.get("role"), str) or not isinstance(
                message.get("content"), str
            ):
                raise Invalid(
                    f"messages[{i}] must have a string role and content.", param=f"messages[{i}]"
                )
        return PromptContent(self.model, tuple(self.messages), self.params)


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
