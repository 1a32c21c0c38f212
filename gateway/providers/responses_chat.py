"""The OpenAI Responses API through chat completions, both ways, for targets that
speak only chat: a Responses request (its input items after the conversation kept for
`previous_response_id`) as a chat body, and a chat completion as a Responses object.

What chat cannot say (built-in tools, file inputs, item references) is noted, not
refused: such a request can still go to a target that speaks Responses natively."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import orjson

from gateway.errors import ApiError, UpstreamError
from gateway.providers.base import Usage

# Fields of ours a Responses object echoes from its request, with the API's defaults.
_ECHOED: dict[str, Any] = {
    "instructions": None,
    "max_output_tokens": None,
    "metadata": {},
    "parallel_tool_calls": True,
    "previous_response_id": None,
    "reasoning": {"effort": None, "summary": None},
    "store": True,
    "temperature": 1.0,
    "text": {"format": {"type": "text"}},
    "tool_choice": "auto",
    "tools": [],
    "top_p": 1.0,
    "truncation": "disabled",
    "user": None,
}
_ROLES = ("user", "assistant", "system", "developer")
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def _bad(message: str, param: str) -> ApiError:
    return ApiError(400, message, param=param, code="invalid_value")


def input_items(value: Any) -> list[dict[str, Any]]:
    """The request's `input` as a list of items (a string is one user message)."""
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        message = "'input' must be a string or an array of items."
        raise ApiError(400, message, param="input", code="invalid_type")
    return value


class ChatBody(NamedTuple):
    body: dict[str, Any]
    # The first field chat cannot carry (this request can only go to a native target).
    untranslatable: str | None


# --- request: Responses → chat -------------------------------------------------------


def _part(part: Any, role: str) -> dict[str, Any] | None:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in ("input_text", "output_text", "text") and isinstance(part.get("text"), str):
        return {"type": "text", "text": part["text"]}
    if kind == "input_image" and role != "assistant" and isinstance(part.get("image_url"), str):
        image: dict[str, Any] = {"url": part["image_url"]}
        if part.get("detail") in ("low", "high", "auto"):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "refusal":
        return None
    raise _Untranslatable("input")


class _Untranslatable(Exception):
    def __init__(self, param: str) -> None:
        super().__init__(param)
        self.param = param


def _content(content: Any, role: str) -> Any:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _bad("a message's content must be a string or an array of parts", "input")
    parts = [p for p in (_part(part, role) for part in content) if p is not None]
    if role in ("assistant", "system", "developer") or all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts if p["type"] == "text")
    return parts


def _output_text(output: Any) -> str:
    if isinstance(output, str):
        return output
    if isinstance(output, list):  # input_text parts; images cannot go back to a chat tool
        return "".join(p.get("text", "") for p in output if isinstance(p, dict))
    return orjson.dumps(output).decode()


def chat_messages(items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Responses input items as chat messages; function calls in a row become one
    assistant message's tool calls. Raises `_Untranslatable` for items chat has no
    word for."""
    messages: list[dict[str, Any]] = []
    for item in items:
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in _ROLES:
                raise _bad(f"message role {role!r} is not one of {_ROLES}", "input")
            messages.append({"role": role, "content": _content(item.get("content"), role)})
        elif kind == "function_call":
            call = {
                "id": item.get("call_id"),
                "type": "function",
                "function": {"name": item.get("name"), "arguments": item.get("arguments") or "{}"},
            }
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)
            elif last is not None and last["role"] == "assistant":
                last["tool_calls"] = [call]
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            if not isinstance(item.get("call_id"), str):
                raise _bad("a function_call_output item needs a call_id", "input")
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": item["call_id"],
                    "content": _output_text(item.get("output")),
                }
            )
        elif kind == "reasoning":
            continue  # a model's own reasoning means nothing to another model's chat API
        else:
            raise _Untranslatable("input")
    return messages


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise ApiError(400, "'tools' must be an array.", param="tools", code="invalid_type")
    out = []
    for tool in tools:
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise _Untranslatable("tools")  # built-in tools: only where they are native
        if not isinstance(tool.get("name"), str):
            raise _bad("each function tool needs a name", "tools")
        function = {"name": tool["name"], "parameters": tool.get("parameters") or {}}
        for key in ("description", "strict"):
            if tool.get(key) is not None:
                function[key] = tool[key]
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Any) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "function", "function": {"name": choice.get("name")}}
    raise _Untranslatable("tool_choice")


def _response_format(text: Any) -> dict[str, Any] | None:
    spec = text.get("format") if isinstance(text, dict) else None
    kind = spec.get("type") if isinstance(spec, dict) else None
    if spec is None or kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        assert isinstance(spec, dict)
        schema = {k: spec[k] for k in ("name", "schema", "strict", "description") if k in spec}
        return {"type": "json_schema", "json_schema": schema}
    raise _bad("text.format.type must be text, json_object or json_schema", "text")


def chat_body(body: Mapping[str, Any], history: Sequence[Mapping[str, Any]]) -> ChatBody:
    """The chat body for a Responses request; `history`: the conversation before it
    (input and output items of the previous responses). Raises `ApiError` 400 for a
    request that is wrong everywhere."""
    out: dict[str, Any] = {"model": body.get("model")}
    untranslatable: str | None = None
    messages: list[dict[str, Any]] = []
    if isinstance(body.get("instructions"), str) and body["instructions"]:
        messages.append({"role": "system", "content": body["instructions"]})
    items = [*history, *input_items(body.get("input", []))]
    try:
        messages.extend(chat_messages(items))
    except _Untranslatable as exc:
        untranslatable = exc.param
    out["messages"] = messages
    for name, make in (("tools", _tools), ("tool_choice", _tool_choice)):
        if body.get(name) is not None:
            try:
                out[name] = make(body[name])
            except _Untranslatable as exc:
                untranslatable = untranslatable or exc.param
    response_format = _response_format(body.get("text"))
    if response_format is not None:
        out["response_format"] = response_format
    if body.get("max_output_tokens") is not None:
        out["max_completion_tokens"] = body["max_output_tokens"]
    for name in ("temperature", "top_p", "parallel_tool_calls", "prompt_variables", "stream"):
        if body.get(name) is not None:
            out[name] = body[name]
    user = body.get("user") or body.get("safety_identifier")
    if isinstance(user, str) and user:
        out["user"] = user  # also the sticky key of a prompt's version choice
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict) and isinstance(reasoning.get("effort"), str):
        out["reasoning_effort"] = reasoning["effort"]
    return ChatBody(out, untranslatable)


# --- answer: chat → Responses ----------------------------------------------------------


def usage_json(usage: Usage | None, reasoning_tokens: int = 0) -> dict[str, Any] | None:
    if usage is None:
        return None
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_input_tokens},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }


def response_object(
    request: Mapping[str, Any],
    response_id: str,
    created_at: int,
    model: str,
    status: str = "in_progress",
    output: list[dict[str, Any]] | None = None,
    usage: dict[str, Any] | None = None,
    finish_reason: str | None = None,
) -> dict[str, Any]:
    """A Responses object for `request`, as the API shapes it (status `in_progress`
    for the first events of a stream)."""
    incomplete = _INCOMPLETE.get(finish_reason or "")
    if status == "completed" and incomplete:
        status = "incomplete"
    out: dict[str, Any] = {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "error": None,
        "incomplete_details": {"reason": incomplete} if status == "incomplete" else None,
        "model": model,
        "output": output or [],
        "usage": usage,
    }
    for name, default in _ECHOED.items():
        value = request.get(name)
        out[name] = default if value is None else value
    if request.get("safety_identifier") is not None:
        out["safety_identifier"] = request["safety_identifier"]
    return out


def message_item(item_id: str, text: str, refusal: str | None = None) -> dict[str, Any]:
    part: dict[str, Any] = (
        {"type": "refusal", "refusal": refusal}
        if refusal
        else {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    )
    return {
        "type": "message",
        "id": item_id,
        "status": "completed",
        "role": "assistant",
        "content": [part],
    }


def function_call_item(item_id: str, call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": item_id,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": "completed",
    }


def response_from_chat(
    chat: bytes, usage: Usage | None, request: Mapping[str, Any], response_id: str
) -> dict[str, Any]:
    """A chat completion (already checked by the provider's adapter) as a Responses object."""
    try:
        data = orjson.loads(chat)
        choice = data["choices"][0]
        message = choice["message"]
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
        raise UpstreamError("bad_response", "provider answer has no message") from None
    output: list[dict[str, Any]] = []
    text = message.get("content")
    refusal = message.get("refusal")
    if (isinstance(text, str) and text) or refusal or not message.get("tool_calls"):
        output.append(message_item(new_id("msg"), text if isinstance(text, str) else "", refusal))
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        output.append(
            function_call_item(
                new_id("fc"),
                str(call.get("id") or new_id("call")),
                str(function.get("name") or ""),
                str(function.get("arguments") or ""),
            )
        )
    raw_usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    details = raw_usage.get("completion_tokens_details")
    reasoning = details.get("reasoning_tokens") if isinstance(details, dict) else 0
    return response_object(
        request,
        response_id,
        int(data.get("created") or time.time()),
        str(data.get("model") or ""),
        "completed",
        output,
        usage_json(usage, int(reasoning or 0)),
        choice.get("finish_reason"),
    )
