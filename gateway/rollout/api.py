"""The rollout controller's admin routes: `/admin/prompts/{name}/rollout` start
(POST), watch (GET), abort (DELETE), and `…/rollout/pause`, `…/rollout/resume`."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from gateway.appkeys import ROLLOUTS
from gateway.decoding import Body, actor, decode
from gateway.proxy.ingress import read_json
from gateway.rollout.controller import RolloutController
from gateway.rollout.state import RolloutRequest

BODY_LIMIT = 64 * 1024


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _controller(request: web.Request) -> RolloutController:
    return request.config_dict[ROLLOUTS]


async def _acting(request: web.Request) -> str:
    """Who acts, from a body that may be empty."""
    data = await read_json(request, BODY_LIMIT) if request.can_read_body else {}
    return actor(request, decode(data, Body).by)


async def _answer(request: web.Request, status: int = 200) -> web.Response:
    return _json(await _controller(request).status(request.match_info["name"]), status)


async def start_rollout(request: web.Request) -> web.Response:
    plan = decode(await read_json(request, BODY_LIMIT), RolloutRequest)
    await _controller(request).start(request.match_info["name"], plan, actor(request, plan.by))
    return await _answer(request, 201)


async def show_rollout(request: web.Request) -> web.Response:
    return await _answer(request)


async def abort_rollout(request: web.Request) -> web.Response:
    await _controller(request).abort(request.match_info["name"], await _acting(request))
    return await _answer(request)


async def pause_rollout(request: web.Request) -> web.Response:
    await _controller(request).pause(request.match_info["name"], await _acting(request))
    return await _answer(request)


async def resume_rollout(request: web.Request) -> web.Response:
    await _controller(request).resume(request.match_info["name"], await _acting(request))
    return await _answer(request)


def add_rollout_routes(admin: web.Application) -> None:
    admin.router.add_post("/prompts/{name}/rollout", start_rollout)
    admin.router.add_get("/prompts/{name}/rollout", show_rollout)
    admin.router.add_delete("/prompts/{name}/rollout", abort_rollout)
    admin.router.add_post("/prompts/{name}/rollout/pause", pause_rollout)
    admin.router.add_post("/prompts/{name}/rollout/resume", resume_rollout)
