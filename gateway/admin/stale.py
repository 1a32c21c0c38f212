"""Admin reads while the store cannot be reached: answered from this replica's last
snapshot (what the proxy serves), marked stale in a header and in the body. Only what
the snapshot holds, prompts with their versions and routing, can be answered so; the
rest (history, test runs, rollouts, captures) stays 503."""

from __future__ import annotations

import time
from typing import Any

import orjson
from aiohttp import web

from gateway.prompts.versions import PromptState
from gateway.store.errors import StoreUnavailable
from gateway.store.follower import PromptsHolder

STALE_HEADER = "X-Gateway-Stale"


def snapshot_states(holder: PromptsHolder, error: StoreUnavailable) -> dict[str, PromptState]:
    """The last snapshot's prompts; `error` again if the store was never read (the
    snapshot is then the config file alone, not what the store holds)."""
    if not holder.synced:
        raise error
    return holder.current.states()


def stale_answer(holder: PromptsHolder, data: dict[str, Any]) -> web.Response:
    age = round(time.time() - holder.current.loaded_at, 3)
    return web.Response(
        body=orjson.dumps({**data, "stale": True, "snapshot_age_s": age}),
        content_type="application/json",
        headers={STALE_HEADER: "true"},
    )
