"""`/admin/prompts/*`: prompts, versions, approval (four eyes), routing, rollback (undo,
to a history entry, to before a rollout) and history."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from aiohttp import web

from gateway.admin.drift import with_drift
from gateway.admin.identity import caller
from gateway.admin.stale import snapshot_states, stale_answer
from gateway.appkeys import PROMPTS, ROLLOUTS, RUNTIME
from gateway.config.prompts import resolved_targets
from gateway.decoding import Body, actor, decode
from gateway.errors import ApiError, Conflict
from gateway.evaluation.api import annotate_prompt, check_approvable
from gateway.prompts.approval import ApprovalRules
from gateway.prompts.bodies import ApproveBody, DocsBody, RollbackBody, RoutingBody, VersionBody
from gateway.prompts.history import HistoryEntry
from gateway.prompts.versions import PROMPT_NAME, PromptContent, PromptState, Routing, Shadow, iso
from gateway.proxy.ingress import read_json
from gateway.store.base import not_found, version_not_found
from gateway.store.errors import StoreUnavailable
from gateway.store.follower import PromptsHolder

ADMIN_BODY_LIMIT = 1024 * 1024
B = TypeVar("B", bound=Body)


def json_answer(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def prompts_of(request: web.Request) -> PromptsHolder:
    return request.config_dict[PROMPTS]


async def _body(request: web.Request, type_: type[B]) -> B:
    """The body as `type_`; an empty body is an empty object."""
    data = await read_json(request, ADMIN_BODY_LIMIT) if request.can_read_body else {}
    return decode(data, type_)


async def written(request: web.Request) -> None:
    """This replica sees its own write at once; others hear of it through the store."""
    try:
        await prompts_of(request).refresh()
    except Exception:  # the write is done; the follower will catch up
        return


def _listing(states: dict[str, PromptState]) -> dict[str, Any]:
    return {"prompts": [s.to_json() for _, s in sorted(states.items())]}


async def list_prompts(request: web.Request) -> web.Response:
    holder = prompts_of(request)
    try:
        states = await holder.store.all_prompts()
    except StoreUnavailable as exc:
        return stale_answer(holder, _listing(snapshot_states(holder, exc)))
    return json_answer(_listing(states))


async def show_prompt(request: web.Request) -> web.Response:
    name, holder = request.match_info["name"], prompts_of(request)
    try:
        state = await holder.store.get_prompt(name)
        if state is None:
            raise not_found(name)
        shown = await with_drift(request, state)  # + each version's drift
        return json_answer(await annotate_prompt(request, shown))  # + latest test runs
    except StoreUnavailable as exc:
        stale = snapshot_states(holder, exc).get(name)
        if stale is None:  # perhaps created since the snapshot: cannot tell
            raise
        return stale_answer(holder, stale.to_json())  # test runs are not in it


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
    config = request.config_dict[RUNTIME].current.config
    if content.model not in config.models:
        raise ApiError(
            400, f"Unknown route `{content.model}`.", param="model", code="model_not_found"
        )
    for i, pin in enumerate(content.targets):
        if pin.provider not in config.providers:
            raise ApiError(
                400,
                f"Unknown provider `{pin.provider}`.",
                param=f"targets[{i}].provider",
                code="provider_not_found",
            )
    by = actor(request, body.by)
    store = prompts_of(request).store
    version, created = await store.push_version(name, content, by, body.note)
    docs = await store.set_docs(name, body.docs(), by) if body.docs() else None
    if created or docs is not None:
        await written(request)
    return json_answer(
        {"version": version.id, "hash": version.hash, "status": version.status},
        status=201 if created else 200,
    )


async def edit_docs(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    body = await _body(request, DocsBody)
    store = prompts_of(request).store
    await store.set_docs(name, body.docs(), actor(request, body.by))
    await written(request)
    state = await store.get_prompt(name)
    if state is None:
        raise not_found(name)
    return json_answer(state.to_json())


def approval_rules(request: web.Request, content: PromptContent) -> ApprovalRules:
    """Four eyes as configured; what is approved is where the version goes now."""
    config = request.config_dict[RUNTIME].current.config
    four_eyes = config.control.four_eyes
    return ApprovalRules(
        required=config.control.change_control.approvals_required if four_eyes else 1,
        distinct=four_eyes,
        targets=resolved_targets(content, config.models),
    )


async def approve(request: web.Request) -> web.Response:
    name, version = request.match_info["name"], request.match_info["version"]
    body = await _body(request, ApproveBody)
    by, note = actor(request, body.by), body.note or ""
    store = prompts_of(request).store
    state = await store.get_prompt(name)
    if state is None:
        raise not_found(name)
    if version not in state.versions:
        raise version_not_found(name, version)
    await check_approvable(request, name, version)  # require_suite
    rules = approval_rules(request, state.versions[version].content)
    approved = await store.approve(name, version, by, note, rules)
    await written(request)
    return json_answer(approved.to_json())


async def set_routing(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    body = decode(await read_json(request, ADMIN_BODY_LIMIT), RoutingBody)
    by, reason = actor(request, body.by), body.reason or ""
    entry = await prompts_of(request).store.set_routing(name, body.routing(), by, reason)
    await written(request)
    return json_answer(entry.to_json())


async def rollback(request: web.Request) -> web.Response:
    """Undo the last routing change, or go back `to` a history entry or to the
    baseline of the latest rollout (`before_rollout`, completed ones included)."""
    name = request.match_info["name"]
    body = await _body(request, RollbackBody)
    by, store = actor(request, body.by), prompts_of(request).store
    if body.to == "before_rollout":
        entry = await _before_rollout(request, name, by, body.reason)
    else:
        entry = await store.rollback(name, by, body.to, body.reason or "")
    await written(request)
    return json_answer(entry.to_json())


async def _before_rollout(
    request: web.Request, name: str, by: str, reason: str | None
) -> HistoryEntry:
    rollout = await request.config_dict[ROLLOUTS].store.load(name)
    if rollout is None:
        raise Conflict(f"Prompt '{name}' has had no rollout.", code="no_rollout")
    if rollout.active:
        raise Conflict(
            f"The rollout of {rollout.version} is {rollout.state}: abort it "
            f"(`gateway rollout abort {name}`), which restores its baseline.",
            code="rollout_active",
        )
    store = prompts_of(request).store
    state = await store.get_prompt(name)
    shadow = state.routing.shadow if state is not None and state.routing else Shadow()
    why = reason or (
        f"rollback to before the rollout of {rollout.version} "
        f"(started {iso(rollout.started_at)} by {rollout.started_by or '-'})"
    )
    baseline = Routing(dict(rollout.baseline), shadow)
    return await store.set_routing(name, baseline, by, why, kind="rollback")


async def history(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    try:
        limit = int(request.query.get("limit", "100"))
    except ValueError:
        raise ApiError(400, "'limit' must be a number.", param="limit") from None
    entries = await prompts_of(request).store.history(name, max(1, min(limit, 1000)))
    return json_answer({"name": name, "history": [e.to_json() for e in entries]})


async def whoami(request: web.Request) -> web.Response:
    identity = caller(request)
    control = request.config_dict[RUNTIME].current.config.control
    return json_answer(
        {"name": identity.name, "roles": sorted(identity.roles), "four_eyes": control.four_eyes}
    )
