"""A target that accepts and never answers holds an attempt for its share of the
deadline, not for the whole of it: the next target still gets its turn."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import openai
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.appkeys import METRICS
from tests.conftest import Gateway, Upstream

GatewayFactory = Callable[[str], Awaitable[Gateway]]
AiohttpServer = Callable[..., Awaitable[TestServer]]
MESSAGES = [{"role": "user", "content": "hello"}]


def hung_provider() -> web.Application:
    async def hang(request: web.Request) -> web.Response:
        await asyncio.Event().wait()  # accepted; never answered
        raise AssertionError("unreachable")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", hang)
    return app


def config(hung_url: str, good_url: str, route_extra: str = "") -> str:
    return f"""
[server]
request_timeout_s = 4
[providers.hung]
type = "openai"
base_url = "{hung_url}"
[providers.good]
type = "openai"
base_url = "{good_url}"
[models.chat]
targets = [{{ provider = "hung", model = "m" }}, {{ provider = "good", model = "mock-gpt" }}]
retries_per_target = 0
{route_extra}
[[keys]]
name = "k"
sha256 = "{{key_sha256}}"
"""


@pytest.mark.parametrize("stream", [False, True])
async def test_a_hung_first_target_leaves_the_second_its_share_of_the_deadline(
    gateway_factory: GatewayFactory,
    aiohttp_server: AiohttpServer,
    upstream: Upstream,
    stream: bool,
) -> None:
    hung = await aiohttp_server(hung_provider())
    gw = await gateway_factory(config(str(hung.make_url("/v1")), upstream.base_url))
    async with gw.client() as client:
        if stream:
            response = await client.chat.completions.with_raw_response.create(
                model="chat", messages=MESSAGES, stream=True
            )
            text = "".join(
                [c.choices[0].delta.content or "" async for c in response.parse() if c.choices]
            )
        else:
            response = await client.chat.completions.with_raw_response.create(
                model="chat", messages=MESSAGES
            )
            text = response.parse().choices[0].message.content or ""
    assert text and response.headers["X-Gateway-Provider"] == "good"
    assert response.headers["X-Gateway-Attempts"] == "2"
    errors = gw.app[METRICS].registry.get_sample_value(
        "gateway_provider_errors_total", {"provider": "hung", "model": "m", "reason": "timeout"}
    )
    assert errors == 1


async def test_per_try_timeout_s_sets_the_limit(
    gateway_factory: GatewayFactory, aiohttp_server: AiohttpServer, upstream: Upstream
) -> None:
    """Larger than the share: the hung target holds the whole deadline, and the client
    gets a 504 that names the attempt."""
    hung = await aiohttp_server(hung_provider())
    text = config(str(hung.make_url("/v1")), upstream.base_url, "per_try_timeout_s = 10")
    gw = await gateway_factory(text)
    async with gw.client() as client:
        with pytest.raises(openai.APIStatusError) as failed:
            await client.chat.completions.create(model="chat", messages=MESSAGES)
    assert failed.value.status_code == 504
    assert upstream.stats.total == 0
