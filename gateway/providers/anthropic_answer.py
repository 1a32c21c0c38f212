"""An Anthropic Messages answer as an OpenAI `chat.completion`: text, tool calls (or a
legacy `function_call`), the forced answer tool's input as JSON content, thinking as
`reasoning_content` (the convention of DeepSeek's API, vLLM and LiteLLM; never mixed
into `content`), and usage with cache reads and writes."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson

from gateway.errors import UpstreamError
from gateway.providers.anthropic_params import PLAIN, answer_shape
from gateway.providers.anthropic_stream import finish_reason, openai_usage, usage_from_anthropic
from gateway.providers.base import Usage


def translate_response(
    data: Any, model: str, asked: Mapping[str, Any] | None = None
) -> tuple[dict[str, Any], Usage | None]:
    """`asked`: the client's chat body, which says how the answer goes back."""
    if not isinstance(data, dict) or not isinstance(data.get("content"), list):
        raise UpstreamError("bad_response", "provider response has no content")
    shape = answer_shape(asked) if asked else PLAIN
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[dict[str, Any]] = []
    answer: str | None = None  # the forced answer tool's input, as JSON text
    for block in data["content"]:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "thinking" and isinstance(block.get("thinking"), str):
            thoughts.append(block["thinking"])
        elif kind == "tool_use" and answer is None and block.get("name") == shape.json_tool:
            answer = orjson.dumps(block.get("input") or {}).decode()
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            function = {"name": block.get("name"), "arguments": arguments}
            calls.append({"id": block.get("id"), "type": "function", "function": function})
    content = answer if answer is not None else "".join(texts) if texts or not calls else None
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    finish = finish_reason(data.get("stop_reason")) or "stop"
    if calls and shape.functions:
        message["function_call"] = calls[0]["function"]
        finish = "function_call" if finish == "tool_calls" else finish
    elif calls:
        message["tool_calls"] = calls
    elif answer is not None and finish == "tool_calls":
        finish = "stop"  # the answer, not a call for the client to make
    if thoughts:
        message["reasoning_content"] = "".join(thoughts)
    usage = usage_from_anthropic(data.get("usage"))
    out: dict[str, Any] = {
        "id": f"chatcmpl-{data.get('id') or 'anthropic'}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": data.get("model") or model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish,
            }
        ],
    }
    if usage is not None:
        out["usage"] = openai_usage(usage)
    return out, usage
