"""No configured secret ever reaches a log line, a metric, an error body or an admin
answer — even when a provider echoes our key back in its errors."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.conftest import CLIENT_TOKEN, Gateway

GatewayFactory = Callable[[str], Awaitable[Gateway]]
AiohttpServer = Callable[..., Awaitable[TestServer]]
PROVIDER_KEY = "sk-provider-SECRET-8d1f"
ANTHROPIC_KEY = "sk-ant-SECRET-77aa"
ADMIN_TOKEN = "admin-SECRET-5c2e"
SECRETS = (PROVIDER_KEY, ANTHROPIC_KEY, ADMIN_TOKEN, CLIENT_TOKEN)


def _echo_key(request: web.Request) -> str:
    """What a careless provider does: quote the credentials it was given."""
    return request.headers.get("Authorization", "") + request.headers.get("x-api-key", "")


async def echoing_provider(aiohttp_server: AiohttpServer) -> TestServer:
    async def chat(request: web.Request) -> web.Response:
        body = await request.json()
        status = {"bad-request": 400, "unauthorized": 401, "broken": 500}.get(body["model"], 0)
        if status:
            error = {
                "message": f"Incorrect API key provided: {_echo_key(request)}",
                "type": "invalid_request_error",
                "param": None,
                "code": None,
            }
            return web.json_response({"error": error}, status=status)
        return web.json_response(
            {
                "id": "c",
                "object": "chat.completion",
                "created": 1,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": "ok"},
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        )

    async def messages(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "type": "error",
                "error": {
                    "type": "authentication_error",
                    "message": f"invalid x-api-key {_echo_key(request)}",
                },
            },
            status=401,
        )

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/messages", messages)
    return await aiohttp_server(app)


@pytest.mark.timeout(60)
async def test_no_secret_in_any_output(
    gateway_factory: GatewayFactory,
    aiohttp_server: AiohttpServer,
    capfd: pytest.CaptureFixture[str],
) -> None:
    provider = await echoing_provider(aiohttp_server)
    base = str(provider.make_url("")).rstrip("/")
    gw = await gateway_factory(f"""
        [server]
        admin_token = "{ADMIN_TOKEN}"
        [providers.p]
        type = "openai"
        base_url = "{base}/v1"
        api_key = "{PROVIDER_KEY}"
        [providers.a]
        type = "anthropic"
        base_url = "{base}"
        api_key = "{ANTHROPIC_KEY}"
        [models.good]
        targets = [{{ provider = "p", model = "fine" }}]
        [models.bad-request]
        targets = [{{ provider = "p", model = "bad-request" }}]
        [models.all-fail]
        retries_per_target = 0
        targets = [
          {{ provider = "p", model = "unauthorized" }},
          {{ provider = "p", model = "broken" }},
          {{ provider = "a", model = "claude" }},
        ]
        [[keys]]
        name = "k"
        sha256 = "{{key_sha256}}"
        [prompts.p1]
        model = "good"
        messages = [{{ role = "system", content = "hi {{{{x}}}}" }}]
    """)
    seen: list[str] = []
    headers = {"Authorization": f"Bearer {CLIENT_TOKEN}"}
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with aiohttp.ClientSession() as session:

        async def post(path: str, body: object, with_headers: dict[str, str]) -> None:
            async with session.post(gw.url(path), json=body, headers=with_headers) as r:
                seen.append(f"{r.status} {dict(r.headers)} {await r.text()}")

        async def get(path: str, with_headers: dict[str, str]) -> None:
            async with session.get(gw.url(path), headers=with_headers) as r:
                seen.append(f"{r.status} {dict(r.headers)} {await r.text()}")

        for model in ("good", "bad-request", "all-fail", "prompt:p1"):
            for stream in (False, True):
                await post(
                    "/v1/chat/completions",
                    {
                        "model": model,
                        "stream": stream,
                        "prompt_variables": {"x": 1},
                        "messages": [{"role": "user", "content": "hello"}],
                    },
                    headers,
                )
        await post(
            "/v1/chat/completions",
            {"model": "good", "messages": []},
            {"Authorization": "Bearer wrong"},
        )
        await post("/v1/embeddings", {"model": "good", "input": "x"}, headers)
        for path in (
            "/admin/config",
            "/admin/providers",
            "/admin/prompts",
            "/admin/prompts/p1",
            "/admin/prompts/p1/history",
        ):
            await get(path, admin)
        await get("/admin/config", headers)  # a client key is no admin token
        await post("/admin/reload", {}, admin)
        await get("/metrics", {})
        await get("/readyz", {})
    await asyncio.sleep(0.3)  # the access-log writer flushes every 100 ms
    out, err = capfd.readouterr()
    seen += [out, err]
    # The scenario did exercise the echoing errors.
    everything = "\n".join(seen)
    assert "Incorrect API key provided" in everything
    assert any(entry.startswith("502 ") for entry in seen)  # every target failed, listed
    for secret in SECRETS[:3]:
        assert secret not in everything, f"{secret} leaked"
    # The client's own token never appears either (it is hashed, never logged).
    assert CLIENT_TOKEN not in out and CLIENT_TOKEN not in err
    for line in out.splitlines():
        if '"request_id"' in line:
            assert set(orjson.loads(line)) >= {"request_id", "status", "route"}
