"""`POST /admin/prompts/{name}/playground {versions, variables?, messages?, params?}`:
one input sent to each of a few versions of a prompt at once, side by side.

Each version is called pinned, through the gateway's own pipeline under the `TEST`
policy (gateway.proxy.own_calls): role="test" in the metrics, never captured, never in
rollout statistics or feedback. A version may be named by a label. Operators and
authors may run it (the route table lets every identity in; the handler checks)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import msgspec
from aiohttp import web

from gateway.admin.identity import caller, insufficient_role
from gateway.admin.prompts import ADMIN_BODY_LIMIT, json_answer, prompts_of
from gateway.decoding import Body, decode
from gateway.errors import Invalid
from gateway.proxy.call import TEST
from gateway.proxy.ingress import read_json
from gateway.proxy.own_calls import call_pinned
from gateway.store.base import not_found, version_not_found
from gateway.telemetry.recorder import RequestRecord

MAX_VERSIONS = 4
PLAYGROUND_ROLES = ("operator", "author")
Message = dict[str, Any]


class PlaygroundBody(Body, frozen=True, forbid_unknown_fields=True):
    versions: Annotated[list[str], msgspec.Meta(min_length=1, max_length=MAX_VERSIONS)]
    variables: dict[str, Any] = msgspec.field(default_factory=dict)
    messages: list[Message] = msgspec.field(default_factory=list)
    params: dict[str, Any] = msgspec.field(default_factory=dict)


def add_playground_routes(admin: web.Application) -> None:
    admin.router.add_post("/prompts/{name}/playground", playground)


async def playground(request: web.Request) -> web.Response:
    identity = caller(request)
    if not any(identity.has(role) for role in PLAYGROUND_ROLES):
        raise insufficient_role(identity, " or ".join(PLAYGROUND_ROLES))
    name = request.match_info["name"]
    body = decode(await read_json(request, ADMIN_BODY_LIMIT), PlaygroundBody)
    state = await prompts_of(request).store.get_prompt(name)
    if state is None:
        raise not_found(name)
    versions = []
    for given in body.versions:
        version = state.labels.get(given, given)
        if version not in state.versions:
            raise version_not_found(name, given)
        versions.append(version)
    if len(set(versions)) != len(versions):
        raise Invalid("Each version may be named once.", param="versions")
    sent: dict[str, Any] = {**body.params, "stream": False}
    if body.variables:
        sent["prompt_variables"] = body.variables
    if body.messages:
        sent["messages"] = body.messages
    app = request.match_info.apps[0]  # the gateway's own app, not the admin sub-app
    records = await asyncio.gather(*(call_pinned(app, name, v, sent, TEST) for v in versions))
    return json_answer(
        {
            "prompt": name,
            "results": [result(given, r) for given, r in zip(body.versions, records, strict=True)],
        }
    )


def result(asked: str, record: RequestRecord) -> dict[str, Any]:
    usage = record.usage
    return {
        "asked": asked,
        "version": record.version,
        "request_id": record.request_id,
        "status": record.status,
        "error": record.error or None,
        "answer": record.answer,
        "provider": record.provider or None,
        "model": record.model or None,
        "latency_ms": round(record.latency_s * 1000, 3),
        "ttft_ms": None if record.ttft_s is None else round(record.ttft_s * 1000, 3),
        "usage": None
        if usage is None
        else {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens},
        "cost_usd": record.cost_usd,
    }
