"""A standalone fake upstream: a real HTTP server speaking OpenAI's and Anthropic's wire
formats (chat completions, Responses, Messages), for the demo, the tests and the benchmark.

Answers and faults come from `gateway.providers.mock`: the same messages always give the
same text, and the model name picks the behaviour (`slow=MS`, `chunk_delay=MS`,
`error=STATUS`, `flaky`, `ratelimit=S`, `cut`, `stall`, `words=N`), in both formats.
Server-wide options add latency, a default chunk delay and a seeded random error rate.

Tests read what reached the server from `app[MOCK_STATS]`.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import random
import struct
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.providers.mock import (
    MockBehaviour,
    count_tokens,
    embedding_vector,
    openai_chunks,
    openai_completion,
    prompt_tokens,
    reply_text,
    split_words,
)
from gateway.providers.mock_anthropic import (
    answer_content,
    anthropic_events,
    anthropic_message,
    system_text,
)
from gateway.providers.mock_completions import prompts_of, text_completion, text_completion_events
from gateway.providers.mock_http import (
    SSE_HEADERS,
    BadRequest,
    Wire,
    drop_connection,
    error,
    json_answer,
    wait_disconnect,
)
from gateway.providers.mock_responses import (
    mock_answer,
    mock_tool_call,
    responses_events,
    responses_object,
)

MOCK_MODELS: Final = ("mock-gpt", "mock-claude", "mock-embed", "slow=200+chunk_delay=20", "flaky")


@dataclass(frozen=True)
class MockServerOptions:
    latency_ms: int = 0  # added before every answer
    error_rate: float = 0.0  # this fraction of requests answers 500
    chunk_delay_ms: int = 0  # between stream events, unless the model name says otherwise
    seed: int | None = None  # for the error-rate draws


def _empty_headers() -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict())


@dataclass
class MockStats:
    """What reached the server. `last_*` is the last request other than /healthz."""

    requests: Counter[str] = field(default_factory=Counter)  # by path
    last_path: str = ""
    last_headers: CIMultiDictProxy[str] = field(default_factory=_empty_headers)
    last_body: Any = None  # the parsed JSON body, None when absent or unreadable

    @property
    def total(self) -> int:
        return sum(self.requests.values())


MOCK_STATS: Final = web.AppKey("mock_stats", MockStats)


class _MockServer:
    def __init__(self, options: MockServerOptions, stats: MockStats) -> None:
        self.options = options
        self.stats = stats
        self.rng = random.Random(options.seed)
        self.calls = itertools.count()
        self.flaky_calls: Counter[str] = Counter()

    def _record(self, request: web.Request, body: Any) -> None:
        self.stats.requests[request.path] += 1
        if request.path != "/healthz":
            self.stats.last_path = request.path
            self.stats.last_headers = request.headers
            self.stats.last_body = body

    async def _read(self, request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        self._record(request, body)
        if not isinstance(body, dict):
            raise BadRequest("the request body must be a JSON object")
        return body

    async def _fault(
        self, request: web.Request, wire: Wire, model: str, plan: MockBehaviour
    ) -> web.StreamResponse | None:
        """Waits as configured, then the fault response to answer, if any."""
        delay_ms = self.options.latency_ms + plan.delay_ms
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)
        if self.options.error_rate > 0 and self.rng.random() < self.options.error_rate:
            return error(wire, 500, "mock random error")
        if plan.flaky:
            call = self.flaky_calls[model]
            self.flaky_calls[model] += 1
            if call % 2 == 0:
                status = 529 if wire == "anthropic" else 503
                return error(wire, status, f"mock flaky error {status}")
        if plan.error_status:
            status = plan.error_status
            retry = f"{plan.rate_limit_s or 1:g}" if status == 429 else None
            return error(wire, status, f"mock error {status}", retry)
        if plan.rate_limit_s:
            return error(wire, 429, "mock rate limit", f"{plan.rate_limit_s:g}")
        if plan.stall:
            await wait_disconnect(request)
        if plan.cut or plan.stall:
            drop_connection(request)
            return web.Response()
        return None

    async def _stream(
        self, request: web.Request, events: list[bytes], half: int, plan: MockBehaviour
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers=SSE_HEADERS)
        await response.prepare(request)
        broken = plan.cut or plan.stall
        delay_ms = plan.chunk_delay_ms or self.options.chunk_delay_ms
        try:
            for i, event in enumerate(events[:half] if broken else events):
                if i and delay_ms:
                    await asyncio.sleep(delay_ms / 1000)
                await response.write(event)
        except ConnectionResetError:
            return response
        if plan.stall:
            await wait_disconnect(request)
        if broken:
            drop_connection(request)
        return response

    async def chat(self, request: web.Request) -> web.StreamResponse:
        return await self._chat(request, None)

    async def azure_chat(self, request: web.Request) -> web.StreamResponse:
        return await self._chat(request, request.match_info["deployment"])

    async def _chat(self, request: web.Request, deployment: str | None) -> web.StreamResponse:
        try:
            body = await self._read(request)
            if deployment is not None and not request.query.get("api-version"):
                raise BadRequest("missing required query parameter: api-version")
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages:
                raise BadRequest("'messages' must be a non-empty list")
        except BadRequest as exc:
            return error("openai", 400, str(exc))
        model = deployment or str(body.get("model", ""))
        plan = MockBehaviour.from_model(model)
        stream = bool(body.get("stream"))
        fault = await self._fault(request, "openai", model, plan if not stream else _no_break(plan))
        if fault is not None:
            return fault
        id_ = f"chatcmpl-mock{next(self.calls)}"
        text = reply_text(messages, plan.words)
        tokens = prompt_tokens(messages)
        if not stream:
            return json_answer(openai_completion(model, text, tokens, id_))
        options = body.get("stream_options")
        usage = isinstance(options, dict) and bool(options.get("include_usage"))
        payloads = openai_chunks(model, text, tokens, id_, usage)
        events = [b"data: " + p + b"\n\n" for p in payloads] + [b"data: [DONE]\n\n"]
        return await self._stream(request, events, 1 + len(split_words(text)) // 2, plan)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await self._read(request)
            prompts = prompts_of(body)
            if prompts is None:
                raise BadRequest("'prompt' must be a string or a non-empty list")
        except BadRequest as exc:
            return error("openai", 400, str(exc))
        model = str(body.get("model", ""))
        plan = MockBehaviour.from_model(model)
        stream = bool(body.get("stream"))
        fault = await self._fault(request, "openai", model, plan if not stream else _no_break(plan))
        if fault is not None:
            return fault
        id_ = f"cmpl-mock{next(self.calls)}"
        if not stream:
            return json_answer(text_completion(model, prompts, id_, plan.words))
        options = body.get("stream_options")
        usage = isinstance(options, dict) and bool(options.get("include_usage"))
        events = text_completion_events(model, prompts, id_, plan.words, usage)
        return await self._stream(request, events, len(events) // 2, plan)

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        return await self._embeddings(request, None)

    async def azure_embeddings(self, request: web.Request) -> web.StreamResponse:
        return await self._embeddings(request, request.match_info["deployment"])

    async def _embeddings(self, request: web.Request, deployment: str | None) -> web.StreamResponse:
        try:
            body = await self._read(request)
            if deployment is not None and not request.query.get("api-version"):
                raise BadRequest("missing required query parameter: api-version")
            inputs = body.get("input")
            if not isinstance(inputs, str | list) or not inputs:
                raise BadRequest("'input' must be a string or a non-empty list")
        except BadRequest as exc:
            return error("openai", 400, str(exc))
        model = deployment or str(body.get("model", ""))
        fault = await self._fault(request, "openai", model, MockBehaviour.from_model(model))
        if fault is not None:
            return fault
        dims = body.get("dimensions")
        dims = dims if isinstance(dims, int) and 0 < dims <= 32 else 8
        items = inputs if isinstance(inputs, list) else [inputs]
        vectors: list[Any] = [embedding_vector(str(x), dims) for x in items]
        if body.get("encoding_format") == "base64":  # little-endian float32, as OpenAI does
            vectors = [base64.b64encode(struct.pack(f"<{dims}f", *v)).decode() for v in vectors]
        data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
        tokens = sum(count_tokens(str(x)) for x in items)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return json_answer({"object": "list", "data": data, "model": model, "usage": usage})

    async def messages(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await self._read(request)
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages:
                raise BadRequest("messages: field required (a non-empty list)")
            if not isinstance(body.get("max_tokens"), int):
                raise BadRequest("max_tokens: field required")
        except BadRequest as exc:
            return error("anthropic", 400, str(exc))
        model = str(body.get("model", ""))
        plan = MockBehaviour.from_model(model)
        stream = bool(body.get("stream"))
        fault = await self._fault(
            request, "anthropic", model, plan if not stream else _no_break(plan)
        )
        if fault is not None:
            return fault
        id_ = f"msg_mock{next(self.calls)}"
        text = reply_text(messages, plan.words)
        system = system_text(body.get("system"))
        tokens = prompt_tokens(messages) + (count_tokens(system) if system else 0)
        call = mock_tool_call(body.get("tools"), messages, id_) if plan.tools else None
        if call is not None:  # the `tools` behaviour: call the first tool until answered
            block = {"type": "tool_use", "id": call.call_id, "name": call.name}
            blocks, stop_reason = [{**block, "input": call.arguments}], "tool_use"
        else:
            blocks, stop_reason = answer_content(body, text, id_)
        if not stream:
            return json_answer(anthropic_message(model, blocks, stop_reason, tokens, id_))
        events, half = anthropic_events(model, blocks, stop_reason, tokens, id_)
        return await self._stream(request, events, half, plan)

    async def count_tokens(self, request: web.Request) -> web.StreamResponse:
        """Anthropic's token counter: the same count the mock's answers report."""
        try:
            body = await self._read(request)
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages:
                raise BadRequest("messages: field required (a non-empty list)")
        except BadRequest as exc:
            return error("anthropic", 400, str(exc))
        system = system_text(body.get("system"))
        tokens = prompt_tokens(messages) + (count_tokens(system) if system else 0)
        return json_answer({"input_tokens": tokens})

    async def responses(self, request: web.Request) -> web.StreamResponse:
        """OpenAI's Responses API, stateless: `previous_response_id` is refused."""
        try:
            body = await self._read(request)
            if not isinstance(body.get("input"), str | list) or not body["input"]:
                raise BadRequest("'input' must be a string or a non-empty list")
            if body.get("previous_response_id"):
                raise BadRequest("previous_response_id is not supported by the mock")
        except BadRequest as exc:
            return error("openai", 400, str(exc))
        model = str(body.get("model", ""))
        plan = MockBehaviour.from_model(model)
        stream = bool(body.get("stream"))
        fault = await self._fault(request, "openai", model, plan if not stream else _no_break(plan))
        if fault is not None:
            return fault
        id_ = f"mock{next(self.calls)}"
        answer = mock_answer(body, model, id_, plan.tools, plan.words)
        if not stream:
            return json_answer(responses_object(body, model, id_, answer))
        events, half = responses_events(body, model, id_, answer)
        return await self._stream(request, events, half, plan)

    async def models(self, request: web.Request) -> web.StreamResponse:
        self._record(request, None)
        data = [
            {"id": name, "object": "model", "created": 1700000000, "owned_by": "mock"}
            for name in MOCK_MODELS
        ]
        return json_answer({"object": "list", "data": data})

    async def healthz(self, request: web.Request) -> web.StreamResponse:
        self._record(request, None)
        return web.Response(text="ok")


def _no_break(plan: MockBehaviour) -> MockBehaviour:
    """The plan before headers for a stream: cut and stall happen mid-stream instead."""
    return MockBehaviour(
        delay_ms=plan.delay_ms,
        error_status=plan.error_status,
        flaky=plan.flaky,
        rate_limit_s=plan.rate_limit_s,
    )


def create_mock_app(options: MockServerOptions | None = None) -> web.Application:
    options = options or MockServerOptions()
    stats = MockStats()
    server = _MockServer(options, stats)
    app = web.Application()
    app[MOCK_STATS] = stats
    azure = "/openai/deployments/{deployment}"
    app.router.add_post("/v1/chat/completions", server.chat)
    app.router.add_post(azure + "/chat/completions", server.azure_chat)
    app.router.add_post("/v1/completions", server.completions)
    app.router.add_post("/v1/embeddings", server.embeddings)
    app.router.add_post(azure + "/embeddings", server.azure_embeddings)
    app.router.add_post("/v1/messages", server.messages)
    app.router.add_post("/v1/messages/count_tokens", server.count_tokens)
    app.router.add_post("/v1/responses", server.responses)
    app.router.add_get("/v1/models", server.models)
    app.router.add_get("/healthz", server.healthz)
    return app


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def run_mock_server(host: str, port: int, options: MockServerOptions) -> None:
    """Serves the mock provider until interrupted."""

    def announce(message: str, *_: Any, **__: Any) -> None:
        # aiohttp's "======== Running on URL ========" line, with the real bound port.
        where = message.splitlines()[0].strip("= ").removeprefix("Running on ")
        print(f"mock provider listening on {where}", flush=True)

    web.run_app(
        create_mock_app(options),
        host=host,
        port=port,
        loop=_new_loop(),
        print=announce,
        handler_cancellation=True,
    )
