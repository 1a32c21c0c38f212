"""Fakes for the guard tests, each a real HTTP server on loopback: an OpenAI-compatible
upstream whose answers are scripted (so a retry can see a different answer), and a
guard webhook that answers as told, or never in time."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.eval_support import ADMIN

AiohttpServer = Callable[..., Awaitable[TestServer]]
SCRIPT: web.AppKey[Script] = web.AppKey("script")
HOOK: web.AppKey[Hook] = web.AppKey("hook")


@dataclass
class Script:
    """Answers in turn (the last one repeats); `{system}` is the request's first
    system message, so prompt versions answer apart."""

    answers: list[str]
    asked: list[dict[str, Any]] = field(default_factory=list)
    _count: itertools.count[int] = field(default_factory=itertools.count)

    def next_answer(self, body: dict[str, Any]) -> str:
        self.asked.append(body)
        index = min(next(self._count), len(self.answers) - 1)
        system = next((m["content"] for m in body["messages"] if m["role"] == "system"), "")
        return self.answers[index].replace("{system}", system)


async def _chat(request: web.Request) -> web.Response:
    body = await request.json()
    text = request.app[SCRIPT].next_answer(body)
    return web.json_response(
        {
            "id": "chatcmpl-scripted",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
        }
    )


async def scripted_upstream(aiohttp_server: AiohttpServer, *answers: str) -> tuple[str, Script]:
    """The base URL of a fake OpenAI upstream answering `answers` in turn."""
    app = web.Application()
    script = app[SCRIPT] = Script(list(answers))
    app.router.add_post("/v1/chat/completions", _chat)
    server = await aiohttp_server(app)
    return str(server.make_url("/v1")), script


@dataclass
class Hook:
    verdict: dict[str, Any]
    hang: bool = False  # never answer (until the test ends)
    seen: list[dict[str, Any]] = field(default_factory=list)
    released: asyncio.Event = field(default_factory=asyncio.Event)


async def _hook(request: web.Request) -> web.Response:
    hook = request.app[HOOK]
    hook.seen.append(await request.json())
    if hook.hang:
        await hook.released.wait()
    return web.json_response(hook.verdict)


async def webhook(aiohttp_server: AiohttpServer, hook: Hook) -> str:
    app = web.Application()
    app[HOOK] = hook
    app.router.add_post("/check", _hook)

    async def release(app: web.Application) -> None:
        hook.released.set()

    app.on_shutdown.append(release)
    server = await aiohttp_server(app)
    return str(server.make_url("/check"))


def config(upstreams: list[str], extra: str, redis_url: str = "") -> str:
    """Providers `a`, `b`… on the given upstreams; route `chat` tries them in order."""
    providers = "".join(
        f"""
        [providers.p{i}]
        type = "openai"
        base_url = "{url}"
        api_key = "sk-upstream-secret"
        """
        for i, url in enumerate(upstreams)
    )
    targets = ", ".join(f'{{ provider = "p{i}", model = "m{i}" }}' for i in range(len(upstreams)))
    redis = (
        f"""
        [redis]
        url = "{redis_url}"
        prefix = "guards:"
        poll_interval_s = 0.05
        socket_timeout_s = 5
        connect_timeout_s = 5
        """
        if redis_url
        else ""
    )
    return f"""
        [server]
        admin_token = "{ADMIN}"
        request_timeout_s = 30
        {providers}
        {redis}
        [[keys]]
        name = "test-app"
        sha256 = "{{key_sha256}}"

        [[keys]]
        name = "other-app"
        sha256 = "{OTHER_SHA256}"

        {extra}
    """.replace("@TARGETS@", targets)


OTHER_TOKEN = "sk-other-client-token"
OTHER_SHA256 = hashlib.sha256(OTHER_TOKEN.encode()).hexdigest()


async def admin_call(
    session: aiohttp.ClientSession,
    base: str,
    method: str,
    path: str,
    body: Any = None,
    token: str = ADMIN,
) -> tuple[int, Any]:
    async with session.request(
        method, base + "/admin" + path, json=body, headers={"Authorization": f"Bearer {token}"}
    ) as response:
        return response.status, await response.json()


async def client_review(
    session: aiohttp.ClientSession, base: str, review_id: str, token: str
) -> tuple[int, Any]:
    async with session.get(
        f"{base}/v1/reviews/{review_id}", headers={"Authorization": f"Bearer {token}"}
    ) as response:
        return response.status, await response.json()
