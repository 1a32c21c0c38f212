"""`POST /v1/messages/count_tokens` with the official Anthropic SDK: asked of the route's
Anthropic target (with the target's model and a prompt's part), the next Anthropic
target when one is down, and an estimate marked as such where no Anthropic target
answers."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable

import anthropic
import pytest

from tests.conftest import CLIENT_TOKEN, Gateway, Upstream

GatewayFactory = Callable[[str], Awaitable[Gateway]]
UpstreamFactory = Callable[..., Awaitable[Upstream]]
HELLO = [{"role": "user", "content": "hello there"}]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(ant: Upstream, oai: Upstream) -> str:
    return f"""
        [providers.claude]
        type = "anthropic"
        base_url = "{ant.root_url}"
        api_key = "sk-upstream-anthropic"

        [providers.gone]
        type = "anthropic"
        base_url = "http://127.0.0.1:{_closed_port()}"

        [providers.oai]
        type = "openai"
        base_url = "{oai.base_url}"

        [models.native]
        targets = [{{ provider = "gone", model = "claude-x" }},
                   {{ provider = "claude", model = "claude-sonnet-4-6" }}]

        [models.translated]
        targets = [{{ provider = "oai", model = "gpt-4o-mini" }}]

        [prompts.support]
        model = "native"
        messages = [{{ role = "system", content = "You answer for {{{{product}}}}." }}]

        [[keys]]
        name = "test-app"
        sha256 = "{{key_sha256}}"
    """


@pytest.fixture
async def gw_parts(
    gateway_factory: GatewayFactory, upstream_factory: UpstreamFactory
) -> tuple[Gateway, Upstream, Upstream]:
    ant, oai = await upstream_factory(), await upstream_factory()
    return await gateway_factory(_config(ant, oai)), ant, oai


def _client(gw: Gateway) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        base_url=gw.url("").rstrip("/"), api_key=CLIENT_TOKEN, max_retries=0
    )


async def test_counted_by_the_anthropic_target_past_one_that_is_down(
    gw_parts: tuple[Gateway, Upstream, Upstream],
) -> None:
    gw, ant, _ = gw_parts
    async with _client(gw) as client:
        raw = await client.messages.with_raw_response.count_tokens(
            model="native", messages=HELLO, system="Be brief."
        )
    counted = await raw.parse()
    assert counted.input_tokens > 0
    assert raw.headers["X-Gateway-Provider"] == "claude"
    assert "X-Gateway-Token-Count" not in raw.headers
    assert ant.stats.requests == {"/v1/messages/count_tokens": 1}  # nothing generated
    assert ant.stats.last_body == {
        "model": "claude-sonnet-4-6",
        "messages": HELLO,
        "system": "Be brief.",
    }
    assert ant.stats.last_headers["x-api-key"] == "sk-upstream-anthropic"


async def test_a_prompts_part_is_counted_too(gw_parts: tuple[Gateway, Upstream, Upstream]) -> None:
    gw, ant, _ = gw_parts
    async with _client(gw) as client:
        plain = await client.messages.count_tokens(model="native", messages=HELLO)
        prompted = await client.messages.count_tokens(
            model="prompt:support",
            messages=HELLO,
            extra_body={"prompt_variables": {"product": "Acme"}},
        )
    assert ant.stats.last_body["system"] == "You answer for Acme."
    assert "prompt_variables" not in ant.stats.last_body
    assert prompted.input_tokens > plain.input_tokens


async def test_without_an_anthropic_target_the_count_is_an_estimate(
    gw_parts: tuple[Gateway, Upstream, Upstream],
) -> None:
    gw, _, oai = gw_parts
    async with _client(gw) as client:
        raw = await client.messages.with_raw_response.count_tokens(
            model="translated", messages=[{"role": "user", "content": "x" * 400}]
        )
    assert raw.headers["X-Gateway-Token-Count"] == "estimated"
    assert (await raw.parse()).input_tokens == 100 + 3  # four characters a token, and the role
    assert oai.stats.total == 0


async def test_errors_are_anthropic_shaped(gw_parts: tuple[Gateway, Upstream, Upstream]) -> None:
    gw, _, _ = gw_parts
    async with _client(gw) as client:
        with pytest.raises(anthropic.NotFoundError) as missing:
            await client.messages.count_tokens(model="nope", messages=HELLO)
        with pytest.raises(anthropic.AuthenticationError):
            await client.with_options(api_key="wrong").messages.count_tokens(
                model="native", messages=HELLO
            )
    assert missing.value.body["type"] == "error"  # type: ignore[index]
