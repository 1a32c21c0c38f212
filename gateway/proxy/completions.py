"""`POST /v1/completions` (legacy completions: `prompt`, a string or a list): passed
through to the targets that have the endpoint, through the same engine as chat
(failover, retries, breakers, usage and cost, capture, shadow); a target without it is
skipped as `unsupported`, and a route with none left answers 400 naming the endpoint.
`prompt:NAME` works here too: the version's text goes before the client's prompt."""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import Any

from aiohttp import web

from gateway.appkeys import RUNTIME
from gateway.config.routes import Target
from gateway.errors import ApiError
from gateway.prompts.versions import PromptVersion, render_messages
from gateway.providers.completions import (
    CompletionStream,
    completions_request,
    completions_response,
)
from gateway.proxy.call import Call
from gateway.proxy.ingress import Prompted, authenticate, check_field, new_call, read_json
from gateway.proxy.pipeline import Completed, exchange, serve
from gateway.proxy.relay import StreamStart, open_upstream
from gateway.proxy.routing import PROMPT_PREFIX
from gateway.proxy.runtime import ProviderRuntime

COMPLETIONS_PATH = "/v1/completions"


async def completions(request: web.Request) -> web.StreamResponse:
    runtime = request.app[RUNTIME].current
    key = authenticate(request, runtime)
    server = runtime.config.server
    body = await read_json(request, server.max_body_bytes, server.body_timeout_s)
    check_field(body, "prompt", (str, list), "a string or an array", required=True)
    stream = check_field(body, "stream", bool, "true or false")
    model = check_field(body, "model", str, "a string", required=True)
    prompted_as = prompted_text if model.startswith(PROMPT_PREFIX) else None
    call = new_call(request, runtime, body, key, stream is True, prompted_as)
    return await serve(request, call, complete_text, open_text_stream)


def prompted_text(
    version: PromptVersion, body: Mapping[str, Any], upstream_body: Mapping[str, Any]
) -> Prompted:
    """A prompt on the completions endpoint: its version's messages, rendered, are the
    text before the client's `prompt` (each one of a list); its params are defaults."""
    if "messages" in body:
        raise ApiError(
            400,
            "/v1/completions takes 'prompt', not 'messages'.",
            param="messages",
            code="invalid_value",
        )
    variables = body.get("prompt_variables") or {}
    messages = render_messages(version.content, variables)
    prefix = "".join(f"{m['content']}\n\n" for m in messages if isinstance(m.get("content"), str))
    client = upstream_body["prompt"]
    if isinstance(client, str):
        text: str | list[str] = prefix + client
    elif all(isinstance(p, str) for p in client):
        text = [prefix + p for p in client]
    else:  # token arrays: the version's text cannot be joined to them
        raise ApiError(
            400,
            "A managed prompt takes text: 'prompt' must be a string or an array of strings.",
            param="prompt",
            code="invalid_type",
        )
    return Prompted(
        {**version.content.params, **upstream_body, "prompt": text},
        variables,
        messages,
        version.content.params,
    )


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
