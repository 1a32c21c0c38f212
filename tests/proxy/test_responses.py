"""`POST /v1/responses` driven by the official OpenAI SDK, against a fake upstream
that speaks the Responses API (an `openai`-type target: native) and one that speaks
Anthropic's Messages API (translated through chat)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import openai
import pytest
from pydantic import BaseModel

from gateway.appkeys import CAPTURE, METRICS
from tests.conftest import Gateway, Upstream
from tests.redis_fixtures import RedisServer

GatewayFactory = Callable[[str], Awaitable[Gateway]]
# route → the upstream path it must reach
ROUTES = {"native": "/v1/responses", "translated": "/v1/messages"}
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}


def config(upstream: Upstream, extra: str = "") -> str:
    return f"""
        [providers.oai]
        type = "openai"
        base_url = "{upstream.base_url}"
        api_key = "sk-upstream-secret"

        [providers.anth]
        type = "anthropic"
        base_url = "{upstream.root_url}"
        api_key = "sk-upstream-secret"

        [models.native]
        targets = [{{ provider = "oai", model = "mock-gpt+tools" }}]

        [models.translated]
        targets = [{{ provider = "anth", model = "mock-claude+tools" }}]

        [models.mixed]
        targets = [
          {{ provider = "oai", model = "error=500" }},
          {{ provider = "anth", model = "mock-claude+tools" }},
        ]

        [models.mixed_back]
        targets = [
          {{ provider = "anth", model = "error=500" }},
          {{ provider = "oai", model = "mock-gpt+tools" }},
        ]

        [prompts.helper]
        model = "translated"
        messages = [{{ role = "system", content = "You help with {{{{topic}}}}." }}]

        [[keys]]
        name = "app"
        sha256 = "{{key_sha256}}"

        [[keys]]
        name = "other"
        sha256 = "{_other_sha()}"
        {extra}
    """


OTHER_TOKEN = "sk-other-client-token"


def _other_sha() -> str:
    return hashlib.sha256(OTHER_TOKEN.encode()).hexdigest()


@pytest.fixture
async def gw(gateway_factory: GatewayFactory, upstream: Upstream) -> Gateway:
    return await gateway_factory(config(upstream))


@pytest.fixture
async def client(gw: Gateway) -> AsyncIterator[openai.AsyncOpenAI]:
    async with gw.client() as sdk:
        yield sdk


@pytest.mark.parametrize("route", ROUTES)
async def test_create_answers_a_response_object_with_usage(
    gw: Gateway, client: openai.AsyncOpenAI, upstream: Upstream, route: str
) -> None:
    raw = await client.responses.with_raw_response.create(
        model=route, input="hello there", instructions="Be brief."
    )
    response = raw.parse()
    assert raw.headers["X-Request-Id"]
    assert raw.headers["X-Gateway-Route"] == route
    assert upstream.stats.last_path == ROUTES[route]
    assert response.object == "response"
    assert response.status == "completed"
    assert response.output_text == "Mock answer to: hello there"
    assert response.instructions == "Be brief."
    assert response.usage is not None
    assert response.usage.output_tokens == 5
    assert response.usage.total_tokens == response.usage.input_tokens + 5
    sent = upstream.stats.last_body
    if route == "native":  # as the client sent it, model replaced
        assert sent["model"] == "mock-gpt+tools"
        assert sent["instructions"] == "Be brief."
        assert sent["input"] == [{"type": "message", "role": "user", "content": "hello there"}]
    else:
        assert sent["system"] == "Be brief."
        assert sent["messages"] == [
            {"role": "user", "content": [{"type": "text", "text": "hello there"}]}
        ]


@pytest.mark.parametrize("route", ROUTES)
async def test_stream_gives_the_responses_event_stream(
    gw: Gateway, client: openai.AsyncOpenAI, upstream: Upstream, route: str
) -> None:
    stream = await client.responses.create(model=route, input="hello there", stream=True)
    events = [event async for event in stream]
    kinds = [event.type for event in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == "Mock answer to: hello there"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    completed = events[-1]
    assert completed.type == "response.completed"
    assert completed.response.output_text == "Mock answer to: hello there"
    assert completed.response.usage is not None
    assert completed.response.usage.output_tokens == 5
    assert upstream.stats.last_path == ROUTES[route]


@pytest.mark.parametrize("route", ROUTES)
async def test_the_sdk_stream_helper_assembles_the_final_response(
    gw: Gateway, client: openai.AsyncOpenAI, route: str
) -> None:
    async with client.responses.stream(model=route, input="hi") as stream:
        texts = [e.delta async for e in stream if e.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    assert "".join(texts) == final.output_text == "Mock answer to: hi"


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("stream", [False, True])
async def test_tool_round_trip_with_previous_response_id(
    gw: Gateway, client: openai.AsyncOpenAI, upstream: Upstream, route: str, stream: bool
) -> None:
    first = await _create(client, stream, model=route, input="Paris?", tools=[WEATHER])
    (call,) = first.output
    assert call.type == "function_call"
    assert call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Paris?"}
    output = {"type": "function_call_output", "call_id": call.call_id, "output": "18C, sunny"}
    second = await _create(
        client,
        stream,
        model=route,
        previous_response_id=first.id,
        input=[output],
        tools=[WEATHER],
    )
    assert second.output_text == "Mock answer using: 18C, sunny"
    sent = upstream.stats.last_body
    if route == "native":  # the gateway sends the whole conversation: the target keeps none
        assert "previous_response_id" not in sent
        kinds = [item.get("type", "message") for item in sent["input"]]
        assert kinds == ["message", "function_call", "function_call_output"]
    else:
        assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
        assert sent["messages"][1]["content"][0]["type"] == "tool_use"
        assert sent["messages"][2]["content"][0]["tool_use_id"] == call.call_id


async def _create(client: openai.AsyncOpenAI, stream: bool, **kwargs: Any) -> Any:
    if not stream:
        return await client.responses.create(**kwargs)
    async with client.responses.stream(**kwargs) as events:
        return await events.get_final_response()


async def test_a_conversation_goes_on_across_three_turns(
    gw: Gateway, client: openai.AsyncOpenAI, upstream: Upstream
) -> None:
    one = await client.responses.create(model="translated", input="first")
    two = await client.responses.create(
        model="translated", input="second", previous_response_id=one.id
    )
    await client.responses.create(model="translated", input="third", previous_response_id=two.id)
    texts = [block["text"] for m in upstream.stats.last_body["messages"] for block in m["content"]]
    assert texts == [
        "first",
        "Mock answer to: first",
        "second",
        "Mock answer to: second",
        "third",
    ]


class Weather(BaseModel):
    city: str
    celsius: int


async def test_structured_output_parses_into_a_model(
    gw: Gateway, client: openai.AsyncOpenAI, upstream: Upstream
) -> None:
    parsed = await client.responses.parse(model="native", input="Lyon", text_format=Weather)
    assert isinstance(parsed.output_parsed, Weather)
    assert parsed.output_parsed.celsius == 1
    text_format = upstream.stats.last_body["text"]["format"]
    assert text_format["type"] == "json_schema"
    assert text_format["name"] == "Weather"
    assert text_format["strict"] is True


async def test_unknown_previous_response_is_a_400(gw: Gateway, client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(model="native", input="hi", previous_response_id="resp_nope")
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["code"] == "previous_response_not_found"
    assert error["param"] == "previous_response_id"


async def test_a_response_not_stored_or_of_another_key_is_not_found(
    gw: Gateway, client: openai.AsyncOpenAI
) -> None:
    unstored = await client.responses.create(model="translated", input="hi", store=False)
    stored = await client.responses.create(model="translated", input="hi")
    other = gw.client(api_key=OTHER_TOKEN)
    async with other:
        await _not_found_for(client, other, unstored.id, stored.id)


async def _not_found_for(
    client: openai.AsyncOpenAI, other: openai.AsyncOpenAI, unstored: str, stored: str
) -> None:
    for asker, previous in ((client, unstored), (other, stored)):
        with pytest.raises(openai.BadRequestError) as caught:
            await asker.responses.create(
                model="translated", input="more", previous_response_id=previous
            )
        assert caught.value.code == "previous_response_not_found"


@pytest.mark.parametrize("route", ["mixed", "mixed_back"])
@pytest.mark.parametrize("stream", [False, True])
async def test_failover_across_target_types(
    gw: Gateway, client: openai.AsyncOpenAI, route: str, stream: bool
) -> None:
    raw = await client.responses.with_raw_response.create(model=route, input="hello", stream=stream)
    assert raw.headers["X-Gateway-Provider"] == ("anth" if route == "mixed" else "oai")
    assert int(raw.headers["X-Gateway-Attempts"]) >= 2  # the failing target, retried
    assert raw.headers["X-Request-Id"]
    if stream:
        events = [e async for e in raw.parse()]
        text = events[-1].response.output_text
    else:
        text = raw.parse().output_text
    assert text == "Mock answer to: hello"


async def test_prompts_apply_to_responses(
    gw: Gateway, client: openai.AsyncOpenAI, upstream: Upstream
) -> None:
    response = await client.responses.create(
        model="prompt:helper",
        input="hi",
        extra_body={"prompt_variables": {"topic": "maps"}},
    )
    assert response.output_text == "Mock answer to: hi"
    assert upstream.stats.last_body["system"] == "You help with maps."


async def test_bad_input_is_a_400(gw: Gateway, client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(model="native", input=[])
    assert caught.value.body["param"] == "input"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as caught:
        ten: Any = "ten"
        await client.responses.create(model="native", input="hi", max_output_tokens=ten)
    assert caught.value.body["param"] == "max_output_tokens"  # type: ignore[index]


async def test_builtin_tools_go_only_to_native_targets(
    gw: Gateway, client: openai.AsyncOpenAI, upstream: Upstream
) -> None:
    tools: Any = [{"type": "web_search"}]
    await client.responses.create(model="native", input="news?", tools=tools)
    assert upstream.stats.last_body["tools"] == [{"type": "web_search"}]
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(model="translated", input="news?", tools=tools)
    assert caught.value.body["param"] == "tools"  # type: ignore[index]


async def test_metrics_count_responses_by_mode(gw: Gateway, client: openai.AsyncOpenAI) -> None:
    await client.responses.create(model="native", input="hi")
    await client.responses.create(model="translated", input="hi", stream=True)
    registry = gw.app[METRICS].registry
    for route, mode in (("native", "native"), ("translated", "translated")):
        labels = {"api": "responses", "route": route, "mode": mode, "status": "200"}
        assert registry.get_sample_value("gateway_api_requests_total", labels) == 1
    labels = {"route": "translated", "prompt": "", "version": "", "provider": "anth"}
    labels |= {"status": "200", "role": "primary"}
    assert registry.get_sample_value("gateway_requests_total", labels) == 1


async def test_previous_response_id_on_redis(
    gateway_factory: GatewayFactory, upstream: Upstream, redis_server: RedisServer
) -> None:
    extra = f'\n[redis]\nurl = "{redis_server.url}"\n'
    one = await gateway_factory(config(upstream, extra))
    two = await gateway_factory(config(upstream, extra))  # another replica
    async with one.client() as c1, two.client() as c2:
        await _follow_up_elsewhere(c1, c2, redis_server)


async def _follow_up_elsewhere(
    one: openai.AsyncOpenAI, two: openai.AsyncOpenAI, redis_server: RedisServer
) -> None:
    first = await one.responses.create(model="native", input="Paris?", tools=[WEATHER])
    (call,) = first.output
    assert call.type == "function_call"
    ttl = int(redis_server.command("PTTL", f"gw:response:{first.id}").strip(b":\r\n"))
    assert 0 < ttl <= 3600 * 1000
    output = {"type": "function_call_output", "call_id": call.call_id, "output": "rain"}
    second = await two.responses.create(
        model="translated", input=[output], previous_response_id=first.id, tools=[WEATHER]
    )
    assert second.output_text == "Mock answer using: rain"
    redis_server.command("DEL", f"gw:response:{first.id}")  # as when its TTL runs out
    with pytest.raises(openai.BadRequestError) as caught:
        await two.responses.create(model="translated", input="more", previous_response_id=first.id)
    assert caught.value.code == "previous_response_not_found"


@pytest.mark.parametrize("stream", [False, True])
async def test_responses_are_captured_in_chat_form(
    gateway_factory: GatewayFactory, upstream: Upstream, stream: bool
) -> None:
    gw = await gateway_factory(config(upstream, "\n[capture]\nenabled = true\n"))
    async with gw.client() as client:
        raw = await client.responses.with_raw_response.create(
            model="native", input="hello", instructions="Be brief.", stream=stream
        )
        if stream:
            _ = [event async for event in raw.parse()]
    request_id = raw.headers["X-Request-Id"]
    capture = gw.app[CAPTURE]
    await capture.flush()
    record = await capture.log.get(request_id)
    assert record is not None
    assert record["request"]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hello"},
    ]
    assert record["answer"] == "Mock answer to: hello"
    assert record["stream"] is stream
