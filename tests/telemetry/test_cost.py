"""Tokens and cost in /metrics equal the pricing table times the usage the provider reported,
for both wire formats, streaming or not, cached input included; a model with no price
counts its tokens and `gateway_unpriced_requests_total`, and never a cost."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client.parser import text_string_to_metric_families

from gateway.providers.mock import count_tokens, prompt_tokens, reply_text
from tests.conftest import Gateway, Upstream

GatewayFactory = Callable[[str], Awaitable[Gateway]]
AiohttpServer = Callable[..., Awaitable[TestServer]]

QUESTION = [{"role": "user", "content": "alpha beta gamma"}]  # 3 tokens for the fake
# Prices in USD per million tokens, different per model so a mix-up shows.
GPT = {"model": "words=6", "in": 2.5, "out": 10.0, "cached": 1.25}
CLAUDE = {"model": "words=5", "in": 3.0, "out": 15.0, "cached": 0.3}


def _pricing(price: dict[str, Any]) -> str:
    return f"""
        [pricing."{price["model"]}"]
        input_per_mtok = {price["in"]}
        output_per_mtok = {price["out"]}
        cached_input_per_mtok = {price["cached"]}
    """


def _config(openai_url: str, anthropic_url: str, extra: str = "") -> str:
    return f"""
        [server]
        request_timeout_s = 30

        [providers.fake-openai]
        type = "openai"
        base_url = "{openai_url}"
        api_key = "sk-upstream"

        [providers.fake-anthropic]
        type = "anthropic"
        base_url = "{anthropic_url}"
        api_key = "sk-ant-upstream"

        [models.gpt]
        targets = [{{ provider = "fake-openai", model = "{GPT["model"]}" }}]

        [models.claude]
        targets = [{{ provider = "fake-anthropic", model = "{CLAUDE["model"]}" }}]

        [[keys]]
        name = "test-app"
        sha256 = "{{key_sha256}}"
        {_pricing(GPT)}
        {_pricing(CLAUDE)}
        {extra}
    """


async def _samples(
    gw: Gateway, name: str, **match: str
) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples of metric `name` (the sample's own name, e.g. `..._total`) whose
    labels include `match`, read from GET /metrics."""
    async with aiohttp.ClientSession() as session, session.get(gw.url("/metrics")) as response:
        assert response.status == 200
        page = await response.text()
    found = {}
    for family in text_string_to_metric_families(page):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in match.items()):
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


async def _total(gw: Gateway, name: str, **match: str) -> float:
    return sum((await _samples(gw, name, **match)).values())


async def _ask(gw: Gateway, route: str, stream: bool) -> Any:
    """One chat request through the SDK; the usage the client saw, if it asked for it."""
    async with gw.client() as client:
        if not stream:
            completion = await client.chat.completions.create(model=route, messages=QUESTION)
            return completion.usage
        chunks = await client.chat.completions.create(
            model=route,
            messages=QUESTION,
            stream=True,
            stream_options={"include_usage": True},
        )
        usage = None
        async for chunk in chunks:
            usage = chunk.usage or usage
        return usage


def _cost(price: dict[str, Any], uncached: int, cached: int, output: int) -> float:
    return (uncached * price["in"] + cached * price["cached"] + output * price["out"]) / 1e6


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("route", ["gpt", "claude"])
async def test_tokens_and_cost_equal_price_times_reported_usage(
    gateway_factory: GatewayFactory, upstream: Upstream, route: str, stream: bool
) -> None:
    price = GPT if route == "gpt" else CLAUDE
    gw = await gateway_factory(_config(upstream.base_url, upstream.root_url))
    await _ask(gw, route, stream)
    # What the fake answered, from what it was sent (its counting is deterministic).
    sent = upstream.stats.last_body
    assert upstream.stats.last_path == (
        "/v1/chat/completions" if route == "gpt" else "/v1/messages"
    )
    words = int(price["model"].removeprefix("words="))
    input_tokens = prompt_tokens(sent["messages"])
    output_tokens = count_tokens(reply_text(sent["messages"], words))
    assert (input_tokens, output_tokens) == (3, words)

    labels = {"route": route, "model": price["model"], "key": "test-app", "role": "primary"}
    assert await _total(gw, "gateway_tokens_total", type="input", **labels) == input_tokens
    assert await _total(gw, "gateway_tokens_total", type="output", **labels) == output_tokens
    assert await _samples(gw, "gateway_tokens_total", type="cached_input") == {}
    cost = await _samples(gw, "gateway_cost_usd_total", **labels)
    assert list(cost.values()) == [pytest.approx(_cost(price, input_tokens, 0, output_tokens))]
    assert await _samples(gw, "gateway_unpriced_requests_total") == {}

    # A second request adds the same again: counters accumulate per request.
    await _ask(gw, route, not stream)
    assert await _total(gw, "gateway_tokens_total", type="output", **labels) == 2 * output_tokens
    assert await _total(gw, "gateway_cost_usd_total", **labels) == pytest.approx(
        2 * _cost(price, input_tokens, 0, output_tokens)
    )


# A provider that reports cache reads, which the mock never does: 1000 input tokens of
# which 800 come from the cache, 50 output tokens, in each wire format.
UNCACHED, CACHED, OUTPUT = 200, 800, 50


def _sse(payload: dict[str, Any], event: str | None = None) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + orjson.dumps(payload) + b"\n\n"


async def _openai_with_cache(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    usage = {
        "prompt_tokens": UNCACHED + CACHED,
        "completion_tokens": OUTPUT,
        "total_tokens": UNCACHED + CACHED + OUTPUT,
        "prompt_tokens_details": {"cached_tokens": CACHED},
    }
    base = {"id": "chatcmpl-cache", "created": 1700000000, "model": body["model"]}
    if not body.get("stream"):
        message = {"role": "assistant", "content": "Hello"}
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        return web.json_response(
            {**base, "object": "chat.completion", "choices": [choice], "usage": usage}
        )
    # The gateway asks for usage on a stream whether the client did or not.
    assert body["stream_options"] == {"include_usage": True}
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    chunk = {**base, "object": "chat.completion.chunk"}
    for delta, finish in (
        ({"role": "assistant", "content": ""}, None),
        ({"content": "Hello"}, None),
    ):
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        await response.write(_sse({**chunk, "choices": [choice]}))
    await response.write(
        _sse({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    )
    await response.write(_sse({**chunk, "choices": [], "usage": usage}) + b"data: [DONE]\n\n")
    return response


async def _anthropic_with_cache(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    # Anthropic counts cache reads apart from `input_tokens`.
    usage = {
        "input_tokens": UNCACHED,
        "cache_read_input_tokens": CACHED,
        "cache_creation_input_tokens": 0,
        "output_tokens": OUTPUT,
    }
    message = {
        "id": "msg_cache",
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "stop_sequence": None,
    }
    if not body.get("stream"):
        text = [{"type": "text", "text": "Hello"}]
        return web.json_response(
            {**message, "content": text, "stop_reason": "end_turn", "usage": usage}
        )
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
    events = [
        ("message_start", {"message": start}),
        ("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "Hello"}}),
        ("content_block_stop", {"index": 0}),
        (
            "message_delta",
            {"delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": OUTPUT}},
        ),
        ("message_stop", {}),
    ]
    for name, fields in events:
        await response.write(_sse({"type": name, **fields}, event=name))
    return response


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("route", ["gpt", "claude"])
async def test_cached_input_tokens_are_priced_at_the_cached_rate(
    gateway_factory: GatewayFactory, aiohttp_server: AiohttpServer, route: str, stream: bool
) -> None:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", _openai_with_cache)
    app.router.add_post("/v1/messages", _anthropic_with_cache)
    fake = await aiohttp_server(app)
    root = str(fake.make_url("")).rstrip("/")
    gw = await gateway_factory(_config(root + "/v1", root))
    usage = await _ask(gw, route, stream)
    # The client sees OpenAI's usage shape whichever provider answered.
    assert usage.prompt_tokens == UNCACHED + CACHED
    assert usage.completion_tokens == OUTPUT
    assert usage.prompt_tokens_details.cached_tokens == CACHED

    price = GPT if route == "gpt" else CLAUDE
    labels = {"route": route, "model": price["model"], "key": "test-app"}
    assert await _total(gw, "gateway_tokens_total", type="input", **labels) == UNCACHED
    assert await _total(gw, "gateway_tokens_total", type="cached_input", **labels) == CACHED
    assert await _total(gw, "gateway_tokens_total", type="output", **labels) == OUTPUT
    expected = _cost(price, UNCACHED, CACHED, OUTPUT)
    assert await _total(gw, "gateway_cost_usd_total", **labels) == pytest.approx(expected)
    # Not the price of 1000 uncached tokens: the cache discount is applied.
    assert expected < _cost(price, UNCACHED + CACHED, 0, OUTPUT)


async def test_unpriced_model_counts_tokens_and_no_cost(
    gateway_factory: GatewayFactory, upstream: Upstream
) -> None:
    unpriced = "words=4"  # no [pricing] entry
    extra = f"""
        [models.local]
        targets = [{{ provider = "fake-openai", model = "{unpriced}" }}]
    """
    gw = await gateway_factory(_config(upstream.base_url, upstream.root_url, extra))
    await _ask(gw, "local", stream=False)
    await _ask(gw, "local", stream=True)
    await _ask(gw, "gpt", stream=False)  # a priced model on the same gateway

    labels = {"route": "local", "model": unpriced, "provider": "fake-openai", "key": "test-app"}
    assert await _total(gw, "gateway_tokens_total", type="input", **labels) == 2 * 3
    assert await _total(gw, "gateway_tokens_total", type="output", **labels) == 2 * 4
    assert await _samples(gw, "gateway_unpriced_requests_total") == {
        (("model", unpriced), ("provider", "fake-openai")): 2.0
    }
    # No cost series at all for it (never a wrong zero), while the priced model has one.
    assert await _samples(gw, "gateway_cost_usd_total", model=unpriced) == {}
    assert await _total(gw, "gateway_cost_usd_total", model=GPT["model"]) == pytest.approx(
        _cost(GPT, 3, 0, 6)
    )
