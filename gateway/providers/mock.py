"""The built-in mock provider: deterministic answers in OpenAI's wire format, with no
network, and failures chosen by the model name so every fault is reproducible from
config.

A mock model name is `+`-separated behaviours, each `name` or `name=value`:

    echo                   answer quoting the last user message (the default)
    slow=MS                wait MS ms before the answer (default 1000)
    chunk_delay=MS         wait MS ms between stream chunks
    error=STATUS           always answer STATUS with an OpenAI error body
    flaky                  fail every other request with 503
    ratelimit=S            answer 429 with `Retry-After: S` (default 1)
    cut                    stream half the answer, then drop the connection
    stall                  stream half the answer, then send nothing more
    words=N                answer with N words
    tools                  call the request's first tool, until a tool result comes back

e.g. `demo`, `slow=200+chunk_delay=20`, `flaky`, `error=500`, `cut`.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.errors import UpstreamError, error_body
from gateway.providers.base import UpstreamRequest

_WORDS = [
    "the",
    "gateway",
    "routes",
    "each",
    "request",
    "to",
    "a",
    "prompt",
    "version",
    "and",
    "relays",
    "the",
    "answer",
    "while",
    "it",
    "counts",
    "tokens",
    "cost",
    "and",
    "latency",
    "for",
    "every",
    "route",
    "and",
    "provider",
]


@dataclass(frozen=True)
class MockBehaviour:
    delay_ms: int = 0
    chunk_delay_ms: int = 0
    error_status: int = 0
    flaky: bool = False
    rate_limit_s: float = 0.0
    cut: bool = False
    stall: bool = False
    words: int = 0
    tools: bool = False

    @classmethod
    def from_model(cls, model: str) -> MockBehaviour:
        values: dict[str, Any] = {}
        for part in model.split("+"):
            name, _, value = part.partition("=")
            try:
                if name == "slow":
                    values["delay_ms"] = int(value or 1000)
                elif name == "chunk_delay":
                    values["chunk_delay_ms"] = int(value or 10)
                elif name == "error":
                    values["error_status"] = int(value or 500)
                elif name == "ratelimit":
                    values["rate_limit_s"] = float(value or 1)
                elif name == "words":
                    values["words"] = int(value or 0)
                elif name in ("flaky", "cut", "stall", "tools"):
                    values[name] = True
            except ValueError:
                continue  # an unreadable value keeps the default behaviour
        return cls(**values)


def reply_text(messages: Any, words: int = 0) -> str:
    """A deterministic answer: the same messages always give the same text. After a
    tool's result (chat's `tool` message, Anthropic's `tool_result` block) the answer
    quotes the result."""
    result = tool_result(messages)
    if result is not None:
        return f"Mock answer using: {result[:200]}"
    last = ""
    if isinstance(messages, list):
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") == "user":
                content = message.get("content")
                last = content if isinstance(content, str) else _text_parts(content)
                break
    if words:
        seed = int(hashlib.sha256(last.encode()).hexdigest()[:8], 16)
        return " ".join(_WORDS[(seed + i) % len(_WORDS)] for i in range(words))
    return f"Mock answer to: {last[:200]}" if last else "Mock answer."


def tool_result(messages: Any) -> str | None:
    """The text of a tool result that is the last message, if it is one."""
    last = messages[-1] if isinstance(messages, list) and messages else None
    if not isinstance(last, dict):
        return None
    content = last.get("content")
    if last.get("role") == "tool":
        return content if isinstance(content, str) else _text_parts(content)
    if last.get("role") == "user" and isinstance(content, list):
        for block in content:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                inner = block.get("content")
                return inner if isinstance(inner, str) else _text_parts(inner)
    return None


def _text_parts(content: Any) -> str:
    if not isinstance(content, list):
        return ""
    return " ".join(p.get("text", "") for p in content if isinstance(p, dict))


def count_tokens(text: str) -> int:
    """A stand-in tokenizer: one token per word, at least one."""
    return max(1, len(text.split()))


def prompt_tokens(messages: Any) -> int:
    if not isinstance(messages, list):
        return 1
    total = 0
    for message in messages:
        if isinstance(message, dict):
            content = message.get("content")
            total += count_tokens(content if isinstance(content, str) else _text_parts(content))
    return max(total, 1)


def split_words(text: str) -> list[str]:
    words = text.split(" ")
    return [w if i == 0 else " " + w for i, w in enumerate(words)]


def openai_completion(model: str, text: str, input_tokens: int, id_: str) -> dict[str, Any]:
    output = count_tokens(text)
    return {
        "id": id_,
        "object": "chat.completion",
        "created": 1700000000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": input_tokens,
            "completion_tokens": output,
            "total_tokens": input_tokens + output,
        },
    }


def openai_chunks(
    model: str, text: str, input_tokens: int, id_: str, include_usage: bool
) -> list[bytes]:
    """The `data:` payloads of a streamed answer, [DONE] excluded."""

    def chunk(delta: dict[str, Any], finish: str | None) -> bytes:
        return orjson.dumps(
            {
                "id": id_,
                "object": "chat.completion.chunk",
                "created": 1700000000,
                "model": model,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }
        )

    payloads = [chunk({"role": "assistant", "content": ""}, None)]
    payloads += [chunk({"content": word}, None) for word in split_words(text)]
    payloads.append(chunk({}, "stop"))
    if include_usage:
        output = count_tokens(text)
        payloads.append(
            orjson.dumps(
                {
                    "id": id_,
                    "object": "chat.completion.chunk",
                    "created": 1700000000,
                    "model": model,
                    "choices": [],
                    "usage": {
                        "prompt_tokens": input_tokens,
                        "completion_tokens": output,
                        "total_tokens": input_tokens + output,
                    },
                }
            )
        )
    return payloads


def embedding_vector(text: str, dims: int = 8) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [round(b / 255.0, 6) for b in digest[:dims]]


class MockResponse:
    __slots__ = ("_body", "_chunks", "_payloads", "_plan", "headers", "status")

    def __init__(
        self,
        status: int,
        body: bytes = b"",
        payloads: list[bytes] | None = None,
        plan: MockBehaviour | None = None,
        headers: Mapping[str, str] | None = None,
    ):
        self.status = status
        self.headers: Mapping[str, str] = headers or {"Content-Type": "application/json"}
        self._body = body
        self._payloads = payloads
        self._plan = plan or MockBehaviour()
        self._chunks: AsyncIterator[bytes] | None = None

    async def read(self) -> bytes:
        return self._body

    async def next_chunk(self) -> bytes:
        if self._chunks is None:
            self._chunks = self._stream()
        return await anext(self._chunks, b"")

    async def _stream(self) -> AsyncIterator[bytes]:
        payloads = self._payloads or []
        half = len(payloads) // 2 if (self._plan.cut or self._plan.stall) else len(payloads)
        for i, payload in enumerate(payloads[:half]):
            if i and self._plan.chunk_delay_ms:
                await asyncio.sleep(self._plan.chunk_delay_ms / 1000)
            yield b"data: " + payload + b"\n\n"
        if self._plan.cut:
            raise UpstreamError("stream_cut", "provider stream broke: mock cut")
        if self._plan.stall:
            await asyncio.Event().wait()  # never set: the idle timeout ends it
        yield b"data: [DONE]\n\n"

    def release(self) -> None:
        return None


class MockTransport:
    """Answers in-process, as an OpenAI-compatible provider would over HTTP."""

    def __init__(self) -> None:
        self._calls = itertools.count()

    async def send(self, request: UpstreamRequest, connect_timeout_s: float) -> MockResponse:
        body = orjson.loads(request.body)
        model = str(body.get("model", ""))
        plan = MockBehaviour.from_model(model)
        call = next(self._calls)
        if plan.delay_ms:
            await asyncio.sleep(plan.delay_ms / 1000)
        if plan.error_status or (plan.flaky and call % 2 == 0):
            status = plan.error_status or 503
            return MockResponse(status, error_body(f"mock error {status}", "api_error"))
        if plan.rate_limit_s:
            return MockResponse(
                429,
                error_body("mock rate limit", "rate_limit_error"),
                headers={"Retry-After": f"{plan.rate_limit_s:g}"},
            )
        id_ = f"chatcmpl-mock{call}"
        if request.url.endswith("/embeddings"):
            inputs = body.get("input")
            items = inputs if isinstance(inputs, list) else [inputs]
            data = [
                {"object": "embedding", "index": i, "embedding": embedding_vector(str(x))}
                for i, x in enumerate(items)
            ]
            tokens = sum(count_tokens(str(x)) for x in items)
            return MockResponse(
                200,
                orjson.dumps(
                    {
                        "object": "list",
                        "data": data,
                        "model": model,
                        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                    }
                ),
            )
        messages = body.get("messages")
        text = reply_text(messages, plan.words)
        tokens = prompt_tokens(messages)
        if body.get("stream"):
            options = body.get("stream_options") or {}
            payloads = openai_chunks(model, text, tokens, id_, bool(options.get("include_usage")))
            return MockResponse(
                200, payloads=payloads, plan=plan, headers={"Content-Type": "text/event-stream"}
            )
        if plan.cut or plan.stall:
            raise UpstreamError("server_error", "provider closed the connection: mock cut")
        return MockResponse(200, orjson.dumps(openai_completion(model, text, tokens, id_)))
