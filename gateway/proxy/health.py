"""`/healthz` (the process answers) and `/readyz` (it can serve: the store has been
read, and it is not draining)."""

from __future__ import annotations

import time

from aiohttp import web

from gateway.appkeys import LIFECYCLE, PROMPTS, RUNTIME
from gateway.store.follower import PromptsHolder


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def _data_loss(holder: PromptsHolder) -> dict[str, float | int | None]:
    """When the store was last found without its data, and when this replica had
    written back what its snapshot knew (None: not yet); still ready meanwhile, as the
    snapshot serves."""
    loss = holder.data_loss
    return {
        "data_lost_at": loss.noticed_at if loss else None,
        "restored_at": loss.restored_at if loss else None,
        "prompts_restored": loss.prompts_restored if loss else None,
    }


async def readyz(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME].current
    holder = request.app[PROMPTS]
    store = {
        "kind": holder.store.kind,
        "up": holder.store_up,
        "synced": holder.synced,
        "snapshot_age_s": round(time.time() - holder.current.loaded_at, 3)
        if holder.synced
        else None,
        "error": holder.last_error or None,
        **_data_loss(holder),
    }
    # Ready once the store has been read; a store that goes down later is reported here
    # and in gateway_store_up, while the last snapshot keeps serving.
    status = 200 if holder.synced and not request.app[LIFECYCLE].draining else 503
    return web.json_response(
        {
            "status": "ready"
            if status == 200
            else ("draining" if request.app[LIFECYCLE].draining else "starting"),
            "config": runtime.config.hash,
            "store": store,
        },
        status=status,
    )
