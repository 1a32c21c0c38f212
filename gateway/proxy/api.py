"""`/v1/*` for applications: read and check the body, plan, hand over to the pipeline."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from gateway.appkeys import GUARDED, PROMPTS, RUNTIME
from gateway.errors import ApiError
from gateway.proxy import completions, health
from gateway.proxy.ingress import authenticate, check_field, new_call, read_json
from gateway.proxy.messages_ingress import create_message
from gateway.proxy.pipeline import complete_chat, embed, serve
from gateway.proxy.responses_ingress import create_response
from gateway.proxy.routing import PROMPT_PREFIX


async def chat_completions(request: web.Request) -> web.StreamResponse:
    runtime = request.app[RUNTIME].current
    key = authenticate(request, runtime)
    server = runtime.config.server
    body = await read_json(request, server.max_body_bytes, server.body_timeout_s)
    # A prompt brings its own messages; a plain route needs the client's.
    is_prompt = str(body.get("model", "")).startswith(PROMPT_PREFIX)
    messages = body.get("messages")
    if type(messages) is not list or not messages:  # the usual case costs one check
        messages = check_field(
            body, "messages", list, "an array of messages", required=not is_prompt
        )
        if not messages and not is_prompt:
            raise ApiError(
                400, "'messages' must not be empty.", param="messages", code="invalid_value"
            )
    stream = body.get("stream")
    if stream is not None and type(stream) is not bool:
        check_field(body, "stream", bool, "true or false")
    if "prompt_variables" in body:
        check_field(body, "prompt_variables", dict, "an object")
    call = new_call(request, runtime, body, key, stream is True)
    if runtime.config.guards:  # any output guard configured: see gateway.guards
        return await request.app[GUARDED](request, call)
    return await serve(request, call, complete_chat)


async def embeddings(request: web.Request) -> web.StreamResponse:
    runtime = request.app[RUNTIME].current
    key = authenticate(request, runtime)
    server = runtime.config.server
    body = await read_json(request, server.max_body_bytes, server.body_timeout_s)
    check_field(body, "input", (str, list), "a string or an array", required=True)
    return await serve(request, new_call(request, runtime, body, key), embed)


async def list_models(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME].current
    key = authenticate(request, runtime)
    prompts = request.app[PROMPTS].current.prompts
    names = [*runtime.config.models, *(PROMPT_PREFIX + p for p in prompts)]
    data = [
        {"id": name, "object": "model", "created": 0, "owned_by": "gateway"}
        for name in names
        if key is None or key.allows(name)
    ]
    return web.json_response({"object": "list", "data": data}, dumps=_dumps)


async def show_model(request: web.Request) -> web.Response:
    """One entry of `/v1/models`: a route or `prompt:NAME` the key may use, else 404."""
    runtime = request.app[RUNTIME].current
    key = authenticate(request, runtime)
    name = request.match_info["model"]
    known = name in runtime.config.models or (
        name.startswith(PROMPT_PREFIX)
        and name.removeprefix(PROMPT_PREFIX) in request.app[PROMPTS].current.prompts
    )
    if not known or (key is not None and not key.allows(name)):
        raise ApiError(
            404,
            f"The model `{name}` does not exist or you do not have access to it.",
            code="model_not_found",
            param="model",
        )
    entry = {"id": name, "object": "model", "created": 0, "owned_by": "gateway"}
    return web.json_response(entry, dumps=_dumps)


async def unknown_v1(request: web.Request) -> web.Response:
    raise ApiError(404, f"Unknown path: {request.method} {request.path}.", code="unknown_url")


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_post("/v1/responses", create_response)
    app.router.add_post("/v1/completions", completions.completions)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model}", show_model)
    app.router.add_post("/v1/messages", create_message)
    app.router.add_route("*", "/v1/{tail:.*}", unknown_v1)
    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/readyz", health.readyz)
