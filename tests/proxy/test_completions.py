"""`POST /v1/completions` with the official OpenAI SDK: passed through to OpenAI-type
targets (answer, stream, usage, cost), skipped on targets without the endpoint."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Gateway, Upstream

Start = Callable[[str], Awaitable[Gateway]]


def _config(upstream: Upstream) -> str:
    return f"""
        [server]
        request_timeout_s = 30

        [providers.oa]
        type = "openai"
        base_url = "{upstream.base_url}"
        api_key = "sk-oa-upstream"

        [providers.an]
        type = "anthropic"
        base_url = "{upstream.root_url}"
        api_key = "sk-an-upstream"

        [models.instruct]
        targets = [
          {{ provider = "an", model = "mock-claude" }},
          {{ provider = "oa", model = "mock-instruct" }},
        ]

        [models.claude]
        targets = [{{ provider = "an", model = "mock-claude" }}]

        [pricing."mock-instruct"]
        input_per_mtok = 1.5
        output_per_mtok = 2.0

        [[keys]]
        name = "test-app"
        sha256 = "{{key_sha256}}"
    """


@pytest.fixture
async def gw(gateway_factory: Start, upstream: Upstream) -> Gateway:
    return await gateway_factory(_config(upstream))


@pytest.fixture
async def client(gw: Gateway) -> AsyncIterator[openai.AsyncOpenAI]:
    async with gw.client() as client:
        yield client


async def _sample(gw: Gateway, name: str, **match: str) -> float:
    async with aiohttp.ClientSession() as session, session.get(gw.url("/metrics")) as response:
        page = await response.text()
    return sum(
        sample.value
        for family in text_string_to_metric_families(page)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in match.items())
    )


async def test_completion_passes_through_with_usage_and_cost(
    gw: Gateway, client: openai.AsyncOpenAI, upstream: Upstream
) -> None:
    raw = await client.completions.with_raw_response.create(
        model="instruct", prompt="Say this is a test", max_tokens=7
    )
    completion = raw.parse()
    assert completion.object == "text_completion"
    assert completion.choices[0].text == "Mock answer to: Say this is a test"
    assert completion.usage is not None and completion.usage.prompt_tokens == 5
    assert raw.headers["X-Gateway-Provider"] == "oa"  # the anthropic target was skipped
    assert raw.headers["X-Gateway-Attempts"] == "1"
    assert upstream.stats.requests == {"/v1/completions": 1}
    assert upstream.stats.last_body == {
        "model": "mock-instruct",
        "prompt": "Say this is a test",
        "max_tokens": 7,
    }
    assert upstream.stats.last_headers["Authorization"] == "Bearer sk-oa-upstream"
    tokens = await _sample(gw, "gateway_tokens_total", provider="oa", type="input")
    assert tokens == 5
    assert await _sample(gw, "gateway_cost_usd_total", provider="oa") > 0


async def test_a_list_of_prompts_gets_a_choice_each(client: openai.AsyncOpenAI) -> None:
    completion = await client.completions.create(model="instruct", prompt=["one", "two"])
    assert [c.index for c in completion.choices] == [0, 1]
    assert completion.choices[1].text == "Mock answer to: two"


async def test_streamed_completion(
    gw: Gateway, client: openai.AsyncOpenAI, upstream: Upstream
) -> None:
    stream = await client.completions.create(
        model="instruct",
        prompt="Say this is a test",
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage = "", None
    async for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].text
        if chunk.usage is not None:
            usage = chunk.usage
    assert text == "Mock answer to: Say this is a test"
    assert usage is not None and usage.completion_tokens == 8
    assert upstream.stats.last_body["stream_options"] == {"include_usage": True}
    assert await _sample(gw, "gateway_tokens_total", provider="oa", type="output") == 8


async def test_stream_without_usage_asked_still_counts_it(
    gw: Gateway, client: openai.AsyncOpenAI
) -> None:
    stream = await client.completions.create(model="instruct", prompt="hi", stream=True)
    chunks = [chunk async for chunk in stream]
    assert all(chunk.usage is None for chunk in chunks)  # the client did not ask for it
    assert await _sample(gw, "gateway_tokens_total", provider="oa", type="output") > 0


async def test_no_target_with_the_endpoint_is_a_400_naming_it(
    gw: Gateway, client: openai.AsyncOpenAI, upstream: Upstream
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await client.completions.create(model="claude", prompt="hi")
    assert caught.value.code == "unsupported_endpoint"
    assert "/v1/completions" in caught.value.message
    assert upstream.stats.total == 0
    assert await _sample(gw, "gateway_provider_errors_total", reason="unsupported") == 1


async def test_bad_prompts_are_refused(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await client.completions.create(model="instruct", prompt=None)  # type: ignore[arg-type]
    assert caught.value.param == "prompt"
    with pytest.raises(openai.NotFoundError):  # prompts work here: this one is not known
        await client.completions.create(model="prompt:support", prompt="hi")
