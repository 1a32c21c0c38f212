"""A fake provider that answers with the golden fixtures (tests/fixtures/anthropic and
tests/fixtures/openai), in the Messages or the chat wire format, chosen by what was
asked: a tool result gets the text answer, tools get the tool-call answer, anything
else the text answer. Streams go out event by event. Every request is kept."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from aiohttp.test_utils import TestServer

FIXTURES = Path(__file__).parent / "fixtures"
AiohttpServer = Callable[..., Awaitable[TestServer]]


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class FixtureUpstream:
    server: TestServer
    seen: list[Seen] = field(default_factory=list)

    @property
    def root_url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    @property
    def last(self) -> Seen:
        return self.seen[-1]


def _answers_tool(body: dict[str, Any]) -> bool:
    """A tool's result is in the conversation: time for the final answer."""
    for message in body.get("messages") or []:
        content = message.get("content")
        if message.get("role") == "tool" or (
            isinstance(content, list)
            and any(isinstance(b, dict) and b.get("type") == "tool_result" for b in content)
        ):
            return True
    return False


async def _stream(
    request: web.Request, events: bytes, hold_error: asyncio.Event | None
) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for event in events.split(b"\n\n"):
        if event.startswith(b"event: error") and hold_error is not None:
            await hold_error.wait()  # until the test has seen the first bytes
        if event.strip():
            await response.write(event + b"\n\n")
    await response.write_eof()
    return response


def _error_fixture(anthropic: bool, status: int) -> str:
    if status == 400:
        folder = "anthropic" if anthropic else "openai"
        return f"{folder}/error_invalid_request_400.json"
    return "anthropic/error_api_500.json" if anthropic else "openai/error_server_500.json"


def fixture_app(
    seen: list[Seen],
    fail: int = 0,
    stream_fixture: str = "",
    hold_error: asyncio.Event | None = None,
) -> web.Application:
    """`fail`: answer every request with that status (the wire's error body);
    `stream_fixture`: the Messages stream to answer with, whatever was asked;
    `hold_error`: a stream's error event waits for it."""

    async def handle(request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        seen.append(Seen(request.path, {str(k): v for k, v in request.headers.items()}, body))
        anthropic = request.path == "/v1/messages"
        if fail:
            name = _error_fixture(anthropic, fail)
            return web.Response(status=fail, body=fixture(name), content_type="application/json")
        tools = bool(body.get("tools")) and not _answers_tool(body)
        if anthropic:
            stem = "message_tool_use" if tools else "message_text"
            sse = stream_fixture or ("stream_tool_use" if tools else "stream_text") + ".sse"
            folder = "anthropic"
        else:
            stem = "chat_tool_calls" if tools else "chat_completion"
            sse = "stream_tool_calls.sse" if tools else "stream_text.sse"
            folder = "openai"
        if body.get("stream"):
            return await _stream(request, fixture(f"{folder}/{sse}"), hold_error)
        answer = fixture(f"{folder}/{stem}.json")
        return web.Response(body=answer, content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/messages", handle)
    app.router.add_post("/v1/chat/completions", handle)
    return app


async def start_fixture_upstream(
    aiohttp_server: AiohttpServer,
    fail: int = 0,
    stream_fixture: str = "",
    hold_error: asyncio.Event | None = None,
) -> FixtureUpstream:
    seen: list[Seen] = []
    server = await aiohttp_server(fixture_app(seen, fail, stream_fixture, hold_error))
    return FixtureUpstream(server, seen)
