"""Who is calling the admin API, and whether their roles allow the route.

A bearer token is hashed and compared with every `[[admins]]` entry's hash (constant
time, all of them), then with the break-glass `server.admin_token` (the identity named
`admin`, every role). Each route needs one role (`ROUTE_ROLES`); a route missing from
the table needs `admin`, so a new route is closed until somebody says who may use it."""

from __future__ import annotations

import hashlib
import hmac

from aiohttp import web

from gateway.appkeys import ADMIN, RUNTIME
from gateway.config.control import BREAK_GLASS, ROLES, AdminIdentity
from gateway.config.loader import GatewayConfig
from gateway.errors import ApiError
from gateway.proxy.middleware import Handler

EVERY_ROLE = frozenset(ROLES)

# (method, route pattern under /admin) -> the role it needs.
ROUTE_ROLES: dict[tuple[str, str], str] = {
    ("GET", "/whoami"): "viewer",
    ("GET", "/spend"): "viewer",
    ("GET", "/limits"): "viewer",
    ("GET", "/prompts"): "viewer",
    ("GET", "/prompts/{name}"): "viewer",
    ("PATCH", "/prompts/{name}"): "author",
    ("POST", "/prompts/{name}/versions"): "author",
    ("POST", "/prompts/{name}/versions/{version}/approve"): "approver",
    ("POST", "/prompts/{name}/versions/{version}/test"): "author",
    ("PUT", "/prompts/{name}/routing"): "operator",
    ("POST", "/prompts/{name}/rollback"): "operator",
    ("GET", "/prompts/{name}/history"): "viewer",
    ("GET", "/prompts/{name}/diff"): "viewer",
    ("GET", "/prompts/{name}/runbook"): "viewer",
    # Labels: operator, or approver for a protected label (checked in gateway.admin.labels).
    ("PUT", "/prompts/{name}/labels/{label}"): "viewer",
    ("DELETE", "/prompts/{name}/labels/{label}"): "viewer",
    ("GET", "/prompts/{name}/runs"): "viewer",
    ("GET", "/prompts/{name}/runs/{run}"): "viewer",
    ("POST", "/prompts/{name}/replays"): "author",
    ("GET", "/prompts/{name}/replays"): "viewer",
    ("GET", "/prompts/{name}/replays/{replay}"): "viewer",
    ("GET", "/prompts/{name}/shadow"): "viewer",
    ("GET", "/models/{alias}/shadow"): "viewer",
    ("POST", "/prompts/{name}/rollout"): "operator",
    ("GET", "/prompts/{name}/rollout"): "viewer",
    ("DELETE", "/prompts/{name}/rollout"): "operator",
    ("POST", "/prompts/{name}/rollout/pause"): "operator",
    ("POST", "/prompts/{name}/rollout/resume"): "operator",
    ("GET", "/datasets"): "viewer",
    ("POST", "/datasets"): "author",
    ("GET", "/datasets/{name}"): "viewer",
    ("GET", "/datasets/{name}/cases"): "viewer",
    ("POST", "/datasets/{name}/cases"): "author",
    ("PUT", "/datasets/{name}/cases"): "author",
    ("GET", "/captures"): "viewer",
    ("GET", "/captures/{request_id}"): "viewer",
    ("GET", "/captures/{request_id}/labels"): "viewer",
    ("POST", "/captures/{request_id}/labels"): "reviewer",
    ("DELETE", "/captures/{request_id}/labels/{label}"): "reviewer",
    ("POST", "/captures/{request_id}/dataset-case"): "author",
    ("GET", "/feedback"): "viewer",
    ("GET", "/config"): "viewer",
    ("POST", "/reload"): "operator",
    ("GET", "/providers"): "viewer",
    # Client keys: operators make, rotate, edit and revoke them; every role reads them.
    ("GET", "/keys"): "viewer",
    ("GET", "/keys/{name}"): "viewer",
    ("POST", "/keys"): "operator",
    ("PATCH", "/keys/{name}"): "operator",
    ("DELETE", "/keys/{name}"): "operator",
    ("POST", "/keys/{name}/rotate"): "operator",
    # The playground: operator or author (checked in gateway.admin.playground).
    ("POST", "/prompts/{name}/playground"): "viewer",
    ("GET", "/reviews"): "viewer",
    ("GET", "/reviews/{id}"): "viewer",
    ("POST", "/reviews/{id}/approve"): "reviewer",
    ("POST", "/reviews/{id}/reject"): "reviewer",
}


def identify(config: GatewayConfig, token: str) -> AdminIdentity | None:
    """The identity a token belongs to; None for none. Every comparison is made."""
    digest = hashlib.sha256(token.encode()).hexdigest().encode()
    found = None
    for admin in config.control.admins:
        if hmac.compare_digest(digest, admin.sha256.encode()):
            found = admin
    glass = config.server.admin_token.reveal()
    if glass and hmac.compare_digest(token.encode(), glass.encode()) and found is None:
        found = AdminIdentity(BREAK_GLASS, "", EVERY_ROLE)
    return found


def role_needed(request: web.Request) -> str:
    resource = request.match_info.route.resource
    pattern = resource.canonical if resource is not None else request.path
    return ROUTE_ROLES.get((request.method, _local(pattern)), "admin")


def _local(pattern: str) -> str:
    """A route pattern without the `/admin` the sub-app is mounted under."""
    return pattern.removeprefix("/admin") or "/"


@web.middleware
async def admin_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    config = request.config_dict[RUNTIME].current.config
    if not config.server.admin_token and not config.control.admins:
        raise ApiError(
            401,
            "The admin API is off: set server.admin_token or add [[admins]].",
            code="admin_disabled",
        )
    header = request.headers.get("Authorization", "")
    given = header[7:].strip() if header[:7].lower() == "bearer " else ""
    identity = identify(config, given) if given else None
    if identity is None:
        raise ApiError(401, "Admin token required.", code="invalid_admin_token")
    needed = role_needed(request)
    if not identity.has(needed):
        raise insufficient_role(identity, needed)
    request[ADMIN] = identity
    return await handler(request)


def insufficient_role(identity: AdminIdentity, needed: str) -> ApiError:
    held = ", ".join(sorted(identity.roles))
    return ApiError(
        403,
        f"{identity.name} ({held}) needs the {needed} role for this.",
        type_="permission_error",
        code="insufficient_role",
        details={"role_needed": needed},
    )


def caller(request: web.Request) -> AdminIdentity:
    identity: AdminIdentity = request[ADMIN]
    return identity


def require(request: web.Request, role: str) -> AdminIdentity:
    """A check beyond the route's own (a protected label needs `approver`)."""
    identity = caller(request)
    if not identity.has(role):
        raise insufficient_role(identity, role)
    return identity
