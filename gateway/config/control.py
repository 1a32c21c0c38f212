"""Config of change control: who may act on the admin API (`[[admins]]`, their
roles) and the rules a change must pass (`[change_control]`: four eyes, drift, labels).
Types and their validation, like gateway.config.loader's."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from gateway.config.source import Table

ROLES = ("viewer", "author", "operator", "approver", "reviewer", "admin")
BREAK_GLASS = "admin"  # the name of `server.admin_token`'s identity
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")
LABEL_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")  # never `vN`: starts with a letter…
_VERSION_LIKE = re.compile(r"^v[0-9]+$")  # …and is not v1, v2, …


@dataclass(frozen=True)
class AdminIdentity:
    name: str
    sha256: str  # of the token
    roles: frozenset[str]

    def has(self, role: str) -> bool:
        """Every role reads (viewer); `admin` holds them all."""
        return role == "viewer" or "admin" in self.roles or role in self.roles


@dataclass(frozen=True)
class ChangeControlConfig:
    # None: on once any [[admins]] exist (one break-glass token is one person).
    distinct_approver: bool | None = None
    approvals_required: int = 1
    block_drift: bool = False
    protected_labels: tuple[str, ...] = ("production",)
    draft_labels: tuple[str, ...] = ("dev", "staging")

    def four_eyes(self, admins: tuple[AdminIdentity, ...]) -> bool:
        return bool(admins) if self.distinct_approver is None else self.distinct_approver


@dataclass(frozen=True)
class Control:
    admins: tuple[AdminIdentity, ...] = ()
    change_control: ChangeControlConfig = field(default_factory=ChangeControlConfig)

    @property
    def four_eyes(self) -> bool:
        return self.change_control.four_eyes(self.admins)


def valid_label(name: str) -> bool:
    return bool(LABEL_NAME.match(name)) and not _VERSION_LIKE.match(name)


def admins_section(root: Table) -> tuple[AdminIdentity, ...]:
    admins: list[AdminIdentity] = []
    names, digests = {BREAK_GLASS}, set()
    for i, raw in enumerate(root.array("admins", [])):
        a = Table(root.loader, raw, f"admins[{i}]")
        name = a.text("name")
        if not _NAME.match(name):
            raise a.loader.error(a.key("name"), "letters, digits, '.', '_', '@' and '-'")
        if name in names:
            why = "is the break-glass admin_token's" if name == BREAK_GLASS else "is taken"
            raise a.loader.error(a.key("name"), f"{name!r} {why}")
        names.add(name)
        digest = a.text("sha256").lower()
        if not _SHA256.match(digest):
            raise a.loader.error(a.key("sha256"), "must be 64 hex digits (sha256 of the token)")
        if digest in digests:
            raise a.loader.error(a.key("sha256"), "the same token as another admin")
        digests.add(digest)
        roles = a.array("roles")
        for j, role in enumerate(roles):
            if role not in ROLES:
                raise a.loader.error(f"{a.key('roles')}[{j}]", f"must be one of {', '.join(ROLES)}")
        if not roles:
            raise a.loader.error(a.key("roles"), "must name at least one role")
        admins.append(AdminIdentity(name, digest, frozenset(roles)))
        a.done()
    return tuple(admins)


def change_control_section(t: Table) -> ChangeControlConfig:
    d = ChangeControlConfig()
    distinct = t.flag("distinct_approver", None) if "distinct_approver" in t.data else None
    labels = {}
    for key, default in (
        ("protected_labels", d.protected_labels),
        ("draft_labels", d.draft_labels),
    ):
        values = t.array(key, list(default))
        for j, label in enumerate(values):
            if not isinstance(label, str) or not valid_label(label):
                raise t.loader.error(
                    f"{t.key(key)}[{j}]", "a label is lower-case letters, digits, '_' and '-'"
                )
        labels[key] = tuple(values)
    cfg = ChangeControlConfig(
        distinct_approver=distinct,
        approvals_required=t.integer("approvals_required", d.approvals_required, minimum=1),
        block_drift=t.flag("block_drift", d.block_drift),
        protected_labels=labels["protected_labels"],
        draft_labels=labels["draft_labels"],
    )
    both = set(cfg.protected_labels) & set(cfg.draft_labels)
    if both:
        raise t.loader.error(
            t.key("draft_labels"), f"{sorted(both)[0]!r} cannot be protected and a draft label"
        )
    t.done()
    return cfg
