"""Client keys kept in the store ("virtual keys"): the record as stored, the
`KeyStore` protocol both stores implement, the embedded one, and the digest map the
request path reads (`KeySnapshot`), built from the records.

A record holds the sha256 of its token, never the token. A rotation keeps the
previous digest with the time it stops working; a revocation keeps the record (its
name stays taken, its history readable) and takes its digests out of the map.
Every write is a compare-and-set on `revision`, so two admins on two replicas can
never overwrite each other."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

import msgspec

from gateway.config.keys import Budget, BudgetPeriod, ClientKey, Limits

OnChange = Callable[[], Awaitable[None]]  # as gateway.store.base's, which imports this


class LimitsRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    rpm: int | None = None
    tpm: int | None = None
    max_concurrent: int | None = None

    def limits(self) -> Limits:
        return Limits(rpm=self.rpm, tpm=self.tpm, max_concurrent=self.max_concurrent)


class BudgetRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    usd: float
    period: BudgetPeriod = "month"

    def budget(self) -> Budget:
        return Budget(usd=self.usd, period=self.period)


class KeyRecord(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    sha256: str  # of the current token
    team: str | None = None
    routes: list[str] | None = None  # None: every route
    limits: LimitsRecord = LimitsRecord()
    budget: BudgetRecord | None = None
    expires_at: float | None = None  # unix seconds
    metadata: dict[str, str] = {}
    created_at: float = 0.0
    created_by: str = ""
    rotated_at: float | None = None
    rotated_by: str | None = None
    previous_sha256: str | None = None  # the token before the last rotation…
    previous_until: float | None = None  # …works until then
    revoked_at: float | None = None
    revoked_by: str | None = None
    revision: int = 0

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def client_key(self, sha256: str, expires_at: float | None) -> ClientKey:
        return ClientKey(
            name=self.name,
            sha256=sha256,
            routes=None if self.routes is None else frozenset(self.routes),
            team=self.team,
            limits=self.limits.limits(),
            budget=None if self.budget is None else self.budget.budget(),
            expires_at=expires_at,
            metadata=dict(self.metadata),
            source="store",
        )

    def client_keys(self, now: float) -> list[ClientKey]:
        """What this record lets in: its token, and the previous one during the grace
        period (never past the key's own expiry). A revoked key lets nothing in."""
        if self.revoked:
            return []
        found = [self.client_key(self.sha256, self.expires_at)]
        until = self.previous_until
        if self.previous_sha256 is not None and until is not None and until > now:
            ends = until if self.expires_at is None else min(until, self.expires_at)
            found.append(self.client_key(self.previous_sha256, ends))
        return found


def encode_record(record: KeyRecord) -> bytes:
    return msgspec.json.encode(record)


def decode_record(raw: bytes | str) -> KeyRecord:
    return msgspec.json.decode(raw, type=KeyRecord)


class KeySnapshot:
    """The store's keys by token digest, swapped whole on every sync; the request
    path reads `by_digest` once per request and never waits on the store."""

    def __init__(self) -> None:
        self.by_digest: Mapping[bytes, ClientKey] = {}
        self.loaded_at = 0.0

    def swap(self, records: Mapping[str, KeyRecord]) -> None:
        now = time.time()
        by_digest = {
            bytes.fromhex(key.sha256): key
            for record in records.values()
            for key in record.client_keys(now)
        }
        self.by_digest, self.loaded_at = by_digest, now


class KeyStore(Protocol):
    kind: str

    async def all(self) -> dict[str, KeyRecord]:
        """Every record by name, revoked ones too."""
        ...

    async def get(self, name: str) -> KeyRecord | None: ...

    async def save(self, record: KeyRecord, expected_revision: int | None) -> bool:
        """Write `record` if the stored one has `expected_revision` (None: only if there
        is none); False when somebody else wrote first."""
        ...

    async def watch(self, on_change: OnChange) -> None:
        """Run until cancelled, calling `on_change` when the keys may have changed
        (connecting, a notice, the change counter, the periodic resync)."""
        ...


class MemoryKeyStore:
    kind = "embedded"

    def __init__(self) -> None:
        self._records: dict[str, KeyRecord] = {}
        self._lock = asyncio.Lock()

    async def all(self) -> dict[str, KeyRecord]:
        return dict(self._records)

    async def get(self, name: str) -> KeyRecord | None:
        return self._records.get(name)

    async def save(self, record: KeyRecord, expected_revision: int | None) -> bool:
        async with self._lock:
            current = self._records.get(record.name)
            if (None if current is None else current.revision) != expected_revision:
                return False
            self._records[record.name] = record
            return True

    async def watch(self, on_change: OnChange) -> None:
        return None  # one process: every write is made here
