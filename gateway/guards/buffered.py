"""A streamed request under guards is answered buffered: the gateway asks the target
for the whole answer, checks it, and only then sends it to the client as a chat
completion stream (one content chunk, the finish chunk, usage if asked, `[DONE]`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import orjson
from aiohttp import web

STREAM_FIELDS = frozenset({"stream", "stream_options"})


def unstreamed(body: Mapping[str, Any]) -> dict[str, Any]:
    """The body to send upstream for the whole answer at once."""
    return {k: v for k, v in body.items() if k not in STREAM_FIELDS}


def chunks(completion: Mapping[str, Any], include_usage: bool) -> Iterator[bytes]:
    base = {
        "id": completion.get("id", ""),
        "object": "chat.completion.chunk",
        "created": completion.get("created", 0),
        "model": completion.get("model", ""),
    }
    choices = completion.get("choices") or []
    for index, choice in enumerate(choices):
        message = dict(choice.get("message") or {})
        delta: dict[str, Any] = {"role": message.get("role", "assistant")}
        if message.get("content") is not None:
            delta["content"] = message["content"]
        if message.get("tool_calls"):
            delta["tool_calls"] = [
                {**call, "index": i} for i, call in enumerate(message["tool_calls"])
            ]
        number = choice.get("index", index)
        first = {"index": number, "delta": delta, "finish_reason": None}
        yield _event({**base, "choices": [first]})
        last = {"index": number, "delta": {}, "finish_reason": choice.get("finish_reason")}
        yield _event({**base, "choices": [last]})
    if include_usage and completion.get("usage") is not None:
        yield _event({**base, "choices": [], "usage": completion["usage"]})
    yield b"data: [DONE]\n\n"


def _event(data: Mapping[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


async def send_buffered(
    request: web.Request, raw: bytes, include_usage: bool, headers: dict[str, str]
) -> web.StreamResponse:
    completion = orjson.loads(raw)
    response = web.StreamResponse(
        headers={**headers, "Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    for chunk in chunks(completion, include_usage):
        await response.write(chunk)
    await response.write_eof()
    return response
