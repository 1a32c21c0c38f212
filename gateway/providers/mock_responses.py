"""The mock provider's answers in the OpenAI Responses format (a whole response and
its documented event stream), and the tool calls of the `tools` behaviour in every
format: a request with tools whose last turn is not a tool's result calls the first
tool, with arguments made from its schema and the user's last words."""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson

from gateway.providers.mock import count_tokens, prompt_tokens, reply_text, split_words


class ToolCall(NamedTuple):
    call_id: str
    name: str
    arguments: dict[str, Any]


def _tool_spec(tool: Any) -> tuple[str, Any] | None:
    """(name, JSON schema) of a tool in the Responses, chat or Anthropic shape."""
    if not isinstance(tool, dict):
        return None
    inner = tool.get("function")
    function: dict[str, Any] = inner if isinstance(inner, dict) else tool
    name = function.get("name")
    schema = function.get("parameters", function.get("input_schema"))
    return (name, schema) if isinstance(name, str) else None


def _arguments(schema: Any, said: str) -> dict[str, Any]:
    properties = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(properties, dict):
        return {}
    samples = {"string": said, "integer": 1, "number": 1, "boolean": True}
    return {
        name: samples.get(str(spec.get("type")) if isinstance(spec, dict) else "string", said)
        for name, spec in properties.items()
    }


def mock_tool_call(tools: Any, messages: list[dict[str, Any]], id_: str) -> ToolCall | None:
    """The tool to call, or None: no tools, or the last turn is a tool's result."""
    specs = [s for s in map(_tool_spec, tools if isinstance(tools, list) else []) if s]
    if not specs or not messages or messages[-1].get("role") == "tool":
        return None
    last = messages[-1].get("content")
    if isinstance(last, list) and any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in last
    ):
        return None
    name, schema = specs[0]
    said = reply_text(messages).removeprefix("Mock answer to: ")
    return ToolCall(f"call_{id_}", name, _arguments(schema, said))


def responses_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """A Responses request's `instructions` and `input` as chat-like messages."""
    messages: list[dict[str, Any]] = []
    if isinstance(body.get("instructions"), str):
        messages.append({"role": "system", "content": body["instructions"]})
    items = body.get("input")
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        kind = item.get("type", "message")
        if kind == "message":
            content = item.get("content")
            if isinstance(content, list):
                content = [
                    {"type": "text", "text": p.get("text", "")}
                    for p in content
                    if isinstance(p, dict)
                ]
            messages.append({"role": item.get("role"), "content": content})
        elif kind == "function_call_output":
            output = item.get("output")
            messages.append({"role": "tool", "content": output if isinstance(output, str) else ""})
        elif kind == "function_call":
            messages.append({"role": "assistant", "content": ""})
    return messages


def _usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }


def _response(
    body: dict[str, Any], model: str, id_: str, status: str, output: list[Any], usage: Any
) -> dict[str, Any]:
    return {
        "id": f"resp_{id_}",
        "object": "response",
        "created_at": 1700000000,
        "status": status,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": usage,
        "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }


class MockAnswer(NamedTuple):
    text: str
    call: ToolCall | None
    input_tokens: int


def mock_answer(body: dict[str, Any], model: str, id_: str, tools: bool, words: int) -> MockAnswer:
    messages = responses_messages(body)
    call = mock_tool_call(body.get("tools"), messages, id_) if tools else None
    text = reply_text(messages, words)
    spec = body.get("text", {}).get("format") if isinstance(body.get("text"), dict) else None
    if isinstance(spec, dict) and spec.get("type") == "json_schema":  # structured output
        said = text.removeprefix("Mock answer to: ")
        text = orjson.dumps(_arguments(spec.get("schema"), said)).decode()
    return MockAnswer(text, call, prompt_tokens(messages))


def _items(answer: MockAnswer, id_: str) -> list[dict[str, Any]]:
    if answer.call is not None:
        return [
            {
                "type": "function_call",
                "id": f"fc_{id_}",
                "call_id": answer.call.call_id,
                "name": answer.call.name,
                "arguments": orjson.dumps(answer.call.arguments).decode(),
                "status": "completed",
            }
        ]
    part = {"type": "output_text", "text": answer.text, "annotations": [], "logprobs": []}
    return [
        {
            "type": "message",
            "id": f"msg_{id_}",
            "status": "completed",
            "role": "assistant",
            "content": [part],
        }
    ]


def _output_tokens(answer: MockAnswer) -> int:
    if answer.call is not None:
        return count_tokens(orjson.dumps(answer.call.arguments).decode())
    return count_tokens(answer.text)


def responses_object(body: dict[str, Any], model: str, id_: str, answer: MockAnswer) -> Any:
    usage = _usage(answer.input_tokens, _output_tokens(answer))
    return _response(body, model, id_, "completed", _items(answer, id_), usage)


def responses_events(
    body: dict[str, Any], model: str, id_: str, answer: MockAnswer
) -> tuple[list[bytes], int]:
    """The framed events of a streamed response, and how many make half of it."""
    events: list[bytes] = []

    def emit(type_: str, **fields: Any) -> None:
        payload = orjson.dumps({"type": type_, "sequence_number": len(events), **fields})
        events.append(b"event: " + type_.encode() + b"\ndata: " + payload + b"\n\n")

    started = _response(body, model, id_, "in_progress", [], None)
    emit("response.created", response=started)
    emit("response.in_progress", response=started)
    (item,) = _items(answer, id_)
    where = {"item_id": item["id"], "output_index": 0}
    if item["type"] == "function_call":
        emit("response.output_item.added", output_index=0, item={**item, "arguments": ""})
        emit("response.function_call_arguments.delta", **where, delta=item["arguments"])
        emit("response.function_call_arguments.done", **where, arguments=item["arguments"])
    else:
        part = item["content"][0]
        emit("response.output_item.added", output_index=0, item={**item, "content": []})
        emit("response.content_part.added", **where, content_index=0, part={**part, "text": ""})
        for word in split_words(answer.text):
            emit("response.output_text.delta", **where, content_index=0, delta=word, logprobs=[])
        emit("response.output_text.done", **where, content_index=0, text=answer.text, logprobs=[])
        emit("response.content_part.done", **where, content_index=0, part=part)
    half = len(events) // 2
    emit("response.output_item.done", output_index=0, item=item)
    done = responses_object(body, model, id_, answer)
    emit("response.completed", response=done)
    return events, half
