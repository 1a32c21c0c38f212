"""`/admin/*`: the admin sub-app, behind the admin bearer token, and its routes.
JSON in and out; errors in OpenAI's shape."""

from __future__ import annotations

import hmac

from aiohttp import web

from gateway.admin import config, prompts
from gateway.appkeys import RUNTIME
from gateway.errors import ApiError
from gateway.evaluation.api import add_evaluation_routes
from gateway.proxy.middleware import Handler
from gateway.rollout.api import add_rollout_routes
from gateway.shadow.report import add_report_routes


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


def create_admin_app() -> web.Application:
    admin = web.Application(middlewares=[admin_auth])
    admin.router.add_get("/prompts", prompts.list_prompts)
    admin.router.add_get("/prompts/{name}", prompts.show_prompt)
    admin.router.add_post("/prompts/{name}/versions", prompts.push_version)
    admin.router.add_post("/prompts/{name}/versions/{version}/approve", prompts.approve)
    admin.router.add_put("/prompts/{name}/routing", prompts.set_routing)
    admin.router.add_post("/prompts/{name}/rollback", prompts.rollback)
    admin.router.add_get("/prompts/{name}/history", prompts.history)
    add_report_routes(admin)  # /prompts/{name}/shadow, /models/{alias}/shadow
    admin.router.add_get("/config", config.show_config)
    admin.router.add_post("/reload", config.reload_config)
    admin.router.add_get("/providers", config.providers)
    add_evaluation_routes(admin)  # captures, suite results
    add_rollout_routes(admin)  # /prompts/{name}/rollout[/pause|/resume]
    return admin
