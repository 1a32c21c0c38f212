"""Making and changing the store's client keys: the admin bodies, their checks against
the live config (teams, routes, the config's own key names) and the compare-and-set
writes. A token is made here, answered once and kept nowhere: the store has its
sha256 only."""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec

from gateway.config.keys import BudgetPeriod
from gateway.config.loader import GatewayConfig
from gateway.errors import Conflict, Invalid, NotFound
from gateway.proxy.routing import PROMPT_PREFIX
from gateway.store.keys import BudgetRecord, KeyRecord, KeyStore, LimitsRecord

TOKEN_PREFIX = "sk-gw-"
DEFAULT_GRACE_S = 3600.0
MAX_ATTEMPTS = 10  # compare-and-set rounds before a write gives up
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")
Count = Annotated[int, msgspec.Meta(ge=1)]
Usd = Annotated[float, msgspec.Meta(ge=0)]
Seconds = Annotated[float, msgspec.Meta(ge=0)]
Unset = msgspec.UnsetType
UNSET = msgspec.UNSET


class LimitsBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    rpm: Count | None = None
    tpm: Count | None = None
    max_concurrent: Count | None = None


class BudgetBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    usd: Usd
    period: BudgetPeriod = "month"


class KeyChanges(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """`PATCH /admin/keys/{name}`: the fields given change, `null` clears one."""

    team: str | Unset | None = UNSET
    routes: list[str] | Unset | None = UNSET
    limits: LimitsBody | Unset | None = UNSET
    budget: BudgetBody | Unset | None = UNSET
    expires_at: float | str | Unset | None = UNSET  # unix seconds or ISO 8601
    metadata: dict[str, str] | Unset | None = UNSET
    by: str | None = None


class NewKey(KeyChanges, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """`POST /admin/keys`."""

    name: str


class Rotation(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    grace_s: Seconds = DEFAULT_GRACE_S  # how long the old token keeps working
    by: str | None = None


@dataclass(frozen=True)
class Made:
    record: KeyRecord
    token: str  # shown once


def new_token() -> tuple[str, str]:
    """A token and its sha256 (hex)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, hashlib.sha256(token.encode()).hexdigest()


def _config_names(config: GatewayConfig) -> set[str]:
    return {k.name for k in config.keys}


def _check_name(name: str, config: GatewayConfig) -> None:
    if not _NAME.match(name):
        raise Invalid(
            "A key name is 1-100 letters, digits and . _ @ - (starting with a letter or digit).",
            param="name",
        )
    if name in _config_names(config):
        raise Conflict(
            f"'{name}' is a key of the config file: choose another name.", code="config_key"
        )


def _fields(body: KeyChanges, config: GatewayConfig, now: float) -> dict[str, Any]:
    """The record fields `body` sets, checked against the live config."""
    changed: dict[str, Any] = {}
    if not isinstance(body.team, Unset):
        if body.team is not None and body.team not in config.teams:
            raise Invalid(f"Unknown team '{body.team}' (see [teams]).", param="team")
        changed["team"] = body.team
    if not isinstance(body.routes, Unset):
        for route in body.routes or []:
            if not route.startswith(PROMPT_PREFIX) and route not in config.models:
                raise Invalid(f"Unknown route '{route}'.", param="routes")
        changed["routes"] = None if body.routes is None else sorted(set(body.routes))
    if not isinstance(body.limits, Unset):
        given = body.limits or LimitsBody()
        changed["limits"] = LimitsRecord(given.rpm, given.tpm, given.max_concurrent)
    if not isinstance(body.budget, Unset):
        budget = body.budget
        changed["budget"] = None if budget is None else BudgetRecord(budget.usd, budget.period)
    if not isinstance(body.expires_at, Unset):
        changed["expires_at"] = _expiry(body.expires_at, now)
    if not isinstance(body.metadata, Unset):
        changed["metadata"] = dict(body.metadata or {})
    return changed


def _expiry(value: float | str | None, now: float) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise Invalid(
                "expires_at is unix seconds or an ISO 8601 time (2027-01-31T00:00:00Z).",
                param="expires_at",
            ) from None
        at = (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
    else:
        at = float(value)
    if at <= now:
        raise Invalid("expires_at is in the past.", param="expires_at")
    return at


async def create_key(store: KeyStore, config: GatewayConfig, body: NewKey, by: str) -> Made:
    _check_name(body.name, config)
    now = time.time()
    token, digest = new_token()
    record = msgspec.structs.replace(
        KeyRecord(name=body.name, sha256=digest, created_at=now, created_by=by),
        **_fields(body, config, now),
    )
    if not await store.save(record, None):
        raise Conflict(f"A key named '{body.name}' exists already.", code="key_exists")
    return Made(record, token)


async def _change(
    store: KeyStore, config: GatewayConfig, name: str, edit: Any
) -> tuple[KeyRecord, Any]:
    """Read, `edit(record) -> (new record, result)`, compare-and-set; again if another
    writer came first."""
    if name in _config_names(config):
        raise Conflict(
            f"'{name}' is a key of the config file: change it there (read-only here).",
            code="config_key",
        )
    for _ in range(MAX_ATTEMPTS):
        current = await store.get(name)
        if current is None:
            raise NotFound(f"Unknown key '{name}'.", code="key_not_found")
        record, result = edit(current)
        if record is current or await store.save(record, current.revision):
            return record, result
    raise Conflict(f"Key '{name}' kept changing; try again.", code="write_conflict")


def _live(record: KeyRecord) -> None:
    if record.revoked:
        raise Conflict(f"Key '{record.name}' is revoked.", code="key_revoked")


async def rotate_key(
    store: KeyStore, config: GatewayConfig, name: str, rotation: Rotation, by: str
) -> Made:
    """A new token; the current one works `grace_s` more (one rotated before it stops
    at once)."""

    def edit(record: KeyRecord) -> tuple[KeyRecord, str]:
        _live(record)
        now = time.time()
        token, digest = new_token()
        rotated = msgspec.structs.replace(
            record,
            sha256=digest,
            previous_sha256=record.sha256 if rotation.grace_s > 0 else None,
            previous_until=now + rotation.grace_s if rotation.grace_s > 0 else None,
            rotated_at=now,
            rotated_by=by,
            revision=record.revision + 1,
        )
        return rotated, token

    record, token = await _change(store, config, name, edit)
    return Made(record, token)


async def revoke_key(store: KeyStore, config: GatewayConfig, name: str, by: str) -> KeyRecord:
    """Revoked at once, both tokens; revoking a revoked key changes nothing."""

    def edit(record: KeyRecord) -> tuple[KeyRecord, None]:
        if record.revoked:
            return record, None
        now = time.time()
        changes = {"revoked_at": now, "revoked_by": by, "revision": record.revision + 1}
        return msgspec.structs.replace(record, **changes), None

    record, _ = await _change(store, config, name, edit)
    return record


async def edit_key(
    store: KeyStore, config: GatewayConfig, name: str, body: KeyChanges
) -> KeyRecord:
    def edit(record: KeyRecord) -> tuple[KeyRecord, None]:
        _live(record)
        changed = _fields(body, config, time.time())
        if not changed:
            return record, None
        return msgspec.structs.replace(record, **changed, revision=record.revision + 1), None

    record, _ = await _change(store, config, name, edit)
    return record
