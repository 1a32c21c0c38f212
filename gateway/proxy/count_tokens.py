"""`POST /v1/messages/count_tokens` (Anthropic's token counter, which Claude Code and the
Anthropic SDK call before long requests): asked of the route's Anthropic targets in
order, with the target's model and a prompt's part in front, as `/v1/messages` would
send it. A route with no Anthropic target, or none answering, gets an estimate (about
four characters a token) marked `X-Gateway-Token-Count: estimated`: a count is a
planning hint, and a hint is better than an error."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

from gateway.appkeys import PROMPTS, RUNTIME
from gateway.config.loader import ClientKey
from gateway.errors import ApiError, DomainError, UpstreamError, api_error
from gateway.prompts.versions import render_messages
from gateway.providers.messages_errors import reshaped
from gateway.providers.messages_native import native_body, native_request
from gateway.proxy.ingress import authenticate, check_field, read_json
from gateway.proxy.pipeline import as_sent, exchange
from gateway.proxy.routing import PROMPT_PREFIX, RoutePlan, plan_model_route, plan_prompt_route
from gateway.proxy.runtime import Runtime

COUNT_TOKENS_PATH = "/v1/messages/count_tokens"
_NOT_COUNTED = ("max_tokens", "stream", "temperature", "top_p", "top_k", "stop_sequences")
_CHARS_PER_TOKEN = 4
_TIMEOUT_S = 10.0


async def count_tokens(request: web.Request) -> web.Response:
    try:
        return await _count(request)
    except (ApiError, DomainError) as caught:
        error = caught if isinstance(caught, ApiError) else api_error(caught)
        return web.Response(
            status=error.status,
            body=reshaped(error.status, error.body()),
            content_type="application/json",
            headers=error.headers,
        )


async def _count(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME].current
    key = authenticate(request, runtime)
    server = runtime.config.server
    body = await read_json(request, server.max_body_bytes, server.body_timeout_s)
    model = check_field(body, "model", str, "a string", required=True)
    is_prompt = model.startswith(PROMPT_PREFIX)
    check_field(body, "messages", list, "an array of messages", required=not is_prompt)
    plan, prompt_messages, prompt_params = _plan(request, runtime, body, key)
    native = native_body(body, prompt_messages, prompt_params)
    for name in _NOT_COUNTED:
        native.pop(name, None)
    headers = {"X-Gateway-Route": plan.route.name}
    for target in plan.targets:
        provider = runtime.providers.get(target.provider)
        if provider is None or provider.config.type != "anthropic":
            continue
        try:
            payload = orjson.dumps({**native, "model": target.model})
            sent = native_request(
                provider.config, payload, False, request.headers, COUNT_TOKENS_PATH
            )
            raw, _, back = await exchange(provider, sent, _TIMEOUT_S, as_sent)
        except UpstreamError as error:
            if error.reason == "client_error":  # the request's fault: the same everywhere
                raise ApiError(error.status or 400, str(error), code="invalid_request") from None
            continue  # this target is down: the next, or the estimate
        headers |= {**back, "X-Gateway-Provider": target.provider, "X-Gateway-Model": target.model}
        return web.Response(body=raw, content_type="application/json", headers=headers)
    headers["X-Gateway-Token-Count"] = "estimated"
    estimate = {"input_tokens": estimate_tokens(native)}
    return web.Response(
        body=orjson.dumps(estimate), content_type="application/json", headers=headers
    )


def _plan(
    request: web.Request, runtime: Runtime, body: Mapping[str, Any], key: ClientKey | None
) -> tuple[RoutePlan, list[Any], Mapping[str, Any]]:
    model = body["model"]
    if not model.startswith(PROMPT_PREFIX):
        return plan_model_route(runtime, model, key), [], {}
    plan, version = plan_prompt_route(runtime, request.app[PROMPTS].current, model, key, None)
    variables = body.get("prompt_variables") or {}
    return plan, render_messages(version.content, variables), version.content.params


def estimate_tokens(native: Mapping[str, Any]) -> int:
    """About four characters a token over the text the model reads (system, messages,
    tools' schemas), and a few tokens a message for the roles."""
    chars = len(_text(native.get("system"))) + len(_text(native.get("tools")))
    messages = native.get("messages") or []
    for message in messages:
        chars += len(_text(message.get("content") if isinstance(message, dict) else message))
    return math.ceil(chars / _CHARS_PER_TOKEN) + 3 * len(messages)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(
            b["text"] if isinstance(b, dict) and isinstance(b.get("text"), str) else _text_of(b)
            for b in value
        )
    return _text_of(value)


def _text_of(value: Any) -> str:
    return orjson.dumps(value).decode()
