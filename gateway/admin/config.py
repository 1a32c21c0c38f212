"""`/admin/config`, `/admin/providers` and `/admin/reload`: the running config, its
targets' health, and reloading it."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from gateway.appkeys import RELOADER, RUNTIME
from gateway.config.loader import GatewayConfig, Secret
from gateway.errors import ApiError


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


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
    for key in [*out.get("keys", []), *out["control"]["admins"]]:
        key["sha256"] = key["sha256"][:8] + "…"
    # Four eyes is on by default once [[admins]] exist: say which it is.
    out["control"]["four_eyes"] = config.control.four_eyes
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
        raise ApiError(400, result.error, code=result.code, details={"config": result.hash})
    return _json({"config": result.hash, "changes": list(result.changes)})
