"""Anthropic Messages requests → OpenAI chat bodies, for the targets that speak chat.

`system` becomes a system message; `text` and `image` blocks become content parts;
`tool_use` blocks become an assistant's `tool_calls` and `tool_result` blocks become
`tool` messages (placed first, right after the call they answer, as chat requires);
`tools`, `tool_choice`, `max_tokens`, `stop_sequences`, `temperature`, `top_p` and
`metadata.user_id` (as `user`, which is also the sticky key) map one to one.
What chat has no words for (documents, server tools, thinking budgets, `top_k`) is
noted: such a request can still go to a target that speaks Messages natively.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import orjson

from gateway.errors import ApiError

# Messages fields with a chat counterpart of the same name and meaning.
_SAME = ("max_tokens", "temperature", "top_p", "stream", "prompt_variables")
# Messages fields that change nothing chat can express, dropped on the way.
_DROPPED = frozenset({"top_k", "service_tier", "thinking", "container", "mcp_servers"})
_HANDLED = frozenset(
    {"model", "system", "messages", "tools", "tool_choice", "stop_sequences", "metadata", *_SAME}
)


class ChatForm(NamedTuple):
    body: dict[str, Any]  # the request as a chat body
    untranslatable: str | None  # the first field only a Messages target can serve


class _Untranslatable(Exception):
    def __init__(self, where: str) -> None:
        super().__init__(where)
        self.where = where


def bad(message: str, param: str | None = None) -> ApiError:
    return ApiError(400, message, param=param, code="invalid_request_error")


def chat_form(body: Mapping[str, Any]) -> ChatForm:
    """The chat form of a checked Messages body; raises `ApiError` 400 for a malformed
    one. Fields chat cannot carry leave `untranslatable` naming the first of them."""
    untranslatable: str | None = None
    try:
        messages = _system(body.get("system")) + _messages(body["messages"])
    except _Untranslatable as exc:
        untranslatable, messages = exc.where, []
    out: dict[str, Any] = {"model": body["model"], "messages": messages}
    for name in _SAME:
        if body.get(name) is not None:
            out[name] = body[name]
    if body.get("stop_sequences") is not None:
        out["stop"] = body["stop_sequences"]
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        out["user"] = metadata["user_id"]
    try:
        if body.get("tools"):
            out["tools"] = [_tool(tool) for tool in body["tools"]]
        choice = body.get("tool_choice")
        if choice is not None:
            _tool_choice(choice, out)
    except _Untranslatable as exc:
        untranslatable = untranslatable or exc.where
    for name in body:
        if name not in _HANDLED and name not in _DROPPED:
            untranslatable = untranslatable or name
    return ChatForm(out, untranslatable)


def _system(system: Any) -> list[dict[str, Any]]:
    if system is None or system == "":
        return []
    if isinstance(system, str):
        return [{"role": "system", "content": system}]
    if not isinstance(system, list):
        raise bad("'system' must be a string or an array of text blocks.", "system")
    texts = [_text(block, "system") for block in system]
    return [{"role": "system", "content": "\n\n".join(texts)}] if texts else []


def _text(block: Any, where: str) -> str:
    if not isinstance(block, dict) or block.get("type") != "text":
        raise bad(f"'{where}' blocks must be text blocks.", where)
    text = block.get("text")
    if not isinstance(text, str):
        raise bad(f"A text block in '{where}' needs a 'text' string.", where)
    return text


def _messages(messages: list[Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        role, content = message["role"], message["content"]
        if isinstance(content, str):
            out.append({"role": role, "content": content})
        elif role == "assistant":
            out.append(_assistant(content, index))
        else:
            out += _user(content, index)
    return out


def _assistant(blocks: list[Any], index: int) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in blocks:
        kind = _kind(block, index)
        if kind == "text":
            texts.append(_text(block, f"messages.{index}.content"))
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            function = {"name": block.get("name"), "arguments": arguments}
            calls.append({"id": block.get("id"), "type": "function", "function": function})
        elif kind not in ("thinking", "redacted_thinking"):  # the model's own, not resent
            raise _Untranslatable(f"messages.{index}.content ({kind})")
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if calls:
        message["tool_calls"] = calls
    return message


def _user(blocks: list[Any], index: int) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for block in blocks:
        kind = _kind(block, index)
        if kind == "text":
            parts.append({"type": "text", "text": _text(block, f"messages.{index}.content")})
        elif kind == "image":
            parts.append(_image(block.get("source"), index))
        elif kind == "tool_result":
            results.append(_tool_result(block, index))
        else:
            raise _Untranslatable(f"messages.{index}.content ({kind})")
    if parts:
        results.append({"role": "user", "content": parts})
    return results


def _kind(block: Any, index: int) -> str:
    kind = block.get("type") if isinstance(block, dict) else None
    if not isinstance(kind, str):
        raise bad("Each content block must be an object with a 'type'.", f"messages.{index}")
    return kind


def _image(source: Any, index: int) -> dict[str, Any]:
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "base64" and isinstance(source.get("data"), str):
        url = f"data:{source.get('media_type')};base64,{source['data']}"
    elif kind == "url" and isinstance(source.get("url"), str):
        url = source["url"]
    elif isinstance(kind, str) and kind not in ("base64", "url"):  # e.g. the Files API's
        raise _Untranslatable(f"messages.{index}.content (image source {kind})")
    else:
        raise bad("An image block needs a base64 or url source.", f"messages.{index}.content")
    return {"type": "image_url", "image_url": {"url": url}}


def _tool_result(block: Mapping[str, Any], index: int) -> dict[str, Any]:
    content = block.get("content")
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise _Untranslatable(f"messages.{index}.content (tool_result)")
            texts.append(_text(part, f"messages.{index}.content"))
        content = "\n\n".join(texts)
    elif content is None:
        content = ""
    elif not isinstance(content, str):
        raise bad("A tool_result's content must be a string or blocks.", f"messages.{index}")
    if block.get("is_error") is True:
        content = f"Error: {content}"  # chat has no error flag: the text says it
    return {"role": "tool", "tool_call_id": block.get("tool_use_id"), "content": content}


def _tool(tool: Any) -> dict[str, Any]:
    if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
        raise bad("Each tool needs a 'name'.", "tools")
    if tool.get("type") not in (None, "custom"):  # a server tool runs at Anthropic only
        raise _Untranslatable(f"tools ({tool['type']})")
    schema = tool.get("input_schema")
    if not isinstance(schema, dict):
        raise bad(f"Tool '{tool['name']}' needs an 'input_schema' object.", "tools")
    function: dict[str, Any] = {"name": tool["name"], "parameters": schema}
    if isinstance(tool.get("description"), str):
        function["description"] = tool["description"]
    return {"type": "function", "function": function}


def _tool_choice(choice: Any, out: dict[str, Any]) -> None:
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind in ("auto", "any", "none"):
        out["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[kind]
    elif kind == "tool" and isinstance(choice.get("name"), str):
        out["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    else:
        raise bad("'tool_choice' must be auto, any, none or a named tool.", "tool_choice")
    if choice.get("disable_parallel_tool_use") is True and kind != "none":
        out["parallel_tool_calls"] = False
