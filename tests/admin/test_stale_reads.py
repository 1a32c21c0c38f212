"""Admin reads while Redis is away: prompts and their routing are answered from the
replica's last snapshot, marked stale; what the snapshot does not hold, and every
write, answer 503 `store_unavailable`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from tests.redis_fixtures import RedisServer
from tests.store.test_replicas import ADMIN, AiohttpServer, config, replica

ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN}"}


async def call(
    session: aiohttp.ClientSession, server: TestServer, method: str, path: str, body: Any = None
) -> tuple[int, str | None, Any]:
    async with session.request(
        method, server.make_url("/admin" + path), headers=ADMIN_HEADERS, json=body
    ) as r:
        return r.status, r.headers.get("X-Gateway-Stale"), await r.json()


@pytest.mark.parametrize("outage", ["stopped", "frozen"])
async def test_prompt_reads_answer_from_the_snapshot_marked_stale_while_redis_is_away(
    aiohttp_server: AiohttpServer, tmp_path: Path, redis_server: RedisServer, outage: str
) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(config(redis_server.url))
    server, _ = await replica(aiohttp_server, path)
    async with aiohttp.ClientSession() as session:
        status, stale, fresh = await call(session, server, "GET", "/prompts/support")
        assert (status, stale) == (200, None) and "stale" not in fresh
        redis_server.stop() if outage == "stopped" else redis_server.freeze()
        try:
            status, stale, listing = await call(session, server, "GET", "/prompts")
            assert (status, stale) == (200, "true")
            assert listing["stale"] is True and listing["snapshot_age_s"] >= 0
            [prompt] = listing["prompts"]
            assert (prompt["name"], prompt["routing"]["weights"]) == ("support", {"v1": 100})

            status, stale, shown = await call(session, server, "GET", "/prompts/support")
            assert (status, stale) == (200, "true")
            assert shown["stale"] is True and shown["snapshot_age_s"] >= 0
            assert [v["version"] for v in shown["versions"]] == ["v1"]
            assert shown["versions"][0]["hash"] == fresh["versions"][0]["hash"]
            assert shown["routing"] == fresh["routing"]

            # What the snapshot cannot answer, and every write: 503 as before.
            for method, where, body in [
                ("GET", "/prompts/support/history", None),
                ("GET", "/prompts/unknown", None),
                ("PUT", "/prompts/support/routing", {"weights": {"v1": 100}}),
                ("POST", "/prompts/support/rollback", {}),
            ]:
                status, stale, answer = await call(session, server, method, where, body)
                assert status == 503, (method, where)
                assert answer["error"]["code"] == "store_unavailable"
        finally:
            redis_server.start() if outage == "stopped" else redis_server.thaw()
