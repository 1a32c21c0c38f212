"""What every provider adapter must do, checked on each one against golden fixtures
written from the providers' documented shapes (tests/fixtures/<provider>/)."""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson
import pytest
from multidict import CIMultiDict

from gateway.config.loader import ProviderConfig, Secret
from gateway.errors import UpstreamError
from gateway.providers.anthropic import AnthropicAdapter
from gateway.providers.base import Adapter, SSEEvent, StreamTranslator, Usage
from gateway.providers.openai import AzureAdapter, OpenAIAdapter
from gateway.providers.sse import SSEReader, sse_frame

FIXTURES = Path(__file__).parents[1] / "fixtures"
TARGET = "target-model"
PROVIDER_KEY = "sk-test"
CLIENT_KEY = "sk-client-secret"
AUTH_HEADERS = {"authorization", "api-key", "x-api-key"}


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@dataclass(frozen=True)
class Case:
    id: str
    adapter: Adapter
    provider: ProviderConfig
    auth_header: str  # lower-case name
    auth_value: str
    response: str
    response_text: str
    response_usage: Usage
    tool_response: str
    tool_name: str
    tool_arguments: dict[str, Any]
    stream: str
    stream_text: str
    stream_usage: Usage
    errors: dict[int, str] = field(default_factory=dict)  # status → error body fixture


_OPENAI_ERRORS = {
    400: "openai/error_invalid_request_400.json",
    401: "openai/error_authentication_401.json",
    429: "openai/error_rate_limit_429.json",
    500: "openai/error_server_500.json",
    529: "openai/error_server_500.json",
}
_OPENAI = Case(
    id="openai",
    adapter=OpenAIAdapter(),
    provider=ProviderConfig(
        name="o", type="openai", base_url="https://api.openai.com/v1", api_key=Secret(PROVIDER_KEY)
    ),
    auth_header="authorization",
    auth_value=f"Bearer {PROVIDER_KEY}",
    response="openai/chat_completion.json",
    response_text="Hello! How can I assist you today?",
    response_usage=Usage(input_tokens=19, output_tokens=10),
    tool_response="openai/chat_tool_calls.json",
    tool_name="get_current_weather",
    tool_arguments={"location": "Boston, MA"},
    stream="openai/stream_text.sse",
    stream_text="Hello! Ça va très bien, merci 🙂",
    stream_usage=Usage(input_tokens=25, output_tokens=15),
    errors=_OPENAI_ERRORS,
)
_AZURE = replace(
    _OPENAI,
    id="azure",
    adapter=AzureAdapter(),
    provider=ProviderConfig(
        name="z",
        type="azure",
        base_url="https://example.openai.azure.com",
        api_key=Secret(PROVIDER_KEY),
        api_version="2024-10-21",
    ),
    auth_header="api-key",
    auth_value=PROVIDER_KEY,
)
_ANTHROPIC = Case(
    id="anthropic",
    adapter=AnthropicAdapter(),
    provider=ProviderConfig(
        name="a",
        type="anthropic",
        base_url="https://api.anthropic.com",
        api_key=Secret(PROVIDER_KEY),
    ),
    auth_header="x-api-key",
    auth_value=PROVIDER_KEY,
    response="anthropic/message_text.json",
    response_text="Hello! How can I help you today?",
    response_usage=Usage(input_tokens=12, output_tokens=10),
    tool_response="anthropic/message_tool_use.json",
    tool_name="get_weather",
    tool_arguments={"location": "San Francisco, CA", "unit": "celsius"},
    stream="anthropic/stream_text.sse",
    stream_text="Hello! Ça va très bien, merci 🙂",
    stream_usage=Usage(input_tokens=25, output_tokens=15),
    errors={
        400: "anthropic/error_invalid_request_400.json",
        401: "anthropic/error_authentication_401.json",
        429: "anthropic/error_rate_limit_429.json",
        500: "anthropic/error_api_500.json",
        529: "anthropic/error_overloaded_529.json",
    },
)
CASES = [_OPENAI, _AZURE, _ANTHROPIC]
each_adapter = pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])

CHAT_BODY: dict[str, Any] = {
    "model": "client-alias",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello"},
    ],
    "max_tokens": 50,
    "user": "user-1",
}


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Translators stamp `created` from the clock; pin it so runs compare byte for byte."""
    monkeypatch.setattr(time, "time", lambda: 1_700_000_000.0)


def run_stream(
    case: Case, pieces: Iterable[bytes], include_usage: bool = True
) -> tuple[list[bytes], StreamTranslator]:
    reader = SSEReader()
    translator = case.adapter.chat_stream(TARGET, include_usage)
    out: list[bytes] = []
    for piece in pieces:
        for event in reader.feed(piece):
            out.extend(translator.feed(event))
    return out, translator


def content_of(payloads: list[bytes]) -> str:
    text = []
    for payload in payloads:
        chunk = orjson.loads(payload)
        assert chunk["object"] == "chat.completion.chunk"
        for choice in chunk["choices"]:
            text.append(choice["delta"].get("content") or "")
    return "".join(text)


def openai_usage(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }


def split(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    points = [0, *sorted(set(cuts)), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(points)]


# --- requests ---------------------------------------------------------------------


@each_adapter
@pytest.mark.parametrize("stream", [False, True])
def test_request_carries_target_model(case: Case, stream: bool) -> None:
    request = case.adapter.chat_request(case.provider, TARGET, CHAT_BODY, stream)
    body = orjson.loads(request.body)
    assert body.get("model") == TARGET or f"/deployments/{TARGET}/" in request.url
    assert "client-alias" not in request.url and body.get("model") != "client-alias"
    assert request.url.startswith(case.provider.base_url)


@each_adapter
def test_auth_header_is_the_providers_key(case: Case) -> None:
    body = {**CHAT_BODY, "user": CLIENT_KEY}  # whatever the client sent stays out of headers
    request = case.adapter.chat_request(case.provider, TARGET, body, False)
    headers = {k.lower(): v for k, v in request.headers.items()}
    assert headers[case.auth_header] == case.auth_value
    assert set(headers) & AUTH_HEADERS == {case.auth_header}
    assert all(CLIENT_KEY not in value for value in headers.values())


@each_adapter
def test_no_auth_header_without_a_key(case: Case) -> None:
    provider = replace(case.provider, api_key=Secret(""))
    request = case.adapter.chat_request(provider, TARGET, CHAT_BODY, True)
    assert not {k.lower() for k in request.headers} & AUTH_HEADERS


def test_azure_url_uses_deployment_and_api_version() -> None:
    request = _AZURE.adapter.chat_request(_AZURE.provider, "gpt4o-prod", CHAT_BODY, False)
    assert request.url == (
        "https://example.openai.azure.com/openai/deployments/gpt4o-prod/chat/completions"
        "?api-version=2024-10-21"
    )
    assert request.headers["api-key"] == PROVIDER_KEY


# --- responses --------------------------------------------------------------------


@each_adapter
def test_response_becomes_chat_completion(case: Case) -> None:
    body, usage = case.adapter.chat_response(fixture(case.response), TARGET)
    data = orjson.loads(body)
    assert data["object"] == "chat.completion"
    assert isinstance(data["id"], str) and isinstance(data["created"], int)
    message = data["choices"][0]["message"]
    assert message["role"] == "assistant"
    assert message["content"] == case.response_text
    assert data["choices"][0]["finish_reason"] == "stop"
    assert usage == case.response_usage
    assert {k: data["usage"][k] for k in openai_usage(usage)} == openai_usage(usage)


@each_adapter
def test_tool_call_response(case: Case) -> None:
    body, _ = case.adapter.chat_response(fixture(case.tool_response), TARGET)
    choice = orjson.loads(body)["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    (call,) = choice["message"]["tool_calls"]
    assert call["type"] == "function" and call["id"]
    assert call["function"]["name"] == case.tool_name
    assert orjson.loads(call["function"]["arguments"]) == case.tool_arguments


@each_adapter
@pytest.mark.parametrize("garbage", [b"<html>502 Bad Gateway</html>", b"", b"[1, 2]", b"{}"])
def test_unreadable_response_is_bad_response(case: Case, garbage: bytes) -> None:
    with pytest.raises(UpstreamError) as caught:
        case.adapter.chat_response(garbage, TARGET)
    assert caught.value.reason == "bad_response"


# --- streams ----------------------------------------------------------------------


@each_adapter
@pytest.mark.parametrize("include_usage", [True, False])
def test_stream_translates(case: Case, include_usage: bool) -> None:
    payloads, translator = run_stream(case, [fixture(case.stream)], include_usage)
    assert content_of(payloads) == case.stream_text
    assert translator.finished
    assert translator.content_started
    assert translator.usage == case.stream_usage
    chunks = [orjson.loads(p) for p in payloads]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] == "stop" and finishes.count("stop") == 1
    usage_chunks = [c for c in chunks if not c["choices"]]
    if include_usage:
        assert usage_chunks == [chunks[-1]]
        usage = chunks[-1]["usage"]
        assert {k: usage[k] for k in ("prompt_tokens", "completion_tokens", "total_tokens")} == (
            openai_usage(case.stream_usage)
        )
    else:
        assert usage_chunks == []
        assert all(not c.get("usage") for c in chunks)


@each_adapter
@pytest.mark.usefixtures("frozen_clock")
def test_stream_same_output_whatever_the_chunking(case: Case) -> None:
    data = fixture(case.stream)
    expected, _ = run_stream(case, [data])
    one_byte, translator = run_stream(case, [data[i : i + 1] for i in range(len(data))])
    assert one_byte == expected
    assert translator.finished and translator.usage == case.stream_usage
    for cut in range(1, len(data)):
        assert run_stream(case, split(data, [cut]))[0] == expected, f"split at byte {cut}"
    rng = random.Random(20240601)
    for _ in range(200):
        cuts = rng.sample(range(1, len(data)), rng.randint(2, 40))
        assert run_stream(case, split(data, cuts))[0] == expected, f"splits at {sorted(cuts)}"


@each_adapter
def test_stream_with_crlf_line_ends(case: Case) -> None:
    data = fixture(case.stream).replace(b"\n", b"\r\n")
    payloads, translator = run_stream(case, [data[i : i + 3] for i in range(0, len(data), 3)])
    assert content_of(payloads) == case.stream_text
    assert translator.finished


@each_adapter
@pytest.mark.parametrize("garbage", [b"not json", b"{truncated", b"42"])
def test_unreadable_stream_payload_is_bad_response(case: Case, garbage: bytes) -> None:
    translator = case.adapter.chat_stream(TARGET, True)
    with pytest.raises(UpstreamError) as caught:
        translator.feed(SSEEvent(garbage))
    assert caught.value.reason == "bad_response"


@each_adapter
def test_stream_not_finished_when_cut(case: Case) -> None:
    data = fixture(case.stream)
    cut = data.index(b"\n\n", len(data) // 2) + 2  # the connection drops between events
    payloads, translator = run_stream(case, [data[:cut]])
    assert not translator.finished
    assert payloads  # what had come was translated


# --- errors -----------------------------------------------------------------------


@each_adapter
@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (400, "client_error"),
        (401, "auth_error"),
        (429, "rate_limited"),
        (500, "server_error"),
        (529, "server_error"),
    ],
)
def test_error_bodies(case: Case, status: int, reason: str) -> None:
    headers = CIMultiDict({"Retry-After": "7"} if status == 429 else {})
    error = case.adapter.error(status, headers, fixture(case.errors[status]))
    assert error.reason == reason
    assert error.status == status
    assert error.retryable is (reason != "client_error")
    assert error.retry_after_s == (7.0 if status == 429 else None)
    assert error.message.startswith(f"provider answered {status}")
    assert len(error.message) <= 330
    assert error.client_body is not None
    body = orjson.loads(error.client_body)
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["type"], str) and body["error"]["type"]


@each_adapter
@pytest.mark.parametrize("garbage", [b"<html>Bad Gateway</html>", b""])
def test_error_with_unreadable_body(case: Case, garbage: bytes) -> None:
    error = case.adapter.error(502, {}, garbage)
    assert error.reason == "server_error"
    assert error.client_body is not None
    assert orjson.loads(error.client_body)["error"]["message"]


@each_adapter
@pytest.mark.parametrize("include_usage", [True, False])
def test_feed_bytes_matches_feeding_one_event_at_a_time(case: Case, include_usage: bool) -> None:
    """The relay's path (one network read at a time, most OpenAI chunks passed on
    unparsed after the first token) gives exactly what event-by-event feeding gives,
    whatever the read boundaries."""
    data = fixture(case.stream)
    expected, one_by_one = run_stream(case, [data], include_usage)
    rng = random.Random(11)
    for _ in range(20):
        cuts = sorted(rng.sample(range(1, len(data)), 5))
        pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        translator = case.adapter.chat_stream(TARGET, include_usage)
        out = b"".join(translator.feed_bytes(piece) for piece in pieces)
        assert out == sse_frame(expected)
        assert translator.finished and translator.usage == one_by_one.usage


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (b"data: {not json}\n\n", "bad_response"),
        (b"data: [1, 2]\n\n", "bad_response"),
        (b"data: 1,2\n\n", "bad_response"),
        (b'data: {"id": "x", "choices": [{"delta": {"con\n\n', "bad_response"),
        (b'data: {"error": {"message": "overloaded"}}\n\n', "server_error"),
    ],
)
def test_a_bad_chunk_after_the_first_token_is_still_caught(bad: bytes, reason: str) -> None:
    good = fixture("openai/stream_text.sse").split(b"\n\n")[1] + b"\n\n"
    translator = OpenAIAdapter().chat_stream(TARGET, True)
    assert translator.feed_bytes(good) == good and translator.content_started
    with pytest.raises(UpstreamError) as caught:
        translator.feed_bytes(good + bad + good)
    assert caught.value.reason == reason


def test_after_the_first_token_a_chunk_that_looks_like_an_object_goes_on_unparsed() -> None:
    """The documented trade-off: after the first token, chunks are checked by scans of
    the read, not parsed; one that looks like an object but is not JSON inside goes on
    as it came (the client's SDK rejects it) instead of ending the stream."""
    good = fixture("openai/stream_text.sse").split(b"\n\n")[1] + b"\n\n"
    odd = b'data: {"id": "x",, "usage":null}\n\n'
    translator = OpenAIAdapter().chat_stream(TARGET, True)
    translator.feed_bytes(good)
    assert translator.feed_bytes(good + odd + good) == good + odd + good


def test_usage_is_read_from_a_chunk_passed_after_the_first_token() -> None:
    """Chunks that say `"usage":null` go on unparsed; the one with the counts is read."""
    chunk = b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"Hi"}}],"usage":null}\n\n'
    last = b'data: {"id":"c","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}\n\n'
    translator = OpenAIAdapter().chat_stream(TARGET, False)
    # The first chunk is parsed (first token), the second goes on by the scans, the
    # last is parsed for its counts, [DONE] is seen at the end of the read.
    out = translator.feed_bytes(chunk + chunk + last + b"data: [DONE]\n\n")
    assert out == chunk + chunk  # the usage chunk the client did not ask for is dropped
    assert translator.finished
    assert translator.usage == Usage(input_tokens=3, output_tokens=2)
    assert translator.feed_bytes(b"data: {}\n\n") == b""  # nothing after [DONE]
