"""`POST /v1/messages` driven by the official Anthropic SDK: native to an anthropic-type
fake upstream and translated through chat for an openai-type one (text, a tool use
round trip, streams, usage), failover across the two types, prompts, Anthropic-shaped
errors, x-api-key auth, metrics and capture."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import anthropic
import orjson
import pytest

from gateway.appkeys import CAPTURE
from tests.conftest import CLIENT_TOKEN, AiohttpServer, Gateway
from tests.fixture_upstream import FixtureUpstream, fixture, start_fixture_upstream

GatewayFactory = Callable[[str], Awaitable[Gateway]]
NATIVE_MODEL = "claude-sonnet-4-5"
WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"location": {"type": "string"}},
        "required": ["location"],
    },
}


def config(ant: str, oai: str, extra: str = "") -> str:
    return f"""
        [server]
        request_timeout_s = 30

        [providers.oai]
        type = "openai"
        base_url = "{oai}/v1"
        api_key = "sk-upstream-openai"

        [providers.claude]
        type = "anthropic"
        base_url = "{ant}"
        api_key = "sk-upstream-anthropic"

        [models.native]
        targets = [{{ provider = "claude", model = "{NATIVE_MODEL}" }}]

        [models.translated]
        targets = [{{ provider = "oai", model = "gpt-4o-mini" }}]

        [models.mixed]
        retries_per_target = 0
        targets = [{{ provider = "oai", model = "gpt-4o-mini" }},
                   {{ provider = "claude", model = "{NATIVE_MODEL}" }}]

        [[keys]]
        name = "test-app"
        sha256 = "{{key_sha256}}"

        [prompts.support]
        model = "native"
        messages = [{{ role = "system", content = "You answer for {{{{product}}}}." }}]
        params = {{ temperature = 0.2 }}

        [prompts.support_chat]
        model = "translated"
        messages = [{{ role = "system", content = "You answer for {{{{product}}}}." }}]
        {extra}
    """


class Setup:
    def __init__(self, gw: Gateway, ant: FixtureUpstream, oai: FixtureUpstream) -> None:
        self.gw, self.ant, self.oai = gw, ant, oai

    def client(self, api_key: str = CLIENT_TOKEN) -> anthropic.AsyncAnthropic:
        # The gateway is the only retrier: the SDK's own retries stay off.
        return anthropic.AsyncAnthropic(
            base_url=self.gw.url("").rstrip("/"), api_key=api_key, max_retries=0
        )


@pytest.fixture
async def setup(gateway_factory: GatewayFactory, aiohttp_server: AiohttpServer) -> Setup:
    ant = await start_fixture_upstream(aiohttp_server)
    oai = await start_fixture_upstream(aiohttp_server)
    gw = await gateway_factory(config(ant.root_url, oai.root_url))
    return Setup(gw, ant, oai)


def anthropic_json(name: str) -> Any:
    return orjson.loads(fixture(f"anthropic/{name}"))


# --- native: an anthropic-type target gets the client's body as it came ----------


async def test_native_text_goes_and_comes_back_as_it_came(setup: Setup) -> None:
    async with setup.client() as client:
        raw = await client.messages.with_raw_response.create(
            model="native",
            max_tokens=100,
            system="Be brief.",
            messages=[{"role": "user", "content": "Hello"}],
            metadata={"user_id": "user-7"},
            extra_body={"top_k": 5},
            extra_headers={"anthropic-beta": "prompt-caching-2024-07-31"},
        )
    message = await raw.parse()
    assert orjson.loads(raw.http_response.content) == anthropic_json("message_text.json")
    assert message.content[0].text == "Hello! How can I help you today?"  # type: ignore[union-attr]
    assert (message.usage.input_tokens, message.usage.output_tokens) == (12, 10)
    assert raw.headers["X-Request-Id"] and raw.headers["X-Gateway-Provider"] == "claude"
    seen = setup.ant.last
    assert seen.body == {
        "model": NATIVE_MODEL,
        "max_tokens": 100,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "Hello"}],
        "metadata": {"user_id": "user-7"},
        "top_k": 5,
    }
    assert seen.headers["x-api-key"] == "sk-upstream-anthropic"  # never the client's key
    sent_version = raw.http_response.request.headers["anthropic-version"]
    assert seen.headers["anthropic-version"] == sent_version  # the client's, passed on
    assert seen.headers["anthropic-beta"] == "prompt-caching-2024-07-31"
    assert CLIENT_TOKEN not in orjson.dumps(seen.headers).decode()


async def test_native_stream_passes_the_events_through(setup: Setup) -> None:
    body = {
        "model": "native",
        "max_tokens": 100,
        "stream": True,
        "messages": [{"role": "user", "content": "Hello"}],
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            setup.gw.url("/v1/messages"), json=body, headers={"x-api-key": CLIENT_TOKEN}
        ) as response,
    ):
        assert response.status == 200
        assert response.headers["X-Request-Id"]
        assert response.headers["Content-Type"] == "text/event-stream"
        got = await response.read()
    assert got == fixture("anthropic/stream_text.sse")  # every event, ping included
    assert setup.ant.last.body["stream"] is True


async def test_native_stream_with_the_sdk_gives_text_and_usage(setup: Setup) -> None:
    async with (
        setup.client() as client,
        client.messages.stream(
            model="native", max_tokens=100, messages=[{"role": "user", "content": "Hello"}]
        ) as stream,
    ):
        text = "".join([piece async for piece in stream.text_stream])
        final = await stream.get_final_message()
    assert text == "Hello! Ça va très bien, merci 🙂"  # the fixture's deltas
    assert final.content[0].text == text  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens == 25 and final.usage.output_tokens > 0


async def test_native_tool_use_round_trip(setup: Setup) -> None:
    question = {"role": "user", "content": "Weather in San Francisco?"}
    async with setup.client() as client:
        first = await client.messages.create(
            model="native", max_tokens=200, tools=[WEATHER], messages=[question]
        )
        assert first.stop_reason == "tool_use"
        use = next(b for b in first.content if b.type == "tool_use")
        assert use.input == {"location": "San Francisco, CA", "unit": "celsius"}
        result = {"type": "tool_result", "tool_use_id": use.id, "content": "15 degrees"}
        second = await client.messages.create(
            model="native",
            max_tokens=200,
            tools=[WEATHER],
            messages=[
                question,
                {"role": "assistant", "content": [b.model_dump() for b in first.content]},
                {"role": "user", "content": [result]},
            ],
        )
    assert second.stop_reason == "end_turn"
    assert second.content[0].text == "Hello! How can I help you today?"  # type: ignore[union-attr]
    sent = setup.ant.last.body["messages"]
    assert sent[2] == {"role": "user", "content": [result]}  # as it came
    assert sent[1]["content"][1]["type"] == "tool_use"


async def test_native_tool_use_stream(setup: Setup) -> None:
    async with (
        setup.client() as client,
        client.messages.stream(
            model="native",
            max_tokens=200,
            tools=[WEATHER],
            messages=[{"role": "user", "content": "Weather?"}],
        ) as stream,
    ):
        final = await stream.get_final_message()
    uses = [b for b in final.content if b.type == "tool_use"]
    assert [u.input for u in uses] == [
        {"location": "San Francisco, CA", "unit": "fahrenheit"},
        {"timezone": "America/Los_Angeles"},
    ]
    assert final.stop_reason == "tool_use"
    assert final.usage.cache_read_input_tokens == 2048 and final.usage.output_tokens == 89


# --- translated: an openai-type target gets the chat form ---------------------------


async def test_translated_text_and_usage(setup: Setup) -> None:
    async with setup.client() as client:
        raw = await client.messages.with_raw_response.create(
            model="translated",
            max_tokens=100,
            system=[{"type": "text", "text": "Be brief."}],
            messages=[{"role": "user", "content": "Hello"}],
            stop_sequences=["END"],
            metadata={"user_id": "user-7"},
            extra_body={"temperature": 0.5},
        )
    message = await raw.parse()
    assert raw.headers["X-Request-Id"] and raw.headers["X-Gateway-Provider"] == "oai"
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].text == "Hello! How can I assist you today?"  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (19, 10)
    assert message.id == "msg_B9MBs8CjcvOU2jLn4n570S5qMJKcT"
    assert setup.oai.last.path == "/v1/chat/completions"
    assert setup.oai.last.body == {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hello"},
        ],
        "max_tokens": 100,
        "temperature": 0.5,
        "stop": ["END"],
        "user": "user-7",
    }


async def test_translated_stream_gives_messages_events(setup: Setup) -> None:
    async with (
        setup.client() as client,
        client.messages.stream(
            model="translated", max_tokens=100, messages=[{"role": "user", "content": "Hi"}]
        ) as stream,
    ):
        kinds = [event.type async for event in stream]
        final = await stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert "content_block_start" in kinds and "message_delta" in kinds
    assert final.content[0].text == "Hello! Ça va très bien, merci 🙂"  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (25, 15)
    assert setup.oai.last.body["stream"] is True


async def test_translated_tool_use_round_trip(setup: Setup) -> None:
    question = {"role": "user", "content": "Weather in Boston?"}
    async with setup.client() as client:
        first = await client.messages.create(
            model="translated",
            max_tokens=200,
            tools=[WEATHER],
            tool_choice={"type": "any", "disable_parallel_tool_use": True},
            messages=[question],
        )
        assert first.stop_reason == "tool_use"
        (use,) = first.content
        assert use.type == "tool_use" and use.name == "get_current_weather"
        assert use.id == "call_abc123" and use.input == {"location": "Boston, MA"}
        assert first.usage.cache_read_input_tokens == 64 and first.usage.input_tokens == 18
        sent = setup.oai.last.body
        assert sent["tools"] == [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "parameters": WEATHER["input_schema"],
                    "description": "Current weather for a city",
                },
            }
        ]
        assert sent["tool_choice"] == "required" and sent["parallel_tool_calls"] is False
        result = {"type": "tool_result", "tool_use_id": use.id, "content": "15 degrees"}
        second = await client.messages.create(
            model="translated",
            max_tokens=200,
            tools=[WEATHER],
            messages=[
                question,
                {"role": "assistant", "content": [b.model_dump() for b in first.content]},
                {"role": "user", "content": [result, {"type": "text", "text": "And now?"}]},
            ],
        )
    assert second.stop_reason == "end_turn"
    assert second.content[0].text == "Hello! How can I assist you today?"  # type: ignore[union-attr]
    assert setup.oai.last.body["messages"][1:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_abc123",
                    "type": "function",
                    "function": {
                        "name": "get_current_weather",
                        "arguments": '{"location":"Boston, MA"}',
                    },
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_abc123", "content": "15 degrees"},
        {"role": "user", "content": [{"type": "text", "text": "And now?"}]},
    ]


async def test_translated_tool_use_stream(setup: Setup) -> None:
    async with (
        setup.client() as client,
        client.messages.stream(
            model="translated",
            max_tokens=200,
            tools=[WEATHER],
            messages=[{"role": "user", "content": "Weather in Paris?"}],
        ) as stream,
    ):
        final = await stream.get_final_message()
    (use,) = final.content
    assert use.type == "tool_use" and use.id == "call_DdmO9pD3xa9XTPNJ32zg2hcA"
    assert use.input == {"location": "Paris, France"}
    assert final.stop_reason == "tool_use"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (60, 18)


# --- failover across types ------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_failover_from_openai_500_to_anthropic(
    gateway_factory: GatewayFactory, aiohttp_server: AiohttpServer, stream: bool
) -> None:
    ant = await start_fixture_upstream(aiohttp_server)
    oai = await start_fixture_upstream(aiohttp_server, fail=500)
    gw = await gateway_factory(config(ant.root_url, oai.root_url))
    body = {
        "model": "mixed",
        "max_tokens": 50,
        "stream": stream,
        "messages": [{"role": "user", "content": "Hello"}],
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(gw.url("/v1/messages"), json=body, headers={"x-api-key": CLIENT_TOKEN}) as r,
    ):
        assert r.status == 200
        assert r.headers["X-Gateway-Provider"] == "claude"
        assert r.headers["X-Gateway-Attempts"] == "2"
        got = await r.read()
    assert len(oai.seen) == 1 and oai.seen[0].path == "/v1/chat/completions"
    assert ant.last.body["model"] == NATIVE_MODEL
    if stream:
        assert got == fixture("anthropic/stream_text.sse")
    else:
        assert orjson.loads(got) == anthropic_json("message_text.json")


# --- prompts --------------------------------------------------------------------------


async def test_a_prompt_through_messages_native_and_translated(setup: Setup) -> None:
    async with setup.client() as client:
        native = await client.messages.with_raw_response.create(
            model="prompt:support",
            max_tokens=50,
            system="Client system.",
            messages=[{"role": "user", "content": "Where is my order?"}],
            extra_body={"prompt_variables": {"product": "Acme"}},
        )
        translated = await client.messages.create(
            model="prompt:support_chat",
            max_tokens=50,
            messages=[{"role": "user", "content": "Where is my order?"}],
            extra_body={"prompt_variables": {"product": "Acme"}},
        )
    assert native.headers["X-Gateway-Prompt-Version"] == "v1"
    sent = setup.ant.last.body
    assert sent["system"] == "You answer for Acme.\n\nClient system."
    assert sent["messages"] == [{"role": "user", "content": "Where is my order?"}]
    assert sent["temperature"] == 0.2 and sent["model"] == NATIVE_MODEL
    assert "prompt_variables" not in sent
    assert translated.content[0].text == "Hello! How can I assist you today?"  # type: ignore[union-attr]
    assert setup.oai.last.body["messages"] == [
        {"role": "system", "content": "You answer for Acme."},
        {"role": "user", "content": "Where is my order?"},
    ]


async def test_a_missing_prompt_variable_is_an_anthropic_400(setup: Setup) -> None:
    async with setup.client() as client:
        with pytest.raises(anthropic.BadRequestError) as caught:
            await client.messages.create(
                model="prompt:support", max_tokens=50, messages=[{"role": "user", "content": "x"}]
            )
    assert caught.value.body["type"] == "error"  # type: ignore[index]
    assert "product" in caught.value.body["error"]["message"]  # type: ignore[index]


# --- errors and auth ------------------------------------------------------------------


async def post_raw(gw: Gateway, body: bytes, key: str = CLIENT_TOKEN) -> tuple[int, Any]:
    headers = {"x-api-key": key, "content-type": "application/json"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(gw.url("/v1/messages"), data=body, headers=headers) as response,
    ):
        return response.status, orjson.loads(await response.read())


@pytest.mark.parametrize(
    ("body", "status", "kind", "words"),
    [
        (b"{not json", 400, "invalid_request_error", "not valid JSON"),
        (
            b'{"model": "native", "messages": [{"role": "user", "content": "x"}]}',
            400,
            "invalid_request_error",
            "max_tokens",
        ),
        (
            b'{"model": "native", "max_tokens": 5, "messages": "hi"}',
            400,
            "invalid_request_error",
            "messages",
        ),
        (
            b'{"model": "native", "max_tokens": 5, '
            b'"messages": [{"role": "system", "content": "x"}]}',
            400,
            "invalid_request_error",
            "role",
        ),
        (
            b'{"model": "native", "max_tokens": 5, "messages": []}',
            400,
            "invalid_request_error",
            "at least one",
        ),
        (
            b'{"model": "nope", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}',
            404,
            "not_found_error",
            "nope",
        ),
    ],
)
async def test_bad_input_is_an_anthropic_shaped_error(
    setup: Setup, body: bytes, status: int, kind: str, words: str
) -> None:
    got_status, got = await post_raw(setup.gw, body)
    assert got_status == status
    assert got["type"] == "error" and got["error"]["type"] == kind
    assert words in got["error"]["message"]
    assert not setup.ant.seen and not setup.oai.seen


async def test_the_sdk_sees_a_bad_request_error(setup: Setup) -> None:
    async with setup.client() as client:
        with pytest.raises(anthropic.BadRequestError) as caught:
            await client.messages.create(
                model="native", max_tokens=0, messages=[{"role": "user", "content": "x"}]
            )
    assert caught.value.status_code == 400
    assert caught.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]


async def test_x_api_key_auth_and_a_wrong_key(setup: Setup) -> None:
    async with setup.client(api_key="sk-wrong") as client:
        with pytest.raises(anthropic.AuthenticationError) as caught:
            await client.messages.create(
                model="native", max_tokens=5, messages=[{"role": "user", "content": "x"}]
            )
    assert caught.value.status_code == 401
    assert caught.value.body == {  # type: ignore[comparison-overlap]
        "type": "error",
        "error": {"type": "authentication_error", "message": "Incorrect API key provided."},
    }
    assert not setup.ant.seen
    async with setup.client() as client:  # the SDK sends x-api-key
        ok = await client.messages.create(
            model="native", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert ok.stop_reason == "end_turn"
    status, _ = await post_raw(setup.gw, b"{}", key="")
    assert status == 401


async def test_bearer_auth_is_accepted_too(setup: Setup) -> None:
    client = anthropic.AsyncAnthropic(
        base_url=setup.gw.url("").rstrip("/"), auth_token=CLIENT_TOKEN, max_retries=0
    )
    async with client:
        ok = await client.messages.create(
            model="native", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert ok.stop_reason == "end_turn"


async def test_a_native_client_error_comes_back_as_anthropic_sent_it(
    gateway_factory: GatewayFactory, aiohttp_server: AiohttpServer
) -> None:
    ant = await start_fixture_upstream(aiohttp_server, fail=400)
    gw = await gateway_factory(config(ant.root_url, ant.root_url))
    status, got = await post_raw(
        gw, b'{"model": "native", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}'
    )
    assert status == 400
    assert got == anthropic_json("error_invalid_request_400.json")  # as it came


async def test_every_target_failing_is_an_anthropic_5xx(
    gateway_factory: GatewayFactory, aiohttp_server: AiohttpServer
) -> None:
    oai = await start_fixture_upstream(aiohttp_server, fail=500)
    gw = await gateway_factory(config(oai.root_url, oai.root_url))
    status, got = await post_raw(
        gw,
        b'{"model": "translated", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}',
    )
    assert status == 502
    assert got["type"] == "error" and got["error"]["type"] == "api_error"
    assert got["error"]["attempts"][0]["reason"] == "server_error"


async def test_a_stream_failing_after_its_first_byte_ends_with_an_error_event(
    gateway_factory: GatewayFactory, aiohttp_server: AiohttpServer
) -> None:
    release = asyncio.Event()
    ant = await start_fixture_upstream(
        aiohttp_server, stream_fixture="stream_error.sse", hold_error=release
    )
    gw = await gateway_factory(config(ant.root_url, ant.root_url))
    body = {
        "model": "native",
        "max_tokens": 5,
        "stream": True,
        "messages": [{"role": "user", "content": "x"}],
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            gw.url("/v1/messages"), json=body, headers={"x-api-key": CLIENT_TOKEN}
        ) as response,
    ):
        assert response.status == 200 and response.headers["X-Request-Id"]
        got = b""
        while b"Once upon" not in got:
            got += await response.content.readany()
        release.set()  # the upstream's error comes after the client's first bytes
        got += await response.read()
    *_, last = got.strip().split(b"\n\n")
    name, _, data = last.partition(b"\ndata: ")
    assert name == b"event: error"
    error = orjson.loads(data)
    assert error["type"] == "error" and error["error"]["type"] == "api_error"
    assert "Overloaded" in error["error"]["message"]
    assert b"[DONE]" not in got and len(ant.seen) == 1  # no failover after the first byte


# --- metrics and capture --------------------------------------------------------------


async def test_metrics_tell_messages_from_chat(setup: Setup) -> None:
    async with setup.client() as client:
        await client.messages.create(
            model="native", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
        await client.messages.create(
            model="translated", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    async with aiohttp.ClientSession() as session, session.get(setup.gw.url("/metrics")) as r:
        text = await r.text()
    assert (
        'gateway_api_requests_total{api="messages",mode="native",route="native",status="200"} 1.0'
        in text
    )
    assert (
        'gateway_api_requests_total{api="messages",mode="translated",route="translated",'
        'status="200"} 1.0' in text
    )
    assert "gateway_tokens_total{" in text and 'route="native"' in text


async def test_a_captured_messages_request_is_in_chat_form(
    gateway_factory: GatewayFactory, aiohttp_server: AiohttpServer
) -> None:
    ant = await start_fixture_upstream(aiohttp_server)
    gw = await gateway_factory(
        config(ant.root_url, ant.root_url) + "\n        [capture]\n        enabled = true\n"
    )
    async with (
        anthropic.AsyncAnthropic(
            base_url=gw.url("").rstrip("/"), api_key=CLIENT_TOKEN, max_retries=0
        ) as client,
        client.messages.stream(
            model="prompt:support",
            max_tokens=50,
            messages=[{"role": "user", "content": "Where is my order?"}],
            extra_body={"prompt_variables": {"product": "Acme"}},
            extra_headers={"X-Request-Id": "cap-msg-1"},
        ) as stream,
    ):
        final = await stream.get_final_message()
    capture = gw.app[CAPTURE]
    await capture.flush()
    record = await capture.log.get("cap-msg-1")
    assert record is not None
    assert record["request_id"] == "cap-msg-1" and record["stream"] is True
    assert record["answer"] == final.content[0].text  # type: ignore[union-attr]
    request = record["request"]
    assert request["messages"] == [{"role": "user", "content": "Where is my order?"}]
    assert request["variables"] == {"product": "Acme"}
    assert request["params"]["max_tokens"] == 50
    assert request["prompt_messages"] == [{"role": "system", "content": "You answer for Acme."}]


async def test_what_only_messages_has_goes_native_skips_chat_targets_else_is_a_400(
    setup: Setup,
) -> None:
    document = {
        "type": "document",
        "source": {"type": "text", "media_type": "text/plain", "data": "The grass is green."},
    }
    messages = [{"role": "user", "content": [document, {"type": "text", "text": "Colour?"}]}]
    async with setup.client() as client:
        native = await client.messages.create(model="native", max_tokens=5, messages=messages)
        with pytest.raises(anthropic.BadRequestError) as caught:
            await client.messages.create(model="translated", max_tokens=5, messages=messages)
    assert native.stop_reason == "end_turn"
    assert setup.ant.last.body["messages"] == messages  # as it came
    error = caught.value.body["error"]  # type: ignore[index]
    assert error["type"] == "invalid_request_error" and "document" in error["message"]
    assert not setup.oai.seen
    # On a route that also has an Anthropic target, the chat target is skipped unasked.
    async with setup.client() as client:
        raw = await client.messages.with_raw_response.create(
            model="mixed", max_tokens=5, messages=messages
        )
    assert raw.headers["X-Gateway-Provider"] == "claude" and not setup.oai.seen
    assert setup.ant.last.body["messages"] == messages
