"""`/admin/prompts/*`: prompts, versions, approval, routing, rollback and history."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from aiohttp import web

from gateway.admin.stale import snapshot_states, stale_answer
from gateway.appkeys import PROMPTS, RUNTIME
from gateway.decoding import Body, actor, decode
from gateway.errors import ApiError
from gateway.evaluation.api import annotate_prompt, check_approvable
from gateway.prompts.bodies import ApproveBody, RoutingBody, VersionBody
from gateway.prompts.versions import PROMPT_NAME, PromptState
from gateway.proxy.ingress import read_json
from gateway.store.base import not_found
from gateway.store.errors import StoreUnavailable
from gateway.store.follower import PromptsHolder

ADMIN_BODY_LIMIT = 1024 * 1024
B = TypeVar("B", bound=Body)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _holder(request: web.Request) -> PromptsHolder:
    return request.config_dict[PROMPTS]


async def _body(request: web.Request, type_: type[B]) -> B:
    """The body as `type_`; an empty body is an empty object."""
    data = await read_json(request, ADMIN_BODY_LIMIT) if request.can_read_body else {}
    return decode(data, type_)


async def _written(request: web.Request) -> None:
    """This replica sees its own write at once; others hear of it through the store."""
    try:
        await _holder(request).refresh()
    except Exception:  # the write is done; the follower will catch up
        return


def _listing(states: dict[str, PromptState]) -> dict[str, Any]:
    return {"prompts": [s.to_json() for _, s in sorted(states.items())]}


async def list_prompts(request: web.Request) -> web.Response:
    holder = _holder(request)
    try:
        states = await holder.store.all_prompts()
    except StoreUnavailable as exc:
        return stale_answer(holder, _listing(snapshot_states(holder, exc)))
    return _json(_listing(states))


async def show_prompt(request: web.Request) -> web.Response:
    name, holder = request.match_info["name"], _holder(request)
    try:
        state = await holder.store.get_prompt(name)
        if state is None:
            raise not_found(name)
        return _json(await annotate_prompt(request, state.to_json()))  # + suite results
    except StoreUnavailable as exc:
        stale = snapshot_states(holder, exc).get(name)
        if stale is None:  # perhaps created since the snapshot: cannot tell
            raise
        return stale_answer(holder, stale.to_json())  # suite results are not in it


async def push_version(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if not PROMPT_NAME.match(name):
        raise ApiError(
            400,
            "A prompt name is letters, digits, '.', '_' and '-' (at most 100).",
            code="invalid_name",
        )
    body = decode(await read_json(request, ADMIN_BODY_LIMIT), VersionBody)
    content = body.content()
    if content.model not in request.config_dict[RUNTIME].current.config.models:
        raise ApiError(
            400, f"Unknown route `{content.model}`.", param="model", code="model_not_found"
        )
    by = actor(request, body.by)
    version, created = await _holder(request).store.push_version(name, content, by)
    if created:
        await _written(request)
    return _json(
        {"version": version.id, "hash": version.hash, "status": version.status},
        status=201 if created else 200,
    )


async def approve(request: web.Request) -> web.Response:
    name, version = request.match_info["name"], request.match_info["version"]
    body = await _body(request, ApproveBody)
    await check_approvable(request, name, version)  # require_passing_suite
    by, note = actor(request, body.by), body.note or ""
    approved = await _holder(request).store.approve(name, version, by, note)
    await _written(request)
    return _json(approved.to_json())


async def set_routing(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    body = decode(await read_json(request, ADMIN_BODY_LIMIT), RoutingBody)
    by, reason = actor(request, body.by), body.reason or ""
    change = await _holder(request).store.set_routing(name, body.routing(), by, reason)
    await _written(request)
    return _json(change.to_json())


async def rollback(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    body = await _body(request, Body)
    change = await _holder(request).store.rollback(name, actor(request, body.by))
    await _written(request)
    return _json(change.to_json())


async def history(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    try:
        limit = int(request.query.get("limit", "100"))
    except ValueError:
        raise ApiError(400, "'limit' must be a number.", param="limit") from None
    changes = await _holder(request).store.history(name, max(1, min(limit, 1000)))
    return _json({"name": name, "changes": [c.to_json() for c in changes]})
