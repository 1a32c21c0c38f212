"""`POST /v1/completions` (legacy completions: `prompt`, a string or a list): passed
through to the targets that have the endpoint, through the same engine as chat
(failover, retries, breakers, usage and cost); a target without it is skipped as
`unsupported`, and a route with none left answers 400 naming the endpoint."""

from __future__ import annotations

from collections.abc import Awaitable

from aiohttp import web

from gateway.appkeys import RUNTIME
from gateway.config.routes import Target
from gateway.errors import ApiError
from gateway.providers.completions import (
    CompletionStream,
    completions_request,
    completions_response,
)
from gateway.proxy.call import Call
from gateway.proxy.ingress import authenticate, check_field, new_call, read_json
from gateway.proxy.pipeline import Completed, exchange, serve
from gateway.proxy.relay import StreamStart, open_upstream
from gateway.proxy.routing import PROMPT_PREFIX
from gateway.proxy.runtime import ProviderRuntime


async def completions(request: web.Request) -> web.StreamResponse:
    runtime = request.app[RUNTIME].current
    key = authenticate(request, runtime)
    server = runtime.config.server
    body = await read_json(request, server.max_body_bytes, server.body_timeout_s)
    check_field(body, "prompt", (str, list), "a string or an array", required=True)
    stream = check_field(body, "stream", bool, "true or false")
    model = check_field(body, "model", str, "a string", required=True)
    if model.startswith(PROMPT_PREFIX):
        raise ApiError(
            400,
            "Managed prompts are chat messages: use them with /v1/chat/completions.",
            param="model",
            code="invalid_value",
        )
    call = new_call(request, runtime, body, key, stream is True)
    return await serve(request, call, complete_text, open_text_stream)


def complete_text(
    call: Call, provider: ProviderRuntime, target: Target, timeout_s: float
) -> Awaitable[Completed]:
    """An engine attempt: one non-streamed completion."""
    request = completions_request(provider.adapter, provider.config, target.model, call.body, False)
    return exchange(provider, call.stamp(request), timeout_s, completions_response)


def open_text_stream(
    call: Call, provider: ProviderRuntime, target: Target, timeout_s: float
) -> Awaitable[StreamStart]:
    """An engine attempt: a completion stream up to its first token."""
    request = completions_request(provider.adapter, provider.config, target.model, call.body, True)
    translator = CompletionStream(call.include_usage)
    return open_upstream(call, provider, call.stamp(request), translator, timeout_s)
