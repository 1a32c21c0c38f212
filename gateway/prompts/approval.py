"""Who may approve a version, and when it counts as approved: four eyes."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.errors import Conflict
from gateway.prompts.versions import PromptVersion, TargetPin


@dataclass(frozen=True)
class ApprovalRules:
    required: int = 1  # distinct approvers
    distinct: bool = False  # the version's author may not approve it
    targets: tuple[TargetPin, ...] = ()  # where its route sends it now: what is approved


def approve_once_more(
    version: PromptVersion, by: str, note: str, rules: ApprovalRules
) -> PromptVersion | None:
    """The version with `by`'s approval; None when nothing changes (approved already).
    409 `self_approval` for its author under four eyes, `already_approved` for a
    second approval by the same person."""
    if version.status == "approved":
        return None
    if rules.distinct and by == version.created_by:
        raise Conflict(
            f"{by} pushed {version.id}: under four eyes somebody else must approve it.",
            code="self_approval",
        )
    if any(a.by == by for a in version.approvals):
        raise Conflict(
            f"{by} has approved {version.id} already; it needs {rules.required} distinct "
            "approvers.",
            code="already_approved",
        )
    return version.approved_once_more(by, note, rules.required, rules.targets)


ONE_APPROVAL = ApprovalRules()  # no four eyes: as with the break-glass token alone
