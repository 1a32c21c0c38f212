"""Regression-suite runs recorded per prompt version, kept in the store's records."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import msgspec

from gateway.decoding import Body
from gateway.store.records import Records

Count = Annotated[int, msgspec.Meta(ge=0)]


class SuiteRunBody(Body, frozen=True):
    """What `POST …/versions/{v}/suite-results` must hold; its other fields (the cases'
    results) are kept as they came."""

    passed: bool
    total: Count = 0
    failed: Count = 0


class SuiteResults:
    """Regression-suite runs recorded per prompt version."""

    def __init__(self, records: Records) -> None:
        self.records = records

    async def record(self, name: str, version: str, run: Mapping[str, Any]) -> None:
        await self.records.add_suite_run(name, version, run)

    async def latest(self, name: str, version: str) -> dict[str, Any] | None:
        runs = (await self.records.suite_runs(name, [version])).get(version)
        return runs[0] if runs else None

    async def annotate(self, prompt: dict[str, Any]) -> dict[str, Any]:
        """A prompt's JSON with `suite` on each version: the latest run, whether it
        passed, and how many runs are kept (None: never run)."""
        versions = prompt.get("versions") or []
        runs = await self.records.suite_runs(prompt["name"], [v["version"] for v in versions])
        for v in versions:
            kept = runs.get(v["version"])
            v["suite"] = (
                {"passed": bool(kept[0].get("passed")), "latest": kept[0], "runs": len(kept)}
                if kept
                else None
            )
        return prompt
