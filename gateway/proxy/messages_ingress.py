"""`POST /v1/messages` (the Anthropic Messages API), for the Anthropic SDK and the tools
set up with `ANTHROPIC_BASE_URL`: the body read and checked, planned as a chat call
(its chat form: so prompts, failover, shadow, capture and rollouts work as for chat),
then served by `MessagesExchange`, natively or through chat, target by target.
Every error the client sees is in Anthropic's shape."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.appkeys import METRICS, RUNTIME
from gateway.errors import ApiError, DomainError, api_error
from gateway.providers.messages_chat import chat_form
from gateway.providers.messages_errors import reshaped
from gateway.proxy.ingress import authenticate, check_field, new_call, read_json
from gateway.proxy.messages_exchange import MessagesExchange
from gateway.proxy.pipeline import serve
from gateway.proxy.routing import PROMPT_PREFIX

# Field → (type, what the error says it must be).
_FIELDS: dict[str, tuple[type | tuple[type, ...], str]] = {
    "system": ((str, list), "a string or an array of text blocks"),
    "max_tokens": (int, "an integer"),
    "temperature": ((int, float), "a number"),
    "top_p": ((int, float), "a number"),
    "top_k": (int, "an integer"),
    "stop_sequences": (list, "an array of strings"),
    "stream": (bool, "true or false"),
    "metadata": (dict, "an object"),
    "tools": (list, "an array of tools"),
    "tool_choice": (dict, "an object"),
    "prompt_variables": (dict, "an object"),
}
_ROLES = ("user", "assistant")


async def create_message(request: web.Request) -> web.StreamResponse:
    try:
        response = await _create(request)
    except ApiError as error:
        return _error_response(error)
    except DomainError as error:  # e.g. a prompt variable missing
        return _error_response(api_error(error))
    if response.status >= 400 and isinstance(response, web.Response) and not response.prepared:
        body = response.body
        response.body = reshaped(response.status, body if isinstance(body, bytes) else b"")
    return response


async def _create(request: web.Request) -> web.StreamResponse:
    runtime = request.app[RUNTIME].current
    key = authenticate(request, runtime)
    server = runtime.config.server
    body = await read_json(request, server.max_body_bytes, server.body_timeout_s)
    check_body(body)
    form = chat_form(body)
    call = new_call(request, runtime, form.body, key, body.get("stream") is True)
    exchange = MessagesExchange(body, request.headers, form.untranslatable)
    response = await serve(request, call, exchange.complete, exchange.open)
    status = response.status
    if call.stream and status == 200:
        status = exchange.status or 499  # neither ended well nor failed: the client left
    metrics = request.app[METRICS]
    mode = exchange.mode or "none"
    metrics.api_requests.labels("messages", call.plan.route.name, mode, str(status)).inc()
    return response


def check_body(body: dict[str, Any]) -> None:
    """The fields a Messages request must have, of the types the API gives them; a
    prompt brings its own messages and may bring `max_tokens`."""
    model = check_field(body, "model", str, "a string", required=True)
    is_prompt = model.startswith(PROMPT_PREFIX)
    for name, (kind, what) in _FIELDS.items():
        if name in body:
            check_field(body, name, kind, what)
    messages = check_field(body, "messages", list, "an array of messages", required=not is_prompt)
    if not messages and not is_prompt:
        raise ApiError(400, "messages: at least one message is required.", param="messages")
    for index, message in enumerate(messages or ()):
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            raise ApiError(
                400,
                f"messages.{index}: each message needs a role of user or assistant.",
                param=f"messages.{index}.role",
            )
        if not isinstance(message.get("content"), (str, list)):
            raise ApiError(
                400,
                f"messages.{index}.content: must be a string or an array of content blocks.",
                param=f"messages.{index}.content",
            )
    max_tokens = body.get("max_tokens")
    if max_tokens is None and not is_prompt:
        raise ApiError(400, "max_tokens: Field required.", param="max_tokens")
    if max_tokens is not None and max_tokens < 1:
        raise ApiError(400, "max_tokens: must be at least 1.", param="max_tokens")
    stops = body.get("stop_sequences")
    if stops is not None and not all(isinstance(s, str) for s in stops):
        raise ApiError(400, "stop_sequences: must be strings.", param="stop_sequences")


def _error_response(error: ApiError) -> web.Response:
    return web.Response(
        status=error.status,
        body=reshaped(error.status, error.body()),
        content_type="application/json",
        headers=error.headers,
    )
