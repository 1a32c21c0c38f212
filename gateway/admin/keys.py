"""`/admin/keys`: client keys ("virtual keys"). Made, rotated, edited and revoked in the
store; the config file's `[[keys]]` are listed beside them, read-only. An answer
carries a token only when one is made (create, rotate), and never a digest.

After a write the answering replica reads the store again at once; the others follow
its change notice (gateway.store.key_follower)."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import orjson
from aiohttp import web

from gateway.admin.key_changes import (
    KeyChanges,
    NewKey,
    Rotation,
    create_key,
    edit_key,
    revoke_key,
    rotate_key,
)
from gateway.appkeys import CLIENT_KEYS, RUNTIME
from gateway.config.keys import Budget, ClientKey, Limits
from gateway.config.loader import GatewayConfig
from gateway.decoding import Body, actor, decode
from gateway.errors import NotFound
from gateway.prompts.versions import iso
from gateway.proxy.ingress import read_json
from gateway.store.key_follower import KeyFollower
from gateway.store.keys import KeyRecord

BODY_LIMIT = 64 * 1024


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _at(at: float | None) -> str | None:
    return None if at is None else iso(at)


def _limits(limits: Limits) -> dict[str, int | None]:
    return {"rpm": limits.rpm, "tpm": limits.tpm, "max_concurrent": limits.max_concurrent}


def _budget(budget: Budget | None) -> dict[str, Any] | None:
    return None if budget is None else {"usd": budget.usd, "period": budget.period}


def _common(key: ClientKey, now: float) -> dict[str, Any]:
    return {
        "name": key.name,
        "team": key.team,
        "routes": None if key.routes is None else sorted(key.routes),
        "limits": _limits(key.limits),
        "budget": _budget(key.budget),
        "expires_at": _at(key.expires_at),
        "expired": key.expires_at is not None and key.expires_at <= now,
        "metadata": dict(key.metadata),
    }


def config_key_view(key: ClientKey, now: float) -> dict[str, Any]:
    return {
        **_common(key, now),
        "source": "config",
        "read_only": True,
        "created_at": None,
        "created_by": "config",
        "rotated_at": None,
        "rotated_by": None,
        "rotation_grace_until": None,
        "revoked": False,
        "revoked_at": None,
        "revoked_by": None,
    }


def key_view(record: KeyRecord, now: float) -> dict[str, Any]:
    grace = record.previous_until
    in_grace = record.previous_sha256 is not None and grace is not None and grace > now
    return {
        **_common(record.client_key(record.sha256, record.expires_at), now),
        "source": "store",
        "read_only": False,
        "created_at": _at(record.created_at),
        "created_by": record.created_by,
        "rotated_at": _at(record.rotated_at),
        "rotated_by": record.rotated_by,
        "rotation_grace_until": _at(grace) if in_grace and not record.revoked else None,
        "revoked": record.revoked,
        "revoked_at": _at(record.revoked_at),
        "revoked_by": record.revoked_by,
    }


def _parts(request: web.Request) -> tuple[KeyFollower, GatewayConfig]:
    return request.config_dict[CLIENT_KEYS], request.config_dict[RUNTIME].current.config


async def _body(request: web.Request) -> Any:
    return await read_json(request, BODY_LIMIT) if request.can_read_body else {}


async def _synced(follower: KeyFollower) -> None:
    """This replica serves the change at once; the others follow its notice. The
    write is made: a failed read here only leaves it to the follower."""
    with contextlib.suppress(Exception):
        await follower.refresh()


async def list_keys(request: web.Request) -> web.Response:
    follower, config = _parts(request)
    now = time.time()
    records = await follower.store.all()
    keys = [config_key_view(k, now) for k in config.keys]
    keys += [key_view(records[name], now) for name in sorted(records)]
    return _json({"keys": keys})


async def show_key(request: web.Request) -> web.Response:
    follower, config = _parts(request)
    name, now = request.match_info["name"], time.time()
    for key in config.keys:
        if key.name == name:
            return _json(config_key_view(key, now))
    record = await follower.store.get(name)
    if record is None:
        raise NotFound(f"Unknown key '{name}'.", code="key_not_found")
    return _json(key_view(record, now))


async def create(request: web.Request) -> web.Response:
    follower, config = _parts(request)
    body = decode(await read_json(request, BODY_LIMIT), NewKey)
    made = await create_key(follower.store, config, body, actor(request, body.by))
    await _synced(follower)
    return _json({**key_view(made.record, time.time()), "token": made.token}, 201)


async def rotate(request: web.Request) -> web.Response:
    follower, config = _parts(request)
    body = decode(await _body(request), Rotation)
    name = request.match_info["name"]
    made = await rotate_key(follower.store, config, name, body, actor(request, body.by))
    await _synced(follower)
    return _json({**key_view(made.record, time.time()), "token": made.token})


async def revoke(request: web.Request) -> web.Response:
    follower, config = _parts(request)
    name = request.match_info["name"]
    by = actor(request, decode(await _body(request), Body).by)
    record = await revoke_key(follower.store, config, name, by)
    await _synced(follower)
    return _json(key_view(record, time.time()))


async def edit(request: web.Request) -> web.Response:
    follower, config = _parts(request)
    body = decode(await read_json(request, BODY_LIMIT), KeyChanges)
    actor(request, body.by)
    record = await edit_key(follower.store, config, request.match_info["name"], body)
    await _synced(follower)
    return _json(key_view(record, time.time()))


def add_key_routes(admin: web.Application) -> None:
    admin.router.add_get("/keys", list_keys)
    admin.router.add_post("/keys", create)
    admin.router.add_get("/keys/{name}", show_key)
    admin.router.add_patch("/keys/{name}", edit)
    admin.router.add_delete("/keys/{name}", revoke)
    admin.router.add_post("/keys/{name}/rotate", rotate)
