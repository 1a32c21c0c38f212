"""What every `/v1/` request goes through before the engine: who is asking, the body
read and checked, and the plan (route, targets, prompt version) made into a `Call`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson
from aiohttp import StreamReader, web

from gateway.appkeys import INGRESS, LIMITER, OBSERVERS, PROMPTS
from gateway.config.loader import ClientKey
from gateway.errors import ApiError
from gateway.limits.limiter import Ticket
from gateway.prompts.versions import PromptVersion, iso, render_messages
from gateway.proxy.call import Call, trace_context
from gateway.proxy.observers import notify_start
from gateway.proxy.routing import PROMPT_PREFIX, RoutePlan, plan_model_route, plan_prompt_route
from gateway.proxy.runtime import Runtime

if TYPE_CHECKING:
    from gateway.telemetry.tracing import CallTrace  # loaded only when tracing is on

GATEWAY_FIELDS = frozenset({"prompt_variables"})  # ours: never sent upstream
USER_HEADER = "X-Gateway-User"  # the end user, when the body's `user` does not say
MAX_USER_CHARS = 256
# Deeper bodies are refused: the JSON encoder stops at 254 levels, and no API needs many.
MAX_JSON_DEPTH = 128


@dataclass(slots=True)
class Ingress:
    """A `/v1/` request before it is planned: what the record of a refused one needs."""

    request_id: str
    started: float  # perf_counter()
    key: str = ""  # the client key's name, once known
    planned: bool = False  # a `Call` was made: it records the request itself
    span: CallTrace | None = None  # tracing on: the request's server span

    def age_s(self) -> float:
        return time.perf_counter() - self.started


def authenticate(request: web.Request, runtime: Runtime) -> ClientKey | None:
    """The client key on the request; None for an anonymous caller where allowed."""
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header[:7].lower() == "bearer " else ""
    if not token:  # Anthropic's SDK and tools send theirs as x-api-key
        token = request.headers.get("x-api-key", "").strip()
    if token:
        key = runtime.keys.find(token)
        if key is not None:
            if key.expires_at is not None and key.expires_at <= time.time():
                raise expired(key)
            request[INGRESS].key = key.name
            return key
    if runtime.config.server.allow_unauthenticated:
        return None
    message = (
        "Incorrect API key provided."
        if token
        else "Missing API key: send Authorization: Bearer <key> (or x-api-key: <key>)."
    )
    raise ApiError(401, message, code="invalid_api_key")


def expired(key: ClientKey) -> ApiError:
    """An expired key, or a rotated key's old token past its grace period."""
    return ApiError(
        401,
        f"This API key expired at {iso(key.expires_at or 0.0)}.",
        code="expired_api_key",
    )


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
    # Fewer brackets than the limit cannot nest past it: the usual body costs two counts.
    if body.count(b"[") + body.count(b"{") > MAX_JSON_DEPTH and _depth(data) > MAX_JSON_DEPTH:
        raise ApiError(
            400,
            f"The body nests deeper than {MAX_JSON_DEPTH} levels.",
            code="invalid_json",
        )
    return data


def _depth(value: Any) -> int:
    """How deep arrays and objects nest in `value`, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        deepest = max(deepest, depth)
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return deepest


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


def check_field(
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


class Prompted(NamedTuple):
    body: dict[str, Any]  # to send upstream
    variables: Mapping[str, Any]
    messages: list[Any]  # the version's, rendered
    params: Mapping[str, Any]  # the version's


PromptedAs = Callable[[PromptVersion, Mapping[str, Any], Mapping[str, Any]], Prompted]


def new_call(
    request: web.Request,
    runtime: Runtime,
    body: dict[str, Any],
    key: ClientKey | None,
    stream: bool = False,
    prompted_as: PromptedAs | None = None,
) -> Call:
    """Plan the route and build the body to send; the observers see the call first.
    `prompted_as`: how a prompt's version joins the body (chat messages by default)."""
    model = body.get("model")
    if type(model) is not str:  # the usual case costs one check
        model = check_field(body, "model", str, "a string", required=True)
    # The adapters copy what they change: only our own fields need taking out here.
    upstream_body = (
        {k: v for k, v in body.items() if k not in GATEWAY_FIELDS}
        if not GATEWAY_FIELDS.isdisjoint(body)
        else body
    )
    plan, prompted = _plan(request, runtime, model, body, upstream_body, key, prompted_as)
    if prompted is not None:
        upstream_body = prompted.body
    if runtime.config.guards and request.path in UNGUARDED_PATHS:
        refuse_if_guarded(runtime, plan, request.path)
    ingress = request[INGRESS]
    options = body.get("stream_options")
    user = request.headers.get(USER_HEADER) or body.get("user")
    call = Call(
        ingress.request_id,
        ingress.started,
        request.path,
        runtime,
        plan,
        client_body=body,
        body=upstream_body,
        deadline=asyncio.get_running_loop().time() + runtime.config.server.request_timeout_s,
        stream=stream,
        include_usage=isinstance(options, dict) and options.get("include_usage") is True,
        key=ingress.key,
        no_capture=request.headers.get("X-Gateway-No-Capture") == "1",
        trace=trace_context(request.headers),
        user=user[:MAX_USER_CHARS] if type(user) is str else "",
        team=key.team or "" if key is not None else "",
        span=ingress.span,
    )
    if key is not None and key.limited:  # a key without limits costs this one check
        call.ticket = admit(request, runtime, key, upstream_body, plan)
    if prompted is not None:
        call.variables, call.prompt_messages = prompted.variables, prompted.messages
        call.prompt_params = prompted.params
    notify_start(request.app[OBSERVERS], call)
    ingress.planned = True  # from here on the call records itself
    return call


# Answers that come out in another API's shape: output guards check chat completions.
UNGUARDED_PATHS = frozenset({"/v1/responses", "/v1/messages", "/v1/completions"})


def refuse_if_guarded(runtime: Runtime, plan: RoutePlan, path: str) -> None:
    """A route or prompt with output guards answers only where they run: a held or
    blocked answer must not come out through another door."""
    prompt = runtime.config.prompts.get(plan.prompt) if plan.prompt else None
    if plan.route.guards or (prompt is not None and prompt.guards):
        raise ApiError(
            400,
            f"This route checks its answers with output guards, which {path} does not "
            "run: use /v1/chat/completions.",
            param="model",
            code="guarded_route",
        )


def _plan(
    request: web.Request,
    runtime: Runtime,
    model: str,
    body: dict[str, Any],
    upstream_body: Mapping[str, Any],
    key: ClientKey | None,
    prompted_as: PromptedAs | None,
) -> tuple[RoutePlan, Prompted | None]:
    """The route's plan, and a prompt's part of the body where `model` names one."""
    if not model.startswith(PROMPT_PREFIX):
        return plan_model_route(runtime, model, key), None
    sticky = request.headers.get("X-Gateway-Sticky-Key") or body.get("user")
    plan, version = plan_prompt_route(
        runtime,
        request.app[PROMPTS].current,
        model,
        key,
        sticky if isinstance(sticky, str) else None,
    )
    return plan, (prompted_as or prompted_body)(version, body, upstream_body)


def admit(
    request: web.Request,
    runtime: Runtime,
    key: ClientKey,
    body: Mapping[str, Any],
    plan: RoutePlan,
) -> Ticket | None:
    """A limited key's ticket, or its 429 (before any observer sees the call)."""
    config = runtime.config

    def priced() -> bool:
        return all(t.model in config.pricing for t in plan.targets)

    return request.app[LIMITER].admit(key, config, body, priced)


def prompted_body(
    version: PromptVersion, body: Mapping[str, Any], upstream_body: Mapping[str, Any]
) -> Prompted:
    """A prompt's version's messages (rendered) before the client's, and its params as
    defaults the client may override."""
    variables = body.get("prompt_variables") or {}
    messages = render_messages(version.content, variables)
    params = version.content.params
    sent = {**params, **upstream_body, "messages": [*messages, *(body.get("messages") or [])]}
    return Prompted(sent, variables, messages, params)
