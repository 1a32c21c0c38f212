"""Property-based tests: whatever a client sends, the answer is a success or a
well-formed OpenAI error (never a 500 with a traceback, never a hang); stream parsing
and translation either work or fail cleanly on any input; config files either load or
give a ConfigError."""

from __future__ import annotations

import asyncio
import http.client
import itertools
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.app import create_app
from gateway.config.loader import load_config
from gateway.config.source import ConfigError
from gateway.errors import ApiError, UpstreamError
from gateway.prompts.versions import PromptContent, render_messages
from gateway.providers.anthropic import AnthropicAdapter
from gateway.providers.openai import OpenAIAdapter
from tests.conftest import CLIENT_TOKEN, key_sha256

CONFIG = f"""
[server]
max_body_bytes = 20000
[providers.mock]
type = "mock"
[models.chat]
targets = [{{ provider = "mock", model = "demo" }}]
[models.flaky]
targets = [{{ provider = "mock", model = "flaky" }}, {{ provider = "mock", model = "demo" }}]
[[keys]]
name = "k"
sha256 = "{key_sha256()}"
[prompts.p]
model = "chat"
messages = [{{ role = "system", content = "For {{{{product}}}}" }}]
"""
ALLOWED = {200, 400, 401, 403, 404, 408, 413, 429, 502, 503, 504}
SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)  # what JSON encoders emit
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
messages = st.lists(
    st.fixed_dictionaries(
        {
            "role": st.sampled_from(["user", "system", "assistant", "tool", "bogus"]),
            "content": st.one_of(st.text(max_size=30), json_values),
        }
    ),
    max_size=3,
)
bodies = st.one_of(
    st.fixed_dictionaries(
        {
            "model": st.sampled_from(
                ["chat", "flaky", "prompt:p", "prompt:p@v1", "prompt:p@v9", "nope", "prompt:"]
            ),
            "messages": messages,
        },
        optional={
            "stream": json_values,
            "prompt_variables": json_values,
            "stream_options": json_values,
            "user": json_values,
            "temperature": json_values,
        },
    ),
    st.dictionaries(st.text(max_size=12), json_values, max_size=5),
    json_values,
)


@pytest.fixture(scope="module")
def gateway_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A gateway in a thread of its own, so hypothesis can drive it with blocking calls."""
    path = tmp_path_factory.mktemp("props") / "gateway.toml"
    path.write_text(CONFIG)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    runner = web.AppRunner(create_app(load_config(path)), handler_cancellation=True)
    port: list[int] = []

    async def start() -> None:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port.append(runner.addresses[0][1])
        started.set()

    thread = threading.Thread(
        target=lambda: (loop.run_until_complete(start()), loop.run_forever()), daemon=True
    )
    thread.start()
    assert started.wait(10)
    yield port[0]
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def post(port: int, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/v1/chat/completions", body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def assert_well_formed(status: int, body: bytes) -> None:
    assert status in ALLOWED, (status, body[:300])
    if status == 200 and body.startswith(b"data:"):
        return  # a stream: its events are checked by the streaming tests
    data = orjson.loads(body)
    if status == 200:
        assert data["object"] == "chat.completion"
    else:
        assert set(data["error"]) >= {"message", "type", "param", "code"}
        assert "Traceback" not in data["error"]["message"]


@SETTINGS
@given(body=bodies)
def test_any_json_body_gets_a_success_or_an_openai_error(gateway_port: int, body: Any) -> None:
    status, answer = post(
        gateway_port,
        orjson.dumps(body),
        {"Authorization": f"Bearer {CLIENT_TOKEN}", "Content-Type": "application/json"},
    )
    assert_well_formed(status, answer)


@SETTINGS
@given(
    raw=st.binary(max_size=300),
    request_id=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=200),
    sticky=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=50),
    auth=st.sampled_from([f"Bearer {CLIENT_TOKEN}", "Bearer", "Basic xyz", "", "bearer  "]),
)
def test_any_bytes_and_headers_get_a_success_or_an_openai_error(
    gateway_port: int, raw: bytes, request_id: str, sticky: str, auth: str
) -> None:
    headers = {"Authorization": auth, "X-Request-Id": request_id, "X-Gateway-Sticky-Key": sticky}
    status, answer = post(gateway_port, raw, headers)
    assert_well_formed(status, answer)


@settings(max_examples=300, deadline=None)
@given(
    data=st.binary(max_size=600),
    cuts=st.lists(st.integers(0, 600), max_size=6),
    adapter=st.sampled_from([OpenAIAdapter(), AnthropicAdapter()]),
)
def test_stream_translators_translate_or_fail_cleanly(
    data: bytes, cuts: list[int], adapter: Any
) -> None:
    translator = adapter.chat_stream("m", True)
    bounds = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    try:
        for a, b in itertools.pairwise(bounds):
            out = translator.feed_bytes(data[a:b])
            assert out == b"" or (out.startswith(b"data: ") and out.endswith(b"\n\n"))
    except UpstreamError as error:
        assert error.reason in {"bad_response", "server_error", "rate_limited", "stream_cut"}


@settings(max_examples=300, deadline=None)
@given(
    template=st.text(max_size=60),
    variables=st.dictionaries(
        st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,5}", fullmatch=True), json_values, max_size=4
    ),
)
def test_rendering_substitutes_or_names_the_missing_variable(
    template: str, variables: dict[str, Any]
) -> None:
    content = PromptContent("m", ({"role": "system", "content": template},))
    try:
        rendered = render_messages(content, variables)
    except ApiError as error:
        assert error.status == 400 and error.code == "missing_variable"
    else:
        assert isinstance(rendered[0]["content"], str)


fragments = st.sampled_from(
    [
        "[server]",
        "port = 80",
        'port = "x"',
        "workers = 0",
        "[providers.m]",
        'type = "mock"',
        'type = "openai"',
        'base_url = "http://h"',
        "[models.a]",
        'targets = [{ provider = "m", model = "x" }]',
        "targets = []",
        "[[keys]]",
        'name = "k"',
        'sha256 = "abc"',
        'api_key = "${NOPE}"',
        "[prompts.p]",
        'model = "a"',
        "messages = []",
        "x = [",
        "= 1",
        "[redis]",
        'url = "redis://h"',
        '"${A:-1}"',
        "",
    ]
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(lines=st.lists(fragments, max_size=14))
def test_config_files_load_or_give_a_config_error(tmp_path: Path, lines: list[str]) -> None:
    path = tmp_path / "fuzz.toml"
    path.write_text("\n".join(lines))
    try:
        load_config(path, env={})
    except ConfigError as error:
        assert str(path) in str(error)
