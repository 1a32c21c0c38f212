"""Datasets: named lists of test cases, kept in revisions. Every change to the cases is
a new revision (1, 2, …), with who made it and when; a revision never changes after.

The store keeps cases as plain JSON objects: what a case may hold is checked before it
gets here (gateway.evaluation.suites). This module has the types, the `Datasets`
protocol and the embedded store's implementation; the Redis one is in
gateway.store.datasets_redis."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Protocol

import msgspec

from gateway.errors import Conflict, NotFound
from gateway.prompts.versions import iso

REVISIONS_KEPT = 100  # per dataset; older revisions are dropped
Case = dict[str, Any]


class DatasetHead(msgspec.Struct, frozen=True, kw_only=True):
    """A dataset's current revision, without its cases: what a listing shows."""

    name: str
    description: str = ""
    revision: int
    case_count: int
    created_at: float  # the first revision
    created_by: str
    updated_at: float  # the current revision
    updated_by: str

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "revision": self.revision,
            "case_count": self.case_count,
            "created_at": iso(self.created_at),
            "created_by": self.created_by,
            "updated_at": iso(self.updated_at),
            "updated_by": self.updated_by,
        }


class DatasetRevision(msgspec.Struct, frozen=True, kw_only=True):
    """One revision of a dataset: its cases as they were then."""

    name: str
    revision: int
    description: str = ""
    cases: tuple[Case, ...]
    at: float
    by: str

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "revision": self.revision,
            "description": self.description,
            "cases": list(self.cases),
            "at": iso(self.at),
            "by": self.by,
        }


def next_revision(
    head: DatasetHead | None,
    name: str,
    cases: Sequence[Case],
    by: str,
    expect: int,
    description: str | None,
) -> tuple[DatasetHead, DatasetRevision]:
    """The revision after `expect` (0: the dataset is new) and the head it makes, or
    the error when the store holds something else than the writer read."""
    check_expected(name, head.revision if head is not None else 0, expect)
    now = time.time()
    text = description if description is not None else (head.description if head else "")
    revision = DatasetRevision(
        name=name, revision=expect + 1, description=text, cases=tuple(cases), at=now, by=by
    )
    made = DatasetHead(
        name=name,
        description=text,
        revision=revision.revision,
        case_count=len(cases),
        created_at=head.created_at if head else now,
        created_by=head.created_by if head else by,
        updated_at=now,
        updated_by=by,
    )
    return made, revision


def check_expected(name: str, current: int, expect: int) -> None:
    """The error when the store is at revision `current` (0: no such dataset) and a
    writer expects `expect`."""
    if current == expect:
        return
    if expect == 0:
        raise Conflict(f"Dataset '{name}' exists already.", code="dataset_exists")
    if current == 0:
        raise dataset_not_found(name)
    raise Conflict(
        f"Dataset '{name}' changed meanwhile (revision {current}, not {expect}).",
        code="concurrent_change",
    )


def dataset_not_found(name: str) -> NotFound:
    return NotFound(f"Unknown dataset '{name}'.", code="dataset_not_found")


def revision_not_found(name: str, revision: int) -> NotFound:
    return NotFound(
        f"Dataset '{name}' has no revision {revision} (the last {REVISIONS_KEPT} are kept).",
        code="revision_not_found",
    )


class Datasets(Protocol):
    async def heads(self) -> list[DatasetHead]:
        """Every dataset's current revision, by name."""
        ...

    async def head(self, name: str) -> DatasetHead | None: ...

    async def get(self, name: str, revision: int | None = None) -> DatasetRevision | None:
        """The current revision, or revision `revision`; None when there is no such."""
        ...

    async def save(
        self,
        name: str,
        cases: Sequence[Case],
        by: str,
        expect: int,
        description: str | None = None,
    ) -> DatasetRevision:
        """Write the revision after `expect` (0 creates the dataset): a compare-and-set,
        `Conflict` when another writer got there first (or the dataset exists)."""
        ...


class MemoryDatasets:
    def __init__(self) -> None:
        self._heads: dict[str, DatasetHead] = {}
        self._revisions: dict[str, dict[int, DatasetRevision]] = {}

    async def heads(self) -> list[DatasetHead]:
        return [self._heads[name] for name in sorted(self._heads)]

    async def head(self, name: str) -> DatasetHead | None:
        return self._heads.get(name)

    async def get(self, name: str, revision: int | None = None) -> DatasetRevision | None:
        head = self._heads.get(name)
        if head is None:
            return None
        return self._revisions[name].get(head.revision if revision is None else revision)

    async def save(
        self,
        name: str,
        cases: Sequence[Case],
        by: str,
        expect: int,
        description: str | None = None,
    ) -> DatasetRevision:
        head, revision = next_revision(self._heads.get(name), name, cases, by, expect, description)
        kept = self._revisions.setdefault(name, {})
        kept[revision.revision] = revision
        kept.pop(revision.revision - REVISIONS_KEPT, None)
        self._heads[name] = head
        return revision
