"""`/admin/*`: prompts, versions, routing, history, config and providers, behind the
admin bearer token. JSON in and out; errors in OpenAI's shape."""

from __future__ import annotations

import hmac
from typing import Any

import orjson
from aiohttp import web

from gateway.appkeys import PROMPTS, RELOADER, RUNTIME
from gateway.config.loader import GatewayConfig, Secret
from gateway.errors import ApiError
from gateway.evaluation.api import add_evaluation_routes, annotate_prompt, check_approvable
from gateway.prompts.versions import PROMPT_NAME, PromptContent, Routing
from gateway.proxy.api import Handler, read_json
from gateway.rollout.api import add_rollout_routes
from gateway.shadow.report import add_report_routes
from gateway.store.base import not_found
from gateway.store.follower import PromptsHolder

ADMIN_BODY_LIMIT = 1024 * 1024


@web.middleware
async def admin_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    token = request.config_dict[RUNTIME].current.config.server.admin_token.reveal()
    if not token:
        raise ApiError(401, "The admin API is off: set server.admin_token.", code="admin_disabled")
    header = request.headers.get("Authorization", "")
    given = header[7:].strip() if header[:7].lower() == "bearer " else ""
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise ApiError(401, "Admin token required.", code="invalid_admin_token")
    return await handler(request)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _holder(request: web.Request) -> PromptsHolder:
    return request.config_dict[PROMPTS]


def _actor(request: web.Request, body: dict[str, Any] | None = None) -> str:
    by = (body or {}).get("by") or request.headers.get("X-Gateway-Actor") or "admin"
    if not isinstance(by, str):
        raise ApiError(400, "'by' must be a string.", param="by")
    return by[:100]


async def _written(request: web.Request) -> None:
    """This replica sees its own write at once; others hear of it through the store."""
    try:
        await _holder(request).refresh()
    except Exception:  # the write is done; the follower will catch up
        return


async def list_prompts(request: web.Request) -> web.Response:
    states = await _holder(request).store.load_all()
    return _json({"prompts": [s.to_json() for _, s in sorted(states.items())]})


async def show_prompt(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    state = await _holder(request).store.get_prompt(name)
    if state is None:
        raise not_found(name)
    return _json(await annotate_prompt(request, state.to_json()))  # + suite results


async def push_version(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if not PROMPT_NAME.match(name):
        raise ApiError(
            400,
            "A prompt name is letters, digits, '.', '_' and '-' (at most 100).",
            code="invalid_name",
        )
    body = await read_json(request, ADMIN_BODY_LIMIT)
    by = _actor(request, body)
    body.pop("by", None)
    content = PromptContent.from_json(body)
    if content.model not in request.config_dict[RUNTIME].current.config.models:
        raise ApiError(
            400, f"Unknown route `{content.model}`.", param="model", code="model_not_found"
        )
    version, created = await _holder(request).store.push_version(name, content, by)
    if created:
        await _written(request)
    return _json(
        {"version": version.id, "hash": version.hash, "status": version.status},
        status=201 if created else 200,
    )


async def approve(request: web.Request) -> web.Response:
    name, version = request.match_info["name"], request.match_info["version"]
    body = await read_json(request, ADMIN_BODY_LIMIT) if request.can_read_body else {}
    note = body.get("note") or ""
    if not isinstance(note, str):
        raise ApiError(400, "'note' must be a string.", param="note")
    await check_approvable(request, name, version)  # require_passing_suite
    approved = await _holder(request).store.approve(name, version, _actor(request, body), note)
    await _written(request)
    return _json(approved.to_json())


async def set_routing(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    body = await read_json(request, ADMIN_BODY_LIMIT)
    routing = Routing.from_json(body)
    reason = body.get("reason") or ""
    if not isinstance(reason, str):
        raise ApiError(400, "'reason' must be a string.", param="reason")
    change = await _holder(request).store.set_routing(name, routing, _actor(request, body), reason)
    await _written(request)
    return _json(change.to_json())


async def rollback(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    body = await read_json(request, ADMIN_BODY_LIMIT) if request.can_read_body else {}
    change = await _holder(request).store.rollback(name, _actor(request, body))
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


def redacted(config: GatewayConfig) -> dict[str, Any]:
    """The effective config as JSON, every secret replaced."""

    def clean(value: Any) -> Any:
        if isinstance(value, Secret):
            return "***" if value else ""
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple, frozenset)):
            return [clean(v) for v in value]
        if hasattr(value, "__dataclass_fields__"):
            return {k: clean(getattr(value, k)) for k in value.__dataclass_fields__}
        return value

    out: dict[str, Any] = clean(config)
    for key in out.get("keys", []):
        key["sha256"] = key["sha256"][:8] + "…"
    return out


async def show_config(request: web.Request) -> web.Response:
    return _json(redacted(request.config_dict[RUNTIME].current.config))


async def providers(request: web.Request) -> web.Response:
    runtime = request.config_dict[RUNTIME].current
    targets = []
    for provider, model, breaker in runtime.parts.breakers():
        targets.append(
            {
                "provider": provider.name,
                "type": provider.type,
                "model": model,
                **breaker.report(),
            }
        )
    configured = [
        {"name": p.name, "type": p.type, "base_url": p.base_url}
        for p in runtime.config.providers.values()
    ]
    return _json({"providers": configured, "targets": targets})


async def reload_config(request: web.Request) -> web.Response:
    result = await request.config_dict[RELOADER].reload("admin API")
    if not result.ok:
        raise ApiError(400, result.error, code="invalid_config", details={"config": result.hash})
    return _json({"config": result.hash, "changes": list(result.changes)})


def create_admin_app() -> web.Application:
    admin = web.Application(middlewares=[admin_auth])
    admin.router.add_get("/prompts", list_prompts)
    admin.router.add_get("/prompts/{name}", show_prompt)
    admin.router.add_post("/prompts/{name}/versions", push_version)
    admin.router.add_post("/prompts/{name}/versions/{version}/approve", approve)
    admin.router.add_put("/prompts/{name}/routing", set_routing)
    admin.router.add_post("/prompts/{name}/rollback", rollback)
    admin.router.add_get("/prompts/{name}/history", history)
    add_report_routes(admin)  # /prompts/{name}/shadow, /models/{alias}/shadow
    admin.router.add_get("/config", show_config)
    admin.router.add_post("/reload", reload_config)
    admin.router.add_get("/providers", providers)
    add_evaluation_routes(admin)  # captures, suite results
    add_rollout_routes(admin)  # /prompts/{name}/rollout[/pause|/resume]
    return admin
