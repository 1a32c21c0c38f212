"""`/v1/*` for applications: authenticate, read and check the body, plan the route,
and hand over to the pipeline. Also the health endpoints and the error middleware."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import StreamReader, web

from gateway.appkeys import (
    CALL,
    LIFECYCLE,
    METRICS,
    OBSERVERS,
    OUTCOME,
    PROMPTS,
    RUNTIME,
    TELEMETRY,
)
from gateway.config.loader import ClientKey
from gateway.errors import ApiError, error_body
from gateway.prompts.versions import render_messages
from gateway.proxy import pipeline
from gateway.proxy.observers import notify_finish, notify_start
from gateway.proxy.routing import PROMPT_PREFIX, RoutePlan, plan_model_route, plan_prompt_route
from gateway.proxy.runtime import Runtime
from gateway.telemetry.recorder import Outcome

log = logging.getLogger("gateway.api")
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
GATEWAY_FIELDS = ("prompt_variables",)  # ours: never sent upstream

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json_error(error: ApiError) -> web.Response:
    return web.Response(
        status=error.status,
        body=error.body(),
        content_type="application/json",
        headers=error.headers,
    )


@web.middleware
async def gateway_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id, in-flight gauge, errors in OpenAI's shape (never a traceback), and
    one telemetry record per API request."""
    app = request.app
    telemetry = app[TELEMETRY]
    given = request.headers.get("X-Request-Id", "")
    request_id = given if given and _SANE_REQUEST_ID.match(given) else telemetry.new_request_id()
    answered: web.StreamResponse
    if not request.path.startswith("/v1/"):
        # Health, metrics and admin: shaped errors, but no request metrics of their own.
        try:
            answered = await handler(request)
        except ConnectionResetError:
            raise
        except Exception as exc:  # CancelledError is no Exception: it goes on up
            answered = _error_answer(request, exc)
        if not answered.prepared:
            answered.headers["X-Request-Id"] = request_id
        return answered
    outcome = Outcome(request_id, method=request.method, path=request.path)
    request[OUTCOME] = outcome
    metrics = app[METRICS]
    metrics.in_flight += 1
    status = 0
    try:
        answered = await handler(request)
        status = answered.status
    except ConnectionResetError:
        raise
    except Exception as exc:
        answered = _error_answer(request, exc)
        status = answered.status
    except asyncio.CancelledError:
        outcome.status = 499  # the client went away
        outcome.error = outcome.error or "client_disconnected"
        raise
    finally:
        metrics.in_flight -= 1
        if outcome.status == 0:
            outcome.status = status
        telemetry.record(outcome, app[RUNTIME].current.config)
        call = request.get(CALL)
        if call is not None:
            notify_finish(app[OBSERVERS], call)
    if not answered.prepared:
        answered.headers["X-Request-Id"] = request_id
    return answered


def _error_answer(request: web.Request, exc: Exception) -> web.Response:
    """An error the handler raised, in OpenAI's shape and never with a traceback."""
    if isinstance(exc, ApiError):
        return _json_error(exc)
    if isinstance(exc, web.HTTPException):
        message = "Unknown path." if exc.status == 404 else exc.reason
        code = "unknown_url" if exc.status == 404 else None
        return _json_error(
            ApiError(exc.status, f"{message} ({request.method} {request.path})", code=code)
        )
    log.exception("unexpected error serving %s %s", request.method, request.path)
    return web.Response(
        status=500,
        content_type="application/json",
        body=error_body("The gateway failed to serve this request.", "api_error", "internal_error"),
    )


def authenticate(request: web.Request, runtime: Runtime) -> ClientKey | None:
    """The client key on the request; None for an anonymous caller where allowed."""
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header[:7].lower() == "bearer " else ""
    if token:
        key = runtime.keys.find(token)
        if key is not None:
            request[OUTCOME].key = key.name
            return key
    if runtime.config.server.allow_unauthenticated:
        return None
    message = (
        "Incorrect API key provided."
        if token
        else "Missing API key: send Authorization: Bearer <key>."
    )
    raise ApiError(401, message, code="invalid_api_key")


async def read_json(request: web.Request, limit: int, timeout_s: float = 30.0) -> dict[str, Any]:
    """The body as a JSON object; 413 past `limit` bytes, read no further; 408 when it
    does not arrive within `timeout_s` (a client trickling bytes holds nothing for long)."""
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    content = request.content
    if content.is_eof():
        body: bytes | bytearray = content.read_nowait(-1)  # all here already: no timer
        if len(body) > limit:
            raise _too_large(limit)
    else:
        body = await _read_body(content, limit, timeout_s)
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"The body is not valid JSON: {exc}.", code="invalid_json") from None
    if not isinstance(data, dict):
        raise ApiError(400, "The body must be a JSON object.", code="invalid_json")
    return data


async def _read_body(content: StreamReader, limit: int, timeout_s: float) -> bytearray:
    body = bytearray()
    try:
        async with asyncio.timeout(timeout_s):
            while chunk := await content.readany():
                body += chunk
                if len(body) > limit:
                    raise _too_large(limit)
    except TimeoutError:
        raise ApiError(
            408,
            f"The request body did not arrive within {timeout_s:g}s.",
            code="request_timeout",
            headers={"Connection": "close"},
        ) from None
    return body


def _too_large(limit: int) -> ApiError:
    return ApiError(413, f"Request body is larger than {limit} bytes.", code="request_too_large")


def _field(
    body: dict[str, Any],
    name: str,
    kind: type | tuple[type, ...],
    what: str,
    required: bool = False,
) -> Any:
    value = body.get(name)
    if value is None:
        if required:
            raise ApiError(
                400,
                f"Missing required parameter: '{name}'.",
                param=name,
                code="missing_required_parameter",
            )
        return None
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ApiError(400, f"'{name}' must be {what}.", param=name, code="invalid_type")
    return value


def _new_call(
    request: web.Request,
    runtime: Runtime,
    body: dict[str, Any],
    key: ClientKey | None,
    stream: bool = False,
) -> pipeline.Call:
    """Plan the route and build the body to send: for a prompt, its version's messages
    (rendered) before the client's, and its params as defaults the client may override."""
    model = _field(body, "model", str, "a string", required=True)
    # The adapters copy what they change: only our own fields need taking out here.
    upstream_body = (
        {k: v for k, v in body.items() if k not in GATEWAY_FIELDS}
        if any(field in body for field in GATEWAY_FIELDS)
        else body
    )
    plan: RoutePlan
    variables: dict[str, Any] = {}
    if model.startswith(PROMPT_PREFIX):
        sticky = request.headers.get("X-Gateway-Sticky-Key") or body.get("user")
        plan, version = plan_prompt_route(
            runtime,
            request.app[PROMPTS].current,
            model,
            key,
            sticky if isinstance(sticky, str) else None,
        )
        variables = body.get("prompt_variables") or {}
        messages = render_messages(version.content, variables)
        upstream_body = {
            **version.content.params,
            **upstream_body,
            "messages": [*messages, *(body.get("messages") or [])],
        }
    else:
        plan = plan_model_route(runtime, model, key)
    outcome = request[OUTCOME]
    outcome.route = plan.route.name
    outcome.prompt, outcome.version = plan.prompt, plan.version
    outcome.stream = stream
    deadline = asyncio.get_running_loop().time() + runtime.config.server.request_timeout_s
    call = pipeline.Call(
        runtime,
        plan,
        upstream_body,
        outcome,
        request.app[METRICS],
        deadline,
        stream=stream,
        variables=variables,
        no_capture=request.headers.get("X-Gateway-No-Capture") == "1",
    )
    request[CALL] = call
    notify_start(request.app[OBSERVERS], call)
    return call


async def chat_completions(request: web.Request) -> web.StreamResponse:
    runtime = request.app[RUNTIME].current
    key = authenticate(request, runtime)
    server = runtime.config.server
    body = await read_json(request, server.max_body_bytes, server.body_timeout_s)
    # A prompt brings its own messages; a plain route needs the client's.
    is_prompt = str(body.get("model", "")).startswith(PROMPT_PREFIX)
    messages = _field(body, "messages", list, "an array of messages", required=not is_prompt)
    if not messages and not is_prompt:
        raise ApiError(400, "'messages' must not be empty.", param="messages", code="invalid_value")
    stream = bool(_field(body, "stream", bool, "true or false"))
    _field(body, "prompt_variables", dict, "an object")
    call = _new_call(request, runtime, body, key, stream)
    return await pipeline.chat(request, call, stream)


async def embeddings(request: web.Request) -> web.StreamResponse:
    runtime = request.app[RUNTIME].current
    key = authenticate(request, runtime)
    server = runtime.config.server
    body = await read_json(request, server.max_body_bytes, server.body_timeout_s)
    _field(body, "input", (str, list), "a string or an array", required=True)
    return await pipeline.embeddings(_new_call(request, runtime, body, key))


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


async def unknown_v1(request: web.Request) -> web.Response:
    raise ApiError(404, f"Unknown path: {request.method} {request.path}.", code="unknown_url")


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME].current
    holder = request.app[PROMPTS]
    store = {
        "kind": holder.store.kind,
        "up": holder.store_up,
        "synced": holder.synced,
        "snapshot_age_s": round(time.time() - holder.current.loaded_at, 3)
        if holder.synced
        else None,
        "error": holder.last_error or None,
    }
    # Ready once the store has been read; a store that goes down later is reported here
    # and in gateway_store_up, while the last snapshot keeps serving.
    status = 200 if holder.synced and not request.app[LIFECYCLE].draining else 503
    return web.json_response(
        {
            "status": "ready"
            if status == 200
            else ("draining" if request.app[LIFECYCLE].draining else "starting"),
            "config": runtime.config.hash,
            "store": store,
        },
        status=status,
    )


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_get("/v1/models", list_models)
    app.router.add_route("*", "/v1/{tail:.*}", unknown_v1)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
