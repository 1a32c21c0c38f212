"""The standalone mock provider, driven over real HTTP: the OpenAI SDK for OpenAI's format,
plain aiohttp for Anthropic's."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from openai.types.chat import ChatCompletionMessageParam

from gateway.providers.mock import count_tokens, prompt_tokens, reply_text
from gateway.providers.mock_server import (
    MOCK_MODELS,
    MOCK_STATS,
    MockServerOptions,
    create_mock_app,
)

ServerFactory = Callable[..., Awaitable[TestServer]]
MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "hello there mock"},
]
ANSWER = reply_text(MESSAGES)


@pytest.fixture
async def start(aiohttp_server: ServerFactory) -> Callable[..., Awaitable[TestServer]]:
    async def _start(**options: Any) -> TestServer:
        return await aiohttp_server(create_mock_app(MockServerOptions(**options)))

    return _start


@pytest.fixture
async def server(start: Callable[..., Awaitable[TestServer]]) -> TestServer:
    return await start()


@pytest.fixture
async def client(server: TestServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=str(server.make_url("/v1")), api_key="sk-test", max_retries=0
    ) as client:
        yield client


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def anthropic_events(response: aiohttp.ClientResponse) -> list[tuple[str, dict[str, Any]]]:
    """The (event name, data) pairs of an Anthropic SSE stream."""
    events: list[tuple[str, dict[str, Any]]] = []
    name = ""
    async for raw in response.content:
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            events.append((name, orjson.loads(line.removeprefix("data: "))))
    return events


def anthropic_body(model: str = "mock-claude", **extra: Any) -> dict[str, Any]:
    messages = [{"role": "user", "content": [{"type": "text", "text": "hello there mock"}]}]
    return {"model": model, "max_tokens": 64, "messages": messages, **extra}


# --- OpenAI format ---------------------------------------------------------------------


async def test_chat_non_stream(client: openai.AsyncOpenAI) -> None:
    result = await client.chat.completions.create(model="mock-gpt", messages=MESSAGES)
    assert result.choices[0].message.content == ANSWER
    assert result.choices[0].finish_reason == "stop"
    assert result.model == "mock-gpt"
    assert result.usage is not None
    assert result.usage.prompt_tokens == prompt_tokens(MESSAGES)
    assert result.usage.completion_tokens == count_tokens(ANSWER)
    assert result.usage.total_tokens == prompt_tokens(MESSAGES) + count_tokens(ANSWER)


@pytest.mark.parametrize("include_usage", [True, False])
async def test_chat_stream(client: openai.AsyncOpenAI, include_usage: bool) -> None:
    stream = await client.chat.completions.create(
        model="mock-gpt",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": include_usage},
    )
    text, finishes, usages = "", [], []
    async for chunk in stream:
        if chunk.usage is not None:
            usages.append(chunk.usage)
        for choice in chunk.choices:
            text += choice.delta.content or ""
            if choice.finish_reason:
                finishes.append(choice.finish_reason)
    assert text == ANSWER
    assert finishes == ["stop"]
    if include_usage:
        assert len(usages) == 1
        assert usages[0].prompt_tokens == prompt_tokens(MESSAGES)
        assert usages[0].completion_tokens == count_tokens(ANSWER)
    else:
        assert usages == []


async def test_stream_ends_with_done(server: TestServer, session: aiohttp.ClientSession) -> None:
    body = {"model": "mock-gpt", "messages": MESSAGES, "stream": True}
    async with session.post(server.make_url("/v1/chat/completions"), json=body) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        raw = await response.read()
    assert raw.endswith(b"data: [DONE]\n\n")


async def test_words_behaviour(client: openai.AsyncOpenAI) -> None:
    result = await client.chat.completions.create(model="words=7", messages=MESSAGES)
    assert result.choices[0].message.content == reply_text(MESSAGES, 7)
    assert result.usage is not None and result.usage.completion_tokens == 7


async def test_embeddings(client: openai.AsyncOpenAI) -> None:
    one = await client.embeddings.create(model="mock-embed", input="hello world")
    assert len(one.data) == 1 and len(one.data[0].embedding) == 8
    assert one.usage.prompt_tokens == 2
    many = await client.embeddings.create(model="mock-embed", input=["a", "b c", "hello world"])
    assert [d.index for d in many.data] == [0, 1, 2]
    assert many.data[2].embedding == one.data[0].embedding  # deterministic
    assert many.usage.total_tokens == 5
    floats = await client.embeddings.create(
        model="mock-embed", input="hello world", encoding_format="float"
    )
    assert floats.data[0].embedding == pytest.approx(one.data[0].embedding, abs=1e-6)


async def test_models(client: openai.AsyncOpenAI) -> None:
    ids = [model.id async for model in client.models.list()]
    assert ids == list(MOCK_MODELS)


async def test_healthz(server: TestServer, session: aiohttp.ClientSession) -> None:
    async with session.get(server.make_url("/healthz")) as response:
        assert response.status == 200
        assert await response.text() == "ok"


async def test_bad_json_is_400(server: TestServer, session: aiohttp.ClientSession) -> None:
    url = server.make_url("/v1/chat/completions")
    async with session.post(url, data=b"{nope") as response:
        assert response.status == 400
        assert (await response.json())["error"]["type"] == "invalid_request_error"


async def test_azure_paths(server: TestServer, session: aiohttp.ClientSession) -> None:
    base = "/openai/deployments/my-gpt"
    url = server.make_url(base + "/chat/completions").with_query({"api-version": "2024-06-01"})
    async with session.post(url, json={"messages": MESSAGES}) as response:
        assert response.status == 200
        data = await response.json()
    assert data["model"] == "my-gpt"
    assert data["choices"][0]["message"]["content"] == ANSWER

    url = server.make_url(base + "/embeddings").with_query({"api-version": "2024-06-01"})
    async with session.post(url, json={"input": ["x", "y"]}) as response:
        assert response.status == 200
        assert len((await response.json())["data"]) == 2

    for path in ("/chat/completions", "/embeddings"):
        body = {"messages": MESSAGES, "input": "x"}
        async with session.post(server.make_url(base + path), json=body) as response:
            assert response.status == 400
            error = (await response.json())["error"]
        assert "api-version" in error["message"]


async def test_error_429_with_retry_after(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as info:
        await client.chat.completions.create(model="error=429", messages=MESSAGES)
    assert info.value.response.headers["retry-after"] == "1"
    with pytest.raises(openai.RateLimitError) as info:
        await client.chat.completions.create(model="ratelimit=2.5", messages=MESSAGES)
    assert info.value.response.headers["retry-after"] == "2.5"


async def test_error_status_from_model(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        await client.chat.completions.create(model="error=502", messages=MESSAGES)
    assert info.value.status_code == 502


async def test_flaky_alternates(client: openai.AsyncOpenAI) -> None:
    statuses = []
    for _ in range(4):
        try:
            await client.chat.completions.create(model="flaky", messages=MESSAGES)
            statuses.append(200)
        except openai.APIStatusError as exc:
            statuses.append(exc.status_code)
    assert statuses == [503, 200, 503, 200]


async def test_cut_breaks_the_stream(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model="cut",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, finishes = "", []
    with pytest.raises(Exception):  # noqa: B017 - the HTTP client's own incomplete-body error
        async for chunk in stream:
            for choice in chunk.choices:
                text += choice.delta.content or ""
                if choice.finish_reason:
                    finishes.append(choice.finish_reason)
    await stream.close()
    assert finishes == []
    assert text and ANSWER.startswith(text) and text != ANSWER


async def test_cut_raw_stream_has_no_done(
    server: TestServer, session: aiohttp.ClientSession
) -> None:
    body = {"model": "cut", "messages": MESSAGES, "stream": True}
    received = b""
    with pytest.raises(aiohttp.ClientPayloadError):
        async with session.post(server.make_url("/v1/chat/completions"), json=body) as response:
            assert response.status == 200
            async for raw in response.content:
                received += raw
    assert b"data: " in received and b"[DONE]" not in received


async def test_cut_non_stream_drops_connection(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.APIConnectionError):
        await client.chat.completions.create(model="cut", messages=MESSAGES)


async def test_stall_sends_half_then_nothing(
    server: TestServer, session: aiohttp.ClientSession
) -> None:
    body = {"model": "stall", "messages": MESSAGES, "stream": True}
    async with session.post(server.make_url("/v1/chat/completions"), json=body) as response:
        first = await response.content.readline()
        assert first.startswith(b"data: ")
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await response.read()


async def test_latency_and_slow(start: Callable[..., Awaitable[TestServer]]) -> None:
    server = await start(latency_ms=100)
    async with openai.AsyncOpenAI(
        base_url=str(server.make_url("/v1")), api_key="sk-test", max_retries=0
    ) as client:
        began = time.monotonic()
        await client.chat.completions.create(model="slow=100", messages=MESSAGES)
        assert time.monotonic() - began >= 0.2


async def test_error_rate(start: Callable[..., Awaitable[TestServer]]) -> None:
    server = await start(error_rate=1.0, seed=1)
    async with openai.AsyncOpenAI(
        base_url=str(server.make_url("/v1")), api_key="sk-test", max_retries=0
    ) as client:
        with pytest.raises(openai.InternalServerError) as info:
            await client.chat.completions.create(model="mock-gpt", messages=MESSAGES)
    assert info.value.status_code == 500


async def test_error_rate_is_reproducible(
    start: Callable[..., Awaitable[TestServer]], session: aiohttp.ClientSession
) -> None:
    async def statuses() -> list[int]:
        server = await start(error_rate=0.5, seed=42)
        body = {"model": "mock-gpt", "messages": MESSAGES}
        result = []
        for _ in range(12):
            async with session.post(server.make_url("/v1/chat/completions"), json=body) as r:
                result.append(r.status)
        return result

    first = await statuses()
    assert set(first) == {200, 500}
    assert await statuses() == first


async def test_stats_record_requests(server: TestServer, client: openai.AsyncOpenAI) -> None:
    stats = server.app[MOCK_STATS]
    await client.chat.completions.create(
        model="mock-gpt",
        messages=MESSAGES,
        extra_headers={"X-Trace": "abc"},
    )
    await client.models.list()
    assert stats.requests["/v1/chat/completions"] == 1
    assert stats.requests["/v1/models"] == 1
    assert stats.total == 2
    assert stats.last_path == "/v1/models"
    assert stats.last_headers["Authorization"] == "Bearer sk-test"
    await client.chat.completions.create(model="mock-gpt", messages=MESSAGES)
    assert stats.last_body == {"model": "mock-gpt", "messages": MESSAGES}
    assert "x-trace" not in stats.last_headers


# --- Anthropic format ------------------------------------------------------------------


async def test_anthropic_non_stream(server: TestServer, session: aiohttp.ClientSession) -> None:
    body = anthropic_body(system="you are terse")
    async with session.post(server.make_url("/v1/messages"), json=body) as response:
        assert response.status == 200
        data = await response.json()
    assert data["type"] == "message" and data["role"] == "assistant"
    assert data["content"] == [{"type": "text", "text": ANSWER}]
    assert data["stop_reason"] == "end_turn"
    assert data["usage"]["input_tokens"] == 3 + 3  # messages + system prompt
    assert data["usage"]["output_tokens"] == count_tokens(ANSWER)


async def test_anthropic_stream(server: TestServer, session: aiohttp.ClientSession) -> None:
    body = anthropic_body(stream=True, system=[{"type": "text", "text": "be terse"}])
    async with session.post(server.make_url("/v1/messages"), json=body) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        events = await anthropic_events(response)
    names = [name for name, _ in events]
    deltas = names.count("content_block_delta")
    assert deltas >= 2
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        *["content_block_delta"] * deltas,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert all(data["type"] == name for name, data in events)
    text = "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta")
    assert text == ANSWER
    assert events[0][1]["message"]["usage"]["input_tokens"] == 5
    message_delta = events[-2][1]
    assert message_delta["delta"]["stop_reason"] == "end_turn"
    assert message_delta["usage"]["output_tokens"] == count_tokens(ANSWER)


async def test_anthropic_requires_max_tokens(
    server: TestServer, session: aiohttp.ClientSession
) -> None:
    body = anthropic_body()
    del body["max_tokens"]
    async with session.post(server.make_url("/v1/messages"), json=body) as response:
        assert response.status == 400
        data = await response.json()
    assert data["type"] == "error"
    assert data["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("model", "status", "type_"),
    [("error=529", 529, "overloaded_error"), ("error=429", 429, "rate_limit_error")],
)
async def test_anthropic_errors(
    server: TestServer, session: aiohttp.ClientSession, model: str, status: int, type_: str
) -> None:
    async with session.post(server.make_url("/v1/messages"), json=anthropic_body(model)) as r:
        assert r.status == status
        data = await r.json()
        retry_after = r.headers.get("retry-after")
    assert data == {"type": "error", "error": {"type": type_, "message": f"mock error {status}"}}
    assert retry_after == ("1" if status == 429 else None)


async def test_anthropic_flaky(server: TestServer, session: aiohttp.ClientSession) -> None:
    statuses = []
    for _ in range(3):
        async with session.post(server.make_url("/v1/messages"), json=anthropic_body("flaky")) as r:
            statuses.append(r.status)
            if r.status == 529:
                assert (await r.json())["error"]["type"] == "overloaded_error"
    assert statuses == [529, 200, 529]


async def test_anthropic_cut(server: TestServer, session: aiohttp.ClientSession) -> None:
    body = anthropic_body("cut", stream=True)
    received = b""
    with pytest.raises(aiohttp.ClientPayloadError):
        async with session.post(server.make_url("/v1/messages"), json=body) as response:
            async for raw in response.content:
                received += raw
    assert b"event: content_block_delta" in received
    assert b"message_stop" not in received and b"message_delta" not in received


def test_app_has_stats_key() -> None:
    app = create_mock_app(MockServerOptions())
    assert isinstance(app, web.Application)
    assert app[MOCK_STATS].total == 0
