"""Shared by the dataset and test-run tests: identities with the roles the routes need,
an admin API caller holding one of their tokens, cases the fake upstream passes and
fails, and metrics read from the gateway's own `/metrics` page."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Gateway
from tests.eval_support import ADMIN

VIEWER, AUTHOR = "viewer-token-1234", "author-token-5678"
ACME = {"product": "Acme"}


def admins(*, viewer: str = VIEWER, author: str = AUTHOR) -> str:
    """`[[admins]]` entries: `vera` a viewer, `ada` an author (the break-glass token
    stays the identity `admin`)."""
    return "".join(
        f"""
        [[admins]]
        name = "{name}"
        sha256 = "{hashlib.sha256(token.encode()).hexdigest()}"
        roles = ["{role}"]
        """
        for name, token, role in (("vera", viewer, "viewer"), ("ada", author, "author"))
    )


def case(name: str, content: str, **checks: Any) -> dict[str, Any]:
    """A case for the `support` prompt; the fake upstream answers
    "Mock answer to: CONTENT"."""
    return {
        "name": name,
        "variables": ACME,
        "messages": [{"role": "user", "content": content}],
        "checks": checks,
    }


PASSING = [
    case("greeting", "hello there", contains="hello there", regex="^Mock answer"),
    case("exact", "refund?", equals="Mock answer to: refund?"),
]
FAILING = [*PASSING, case("fruit", "apples", contains="banana")]


def write_suite(path: Path, cases: list[Any]) -> Path:
    path.write_text("".join(json.dumps(c) + "\n" for c in cases))
    return path


class Caller:
    """The admin API with one identity's token."""

    def __init__(self, gw: Gateway, session: aiohttp.ClientSession, token: str = ADMIN) -> None:
        self.gw, self.session, self.token = gw, session, token

    async def call(self, method: str, path: str, json: Any = None) -> tuple[int, Any]:
        async with self.session.request(
            method,
            self.gw.url("/admin" + path),
            json=json,
            headers={"Authorization": f"Bearer {self.token}"},
        ) as response:
            return response.status, await response.json(content_type=None)

    async def ok(self, method: str, path: str, json: Any = None, status: int = 200) -> Any:
        got, body = await self.call(method, path, json)
        assert got == status, body
        return body


async def metric(gw: Gateway, name: str, **labels: str) -> float:
    """The sum of `name`'s samples on `/metrics` whose labels include `labels`."""
    async with aiohttp.ClientSession() as session, session.get(gw.url("/metrics")) as r:
        text = await r.text()
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )
