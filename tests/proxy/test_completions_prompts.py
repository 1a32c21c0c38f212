"""`/v1/completions` is an ingress like the others: managed prompts (`prompt:NAME`,
`@vN`, `@LABEL`), capture and shadow work on it the same way as on chat."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import openai
import pytest

from gateway.appkeys import CAPTURE, METRICS, SHADOW
from tests.conftest import Gateway, Upstream
from tests.eval_support import ADMIN, Admin

Start = Callable[[str], Awaitable[Gateway]]
UpstreamFactory = Callable[..., Awaitable[Upstream]]


def _config(main: Upstream, side: Upstream) -> str:
    return f"""
        [server]
        admin_token = "{ADMIN}"
        request_timeout_s = 30

        [providers.oa]
        type = "openai"
        base_url = "{main.base_url}"

        [providers.side]
        type = "openai"
        base_url = "{side.base_url}"

        [models.instruct]
        targets = [{{ provider = "oa", model = "mock-instruct" }}]
        shadow = {{ targets = [{{ provider = "side", model = "mock-side" }}], sample_rate = 1.0 }}

        [models.sideways]
        targets = [{{ provider = "side", model = "mock-v2" }}]

        [prompts.writer]
        model = "instruct"
        messages = [{{ role = "system", content = "You write for {{{{product}}}}." }}]
        params = {{ temperature = 0.2, max_tokens = 9 }}

        [capture]
        enabled = true

        [[keys]]
        name = "test-app"
        sha256 = "{{key_sha256}}"
    """


@pytest.fixture
async def pair(upstream_factory: UpstreamFactory) -> tuple[Upstream, Upstream]:
    return await upstream_factory(), await upstream_factory()


async def test_a_prompt_on_completions_puts_its_text_before_the_clients(
    gateway_factory: Start, pair: tuple[Upstream, Upstream]
) -> None:
    main, side = pair
    gw = await gateway_factory(_config(main, side))
    async with gw.client() as client:
        raw = await client.completions.with_raw_response.create(
            model="prompt:writer",
            prompt="Name a colour",
            max_tokens=5,  # the client's own value wins over the version's
            extra_body={"prompt_variables": {"product": "Acme"}},
        )
        pinned = await client.completions.create(
            model="prompt:writer@v1",
            prompt=["one", "two"],
            extra_body={"prompt_variables": {"product": "Beta"}},
        )
        with pytest.raises(openai.BadRequestError) as missing:
            await client.completions.create(model="prompt:writer", prompt="x")
        with pytest.raises(openai.BadRequestError) as tokens:
            await client.completions.create(
                model="prompt:writer",
                prompt=[[1, 2, 3]],
                extra_body={"prompt_variables": {"product": "Acme"}},
            )
    completion = raw.parse()
    assert raw.headers["X-Gateway-Prompt-Version"] == "v1"
    assert completion.choices[0].text == "Mock answer to: You write for Acme.\n\nName a colour"
    assert [c.text for c in pinned.choices] == [
        "Mock answer to: You write for Beta.\n\none",
        "Mock answer to: You write for Beta.\n\ntwo",
    ]
    assert main.stats.last_body["temperature"] == 0.2  # the version's params as defaults
    assert main.stats.last_body["max_tokens"] == 9
    assert "prompt_variables" not in main.stats.last_body
    assert missing.value.code == "missing_variable"
    assert tokens.value.param == "prompt"


async def test_completions_are_captured_and_mirrored(
    gateway_factory: Start, pair: tuple[Upstream, Upstream]
) -> None:
    main, side = pair
    gw = await gateway_factory(_config(main, side))
    async with gw.client() as client:
        plain = await client.completions.with_raw_response.create(
            model="instruct", prompt="Say hi", max_tokens=3
        )
        stream = await client.completions.create(model="instruct", prompt="Stream hi", stream=True)
        streamed = "".join([c.choices[0].text async for c in stream if c.choices])
    await gw.app[SHADOW].join()
    await gw.app[CAPTURE].flush()
    assert streamed == "Mock answer to: Stream hi"
    # Shadow: each request mirrored to the route's shadow target as a completion.
    assert side.stats.requests == {"/v1/completions": 2}
    assert side.stats.last_body["model"] == "mock-side"
    mirrored = gw.app[METRICS].registry.get_sample_value(
        "gateway_shadow_requests_total",
        {"route": "instruct", "prompt": "", "version": "", "outcome": "ok"},
    )
    assert mirrored == 2
    # Capture: the request and the answer's text, streamed or not.
    async with aiohttp.ClientSession() as session:
        status, body = await Admin(gw, session).call("GET", "/captures?limit=10")
    assert status == 200
    by_id = {c["request_id"]: c for c in body["captures"]}
    record: dict[str, Any] = by_id[plain.headers["X-Request-Id"]]
    assert record["request"]["params"]["prompt"] == "Say hi"
    assert record["answer"] == "Mock answer to: Say hi"
    (streamed_record,) = [c for c in body["captures"] if c["stream"]]
    assert streamed_record["answer"] == "Mock answer to: Stream hi"


async def test_a_prompts_shadow_version_is_mirrored_as_a_completion(
    gateway_factory: Start, pair: tuple[Upstream, Upstream]
) -> None:
    main, side = pair
    gw = await gateway_factory(_config(main, side).replace("shadow = {", "# shadow = {"))
    v2 = {
        "model": "sideways",
        "messages": [{"role": "system", "content": "Shadow for {{product}}."}],
    }
    async with aiohttp.ClientSession() as session:
        admin = Admin(gw, session)
        status, created = await admin.call("POST", "/prompts/writer/versions", v2)
        assert status == 201 and created["version"] == "v2"
        routing = {"weights": {"v1": 100}, "shadow": {"versions": ["v2"], "sample_rate": 1.0}}
        status, _ = await admin.call("PUT", "/prompts/writer/routing", routing)
        assert status == 200
    async with gw.client() as client:
        await client.completions.create(
            model="prompt:writer",
            prompt="Go",
            extra_body={"prompt_variables": {"product": "Acme"}},
        )
    await gw.app[SHADOW].join()
    assert side.stats.requests == {"/v1/completions": 1}
    assert side.stats.last_body["prompt"] == "Shadow for Acme.\n\nGo"
    assert side.stats.last_body["model"] == "mock-v2"
