"""`/healthz` (the process answers) and `/readyz` (it can serve: the store has been
read, and it is not draining)."""

from __future__ import annotations

import time

from aiohttp import web

from gateway.appkeys import LIFECYCLE, PROMPTS, RUNTIME


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


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
