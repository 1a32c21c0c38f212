"""Anthropic Messages API: OpenAI chat completions translated both ways.

Requests: system and developer messages become the top-level `system`, tool calls and
tool results (legacy function calls and results too) become `tool_use` / `tool_result`
blocks, consecutive messages of one role are merged (Anthropic requires alternation).
Parameters without an Anthropic field are adapted, dropped or make the target
ineligible as `anthropic_params` decides. Responses, streams (`anthropic_stream`) and
errors come back in OpenAI's shapes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from gateway.config.loader import ProviderConfig
from gateway.errors import (
    ApiError,
    UpstreamError,
    classify_status,
    error_body,
    parse_retry_after,
)
from gateway.providers.anthropic_answer import translate_response
from gateway.providers.anthropic_params import (
    PLAIN,
    AnswerShape,
    answer_shape,
    check_eligible,
    json_tool,
    legacy_tools,
    thinking_config,
    thinks_adaptively,
    with_json_tool,
)
from gateway.providers.anthropic_stream import AnthropicStream, loads
from gateway.providers.base import UpstreamRequest, Usage

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
_JSON = "application/json"

# Anthropic error type → the OpenAI error type the client sees.
_ERROR_TYPES: dict[str, str] = {
    "invalid_request_error": "invalid_request_error",
    "request_too_large": "invalid_request_error",
    "authentication_error": "authentication_error",
    "permission_error": "permission_error",
    "not_found_error": "not_found_error",
    "rate_limit_error": "rate_limit_error",
    "api_error": "api_error",
    "overloaded_error": "api_error",
}
_STATUS_TYPES: dict[int, str] = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
}


def _bad(message: str, param: str | None = "messages") -> ApiError:
    return ApiError(400, message, param=param)


# --- request ----------------------------------------------------------------------


def _image(spec: Any) -> dict[str, Any]:
    url = spec.get("url") if isinstance(spec, dict) else spec
    if not isinstance(url, str):
        raise _bad("an image_url part needs a url")
    if url.startswith("data:"):
        header, comma, data = url[5:].partition(",")
        media_type, _, encoding = header.partition(";")
        if not comma or encoding != "base64" or not media_type:
            raise _bad("image data URLs must look like data:<media type>;base64,<data>")
        source = {"type": "base64", "media_type": media_type, "data": data}
    elif url.startswith(("https://", "http://")):
        source = {"type": "url", "url": url}
    else:
        raise _bad("image URLs must be http(s) or data: URLs")
    return {"type": "image", "source": source}


def _blocks(content: Any, role: str) -> list[dict[str, Any]]:
    """OpenAI message content (a string or a list of parts) as Anthropic blocks; empty
    text is left out, since Anthropic refuses empty text blocks."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise _bad(f"{role} message content must be a string or a list of parts")
    blocks: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            text = part.get("text")
            if not isinstance(text, str):
                raise _bad("a text part needs a text string")
            if not text:
                continue
            block: dict[str, Any] = {"type": "text", "text": text}
        elif kind == "image_url" and role != "system":
            block = _image(part.get("image_url"))
        elif kind == "refusal" and role == "assistant":
            continue
        else:
            raise _bad(f"{role} content part type {kind!r} is not supported by anthropic")
        if part.get("cache_control"):
            block["cache_control"] = part["cache_control"]
        blocks.append(block)
    return blocks


def _tool_use(call: Any) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise _bad("each tool call needs a function with a name")
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        try:
            arguments = orjson.loads(arguments) if arguments.strip() else {}
        except orjson.JSONDecodeError:
            raise _bad("tool call arguments must be a JSON object") from None
    if not isinstance(arguments, dict):
        raise _bad("tool call arguments must be a JSON object")
    return {"type": "tool_use", "id": call.get("id"), "name": function["name"], "input": arguments}


def _tool_result(message: Mapping[str, Any]) -> dict[str, Any]:
    content = message.get("content")
    result: Any = content if isinstance(content, str) else _blocks(content, "tool")
    return {"type": "tool_result", "tool_use_id": message.get("tool_call_id"), "content": result}


def _messages(messages: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system text blocks, alternating Anthropic messages)."""
    if not isinstance(messages, list):
        raise _bad("messages must be a list")
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    function_call_id = ""  # the last legacy function call: its result answers it
    for position, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _bad("each message must be an object")
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            system.extend(_blocks(content, "system"))
            continue
        if role == "user":
            blocks = _blocks(content, "user")
        elif role == "assistant":
            calls = message.get("tool_calls") or []
            if not isinstance(calls, list):
                raise _bad("tool_calls must be a list")
            if isinstance(message.get("function_call"), dict):  # legacy: no id of its own
                function_call_id = f"call_function_{position}"
                function = message["function_call"]
                calls = [*calls, {"id": function_call_id, "function": function}]
            blocks = _blocks(content, "assistant") + [_tool_use(call) for call in calls]
        elif role == "tool":
            role, blocks = "user", [_tool_result(message)]
        elif role == "function" and function_call_id:
            answer = {"tool_call_id": function_call_id, "content": content}
            role, blocks, function_call_id = "user", [_tool_result(answer)], ""
        else:
            raise _bad(f"message role {role!r} is not supported by anthropic")
        if not blocks:
            continue
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    return system, out


def _system(blocks: list[dict[str, Any]]) -> str | list[dict[str, Any]] | None:
    if not blocks:
        return None
    if any("cache_control" in block for block in blocks):
        return blocks  # keep the cache breakpoints, which a joined string would lose
    return "\n\n".join(block["text"] for block in blocks)


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise _bad("tools must be a list", "tools")
    out: list[dict[str, Any]] = []
    for tool in tools:
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or tool.get("type") != "function":
            raise _bad("only function tools are supported by anthropic", "tools")
        if not isinstance(function.get("name"), str):
            raise _bad("each tool needs a function name", "tools")
        schema = function.get("parameters") or {"type": "object", "properties": {}}
        entry: dict[str, Any] = {"name": function["name"], "input_schema": schema}
        if function.get("description"):
            entry["description"] = function["description"]
        out.append(entry)
    return out


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    out: dict[str, Any]
    if choice is None:
        if parallel is not False:
            return None
        out = {"type": "auto"}
    elif choice in ("auto", "required", "none"):
        out = {"type": {"auto": "auto", "required": "any", "none": "none"}[choice]}
    elif isinstance(choice, dict) and choice.get("type") == "function":
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(name, str):
            raise _bad("tool_choice needs a function name", "tool_choice")
        out = {"type": "tool", "name": name}
    else:
        raise _bad("tool_choice must be auto, required, none or a function", "tool_choice")
    if parallel is False and out["type"] != "none":
        out["disable_parallel_tool_use"] = True
    return out


def translate_request(
    body: Mapping[str, Any], model: str, stream: bool, thinking_mode: str = "auto"
) -> dict[str, Any]:
    """An OpenAI chat body as an Anthropic Messages body; raises `ApiError` 400 for a
    malformed body, `UpstreamError("unsupported")` for one Anthropic cannot honour.
    `thinking_mode`: the provider's `thinking` setting."""
    check_eligible(body)
    system, messages = _messages(body.get("messages"))
    max_tokens = body.get("max_completion_tokens")
    if max_tokens is None:
        max_tokens = body.get("max_tokens")
    out: dict[str, Any] = {"model": model, "messages": messages}
    if (system_value := _system(system)) is not None:
        out["system"] = system_value
    stop = body.get("stop")
    if stop is not None:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else stop
    for key in ("temperature", "top_p", "top_k"):
        if body.get(key) is not None:
            out[key] = body[key]
    if body.get("user"):
        out["metadata"] = {"user_id": body["user"]}
    shape = answer_shape(body)
    tools, choice = body.get("tools"), body.get("tool_choice")
    parallel = body.get("parallel_tool_calls")
    if shape.functions:
        (tools, choice), parallel = legacy_tools(body), False  # one function call a turn
    anthropic_tools = _tools(tools) if tools else []
    anthropic_choice = _tool_choice(choice, parallel) if tools else None
    if shape.json_tool is not None:
        tool = json_tool(body["response_format"], shape.json_tool)
        anthropic_tools, anthropic_choice = with_json_tool(anthropic_tools, anthropic_choice, tool)
    if anthropic_tools:
        out["tools"] = anthropic_tools
    if anthropic_choice is not None:
        out["tool_choice"] = anthropic_choice
    thinking = thinking_config(
        body,
        anthropic_choice,
        DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens,
        thinks_adaptively(model, thinking_mode),
    )
    out["max_tokens"] = thinking.max_tokens
    if thinking.thinking is not None:
        out["thinking"] = thinking.thinking
    if thinking.output_config is not None:
        out["output_config"] = thinking.output_config
    if stream:
        out["stream"] = True
    return out


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    return next((v for k, v in headers.items() if k.lower() == name), None)


class AnthropicAdapter:
    """`type = "anthropic"`: the Messages API at `{base_url}/v1/messages`."""

    def chat_request(
        self, provider: ProviderConfig, model: str, body: Mapping[str, Any], stream: bool
    ) -> UpstreamRequest:
        headers = {
            "content-type": _JSON,
            "accept": "text/event-stream" if stream else _JSON,
            "anthropic-version": API_VERSION,
        }
        key = provider.api_key.reveal()
        if key:
            headers["x-api-key"] = key
        payload = orjson.dumps(translate_request(body, model, stream, provider.thinking))
        return UpstreamRequest(f"{provider.base_url}/v1/messages", headers, payload)

    def chat_response(
        self, body: bytes, model: str, asked: Mapping[str, Any] | None = None
    ) -> tuple[bytes, Usage | None]:
        out, usage = translate_response(loads(body, "a response"), model, asked)
        return orjson.dumps(out), usage

    def chat_stream(
        self, model: str, include_usage: bool, asked: Mapping[str, Any] | None = None
    ) -> AnthropicStream:
        shape: AnswerShape = answer_shape(asked) if asked else PLAIN
        return AnthropicStream(model, include_usage, shape)

    def embeddings_request(
        self, provider: ProviderConfig, model: str, body: Mapping[str, Any]
    ) -> UpstreamRequest:
        raise ApiError(400, "provider type anthropic has no embeddings API", code="unsupported")

    def embeddings_response(self, body: bytes) -> tuple[bytes, Usage | None]:
        raise ApiError(400, "provider type anthropic has no embeddings API", code="unsupported")

    def error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        try:
            data = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            data = None
        err = data.get("error") if isinstance(data, dict) else None
        err = err if isinstance(err, dict) else {}
        kind = err.get("type") if isinstance(err.get("type"), str) else None
        detail = err.get("message") if isinstance(err.get("message"), str) else ""
        reason = classify_status(status)
        if status == 529 or kind == "overloaded_error":
            reason = "server_error"  # Anthropic's "try again shortly"
        message = (
            f"provider answered {status}: {detail}" if detail else f"provider answered {status}"
        )
        type_ = (
            _ERROR_TYPES.get(kind or "")
            or _STATUS_TYPES.get(status)
            or ("api_error" if status >= 500 else "invalid_request_error")
        )
        return UpstreamError(
            reason,
            message[:300],
            status=status,
            retry_after_s=parse_retry_after(_header(headers, "retry-after")),
            client_body=error_body(detail or message[:300], type_, kind),
        )
