"""`POST /v1/responses` (the OpenAI Responses API): the body read and checked, the
conversation of `previous_response_id` taken from the store, the request planned as
a chat call (so prompts, failover, shadow and capture work as for chat), then served
by `ResponsesExchange`, natively or through chat, target by target."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.appkeys import METRICS, RESPONSES, RUNTIME
from gateway.errors import ApiError
from gateway.providers.responses_chat import chat_body, input_items
from gateway.proxy.ingress import authenticate, check_field, new_call, read_json
from gateway.proxy.pipeline import serve
from gateway.proxy.responses_exchange import ResponsesExchange
from gateway.proxy.routing import PROMPT_PREFIX
from gateway.store.errors import StoreUnavailable
from gateway.store.responses import ResponseStore

# Field → (type, what the error says it must be).
_FIELDS: dict[str, tuple[type | tuple[type, ...], str]] = {
    "instructions": (str, "a string"),
    "tools": (list, "an array"),
    "tool_choice": ((str, dict), "a string or an object"),
    "text": (dict, "an object"),
    "max_output_tokens": (int, "an integer"),
    "temperature": ((int, float), "a number"),
    "top_p": ((int, float), "a number"),
    "metadata": (dict, "an object"),
    "user": (str, "a string"),
    "safety_identifier": (str, "a string"),
    "stream": (bool, "true or false"),
    "store": (bool, "true or false"),
    "parallel_tool_calls": (bool, "true or false"),
    "previous_response_id": (str, "a string"),
    "prompt_variables": (dict, "an object"),
    "reasoning": (dict, "an object"),
}


async def create_response(request: web.Request) -> web.StreamResponse:
    runtime = request.app[RUNTIME].current
    key = authenticate(request, runtime)
    server = runtime.config.server
    body = await read_json(request, server.max_body_bytes, server.body_timeout_s)
    for name, (kind, what) in _FIELDS.items():
        if name in body:
            check_field(body, name, kind, what)
    is_prompt = str(body.get("model", "")).startswith(PROMPT_PREFIX)
    given = input_items(body.get("input", []))
    if not given and not is_prompt:
        check_field(body, "input", (str, list), "a string or an array of items", required=True)
        raise ApiError(400, "'input' must not be empty.", param="input", code="invalid_value")
    store = request.app[RESPONSES]
    key_name = key.name if key is not None else ""
    history = await _conversation(store, body.get("previous_response_id"), key_name)
    chat, untranslatable = chat_body(body, history)
    call = new_call(request, runtime, chat, key, body.get("stream") is True)
    keep = store if body.get("store") is not False else None
    exchange = ResponsesExchange(body, [*history, *given], untranslatable, keep, key_name)
    response = await serve(request, call, exchange.complete, exchange.open)
    status = response.status
    if not call.stream and status == 200:
        await exchange.kept()
    elif call.stream and status == 200:
        status = exchange.status or 499  # neither ended well nor failed: the client left
    mode = exchange.mode or "none"
    metrics = request.app[METRICS]
    metrics.api_requests.labels("responses", call.plan.route.name, mode, str(status)).inc()
    return response


async def _conversation(
    store: ResponseStore, previous: str | None, key: str
) -> list[dict[str, Any]]:
    """The items before this request: the kept response's input and output. Another
    key's response is as unknown as an expired one."""
    if previous is None:
        return []
    try:
        record = await store.get(previous)
    except StoreUnavailable:
        raise ApiError(
            503,
            "The store of previous responses cannot be reached; try again shortly.",
            type_="api_error",
            code="store_unavailable",
        ) from None
    if record is None or record.get("key") != key:
        raise ApiError(
            400,
            f"Previous response with id '{previous}' not found.",
            param="previous_response_id",
            code="previous_response_not_found",
        )
    return [*record.get("input", []), *record.get("output", [])]
