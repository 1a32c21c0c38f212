"""The bare-parse baseline: the thinnest aiohttp reverse proxy that still does what any
gateway must, i.e. the practical ceiling for a Python gateway on one core.

    POST /v1/chat/completions: read the body, json-decode it (`model`, `stream`),
    look the model up in --route MODEL@BASE, POST the same bytes to
    BASE/chat/completions on one pooled keep-alive session, then either read the
    answer and json-decode it (`usage`) or relay the stream chunk by chunk.

No auth, no metrics, no logging; only Content-Type crosses, plus a fixed upstream key.

    python bench/bare_proxy.py --port 18190 \
        --route bench-model@http://127.0.0.1:18181/v1 \
        --route bench-model-stream@http://127.0.0.1:18181/stream/v1
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator

import aiohttp
import orjson
from aiohttp import web

SESSION = web.AppKey("session", aiohttp.ClientSession)
UPSTREAM_HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer sk-upstream"}


def build_app(routes: dict[str, str]) -> web.Application:
    async def session_ctx(app: web.Application) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60)
        app[SESSION] = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            skip_auto_headers=("User-Agent",),
            timeout=aiohttp.ClientTimeout(total=600),
        )
        yield
        await app[SESSION].close()

    async def chat(request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = orjson.loads(raw)
        base = routes.get(body.get("model"))
        if base is None:
            return web.json_response({"error": {"message": "unknown model"}}, status=404)
        session = request.app[SESSION]
        async with session.post(
            base + "/chat/completions", data=raw, headers=UPSTREAM_HEADERS
        ) as r:
            ctype = r.headers.get("Content-Type", "application/json")
            if not body.get("stream"):
                data = await r.read()
                if r.status == 200:
                    orjson.loads(data).get("usage")
                return web.Response(status=r.status, body=data, headers={"Content-Type": ctype})
            resp = web.StreamResponse(status=r.status, headers={"Content-Type": ctype})
            await resp.prepare(request)
            async for chunk in r.content.iter_any():
                await resp.write(chunk)
            await resp.write_eof()
            return resp

    app = web.Application()
    app.cleanup_ctx.append(session_ctx)
    app.router.add_post("/v1/chat/completions", chat)
    return app


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--route", action="append", default=[], metavar="MODEL@BASE_URL")
    a = ap.parse_args()
    routes = dict(r.split("@", 1) for r in a.route)
    routes = {model: base.rstrip("/") for model, base in routes.items()}
    try:
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    web.run_app(
        build_app(routes),
        host=a.host,
        port=a.port,
        access_log=None,
        print=None,
        backlog=4096,
        loop=loop,
    )


if __name__ == "__main__":
    main()
