"""Client keys in the store over real HTTP (embedded store): made through the admin
API, used with the official OpenAI SDK, rotated with a grace period, expired,
revoked; the config's keys listed read-only; roles; bad bodies; no secret in an
answer."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from aiohttp.test_utils import TestServer

from gateway.app import create_app
from gateway.appkeys import RUNTIME
from gateway.config.loader import load_config
from tests.conftest import CLIENT_TOKEN, key_sha256

AiohttpServer = Callable[..., Awaitable[TestServer]]
TOKENS = {"oli": ("tok-oli-operator", ["operator"]), "vic": ("tok-vic-viewer", ["viewer"])}
CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}


def config() -> str:
    admins = "\n".join(
        f'[[admins]]\nname = "{name}"\nsha256 = "{hashlib.sha256(token.encode()).hexdigest()}"'
        f"\nroles = {roles}\n"
        for name, (token, roles) in TOKENS.items()
    )
    return f"""
[providers.mock]
type = "mock"
[models.chat]
targets = [{{ provider = "mock", model = "demo" }}]
[models.other]
targets = [{{ provider = "mock", model = "demo" }}]
[teams.search]
limits = {{ rpm = 100 }}
[[keys]]
name = "from-config"
sha256 = "{key_sha256()}"
team = "search"
{admins}
"""


class Api:
    def __init__(self, session: aiohttp.ClientSession, server: TestServer) -> None:
        self.session, self.server = session, server

    async def call(
        self, method: str, path: str, body: Any = None, who: str = "oli"
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {TOKENS[who][0]}"}
        url = self.server.make_url("/admin" + path)
        async with self.session.request(method, url, json=body, headers=headers) as r:
            return r.status, await r.json()

    async def ok(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        got, answer = await self.call(method, path, body)
        assert got == status, answer
        return answer

    def sdk(self, token: str) -> openai.AsyncOpenAI:
        base = str(self.server.make_url("/v1"))
        return openai.AsyncOpenAI(base_url=base, api_key=token, max_retries=0)

    async def chat(self, token: str) -> str:
        """`ok`, or the error code the SDK raised."""
        try:
            async with self.sdk(token) as client:
                await client.chat.completions.create(**CHAT)
        except openai.AuthenticationError as exc:
            assert exc.status_code == 401
            body = exc.body if isinstance(exc.body, dict) else {}
            return f"{body.get('code')}: {body.get('message')}"
        return "ok"

    async def until_refused(self, token: str, within_s: float = 20.0) -> str:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        while (outcome := await self.chat(token)) == "ok":
            assert loop.time() < deadline, "still accepted"
            await asyncio.sleep(0.02)
        return outcome


@pytest.fixture
async def api(aiohttp_server: AiohttpServer, tmp_path: Path) -> AsyncIterator[Api]:
    path = tmp_path / "gateway.toml"
    path.write_text(config())
    # The file is watched rarely: these tests reload it through the admin API.
    server = await aiohttp_server(create_app(load_config(path), watch_interval_s=3600))
    async with aiohttp.ClientSession() as session:
        yield Api(session, server)


def no_secret(answer: Any, *secrets: str) -> None:
    text = str(answer)
    for secret in secrets:
        assert secret not in text
        assert hashlib.sha256(secret.encode()).hexdigest() not in text
    assert "sha256" not in text


async def test_a_created_key_serves_the_sdk_until_revoked(api: Api) -> None:
    made = await api.ok(
        "POST",
        "/keys",
        {
            "name": "search-app",
            "team": "search",
            "routes": ["chat"],
            "limits": {"rpm": 60, "max_concurrent": 2},
            "budget": {"usd": 5, "period": "day"},
            "metadata": {"owner": "search"},
        },
        201,
    )
    token = made["token"]
    assert token.startswith("sk-gw-") and len(token) > 40
    assert made["name"] == "search-app" and made["created_by"] == "oli"
    assert made["source"] == "store" and made["revoked"] is False
    assert made["limits"] == {"rpm": 60, "tpm": None, "max_concurrent": 2}
    assert made["budget"] == {"usd": 5.0, "period": "day"}

    assert await api.chat(token) == "ok"
    # What the limits see: the key's fields on the same in-memory ring the request uses.
    found = api.server.app[RUNTIME].current.keys.find(token)
    assert found is not None and found.team == "search" and found.limits.rpm == 60
    assert found.budget is not None and found.budget.usd == 5 and found.source == "store"
    async with api.sdk(token) as client:
        with pytest.raises(openai.PermissionDeniedError):  # its routes: chat only
            await client.chat.completions.create(**{**CHAT, "model": "other"})
    listed = await api.ok("GET", "/keys")
    shown = await api.ok("GET", "/keys/search-app")
    assert shown["metadata"] == {"owner": "search"} and shown["created_at"].endswith("Z")
    assert [k["name"] for k in listed["keys"]] == ["from-config", "search-app"]
    no_secret([listed, shown], token, CLIENT_TOKEN)

    revoked = await api.ok("DELETE", "/keys/search-app")
    assert revoked["revoked"] is True and revoked["revoked_by"] == "oli"
    assert (await api.chat(token)).startswith("invalid_api_key")
    again = await api.ok("DELETE", "/keys/search-app")  # revoking twice changes nothing
    assert again["revoked_at"] == revoked["revoked_at"]
    status, answer = await api.call("POST", "/keys", {"name": "search-app"})
    assert status == 409 and answer["error"]["code"] == "key_exists"


async def test_a_rotated_key_keeps_its_old_token_for_the_grace_period_only(api: Api) -> None:
    old = (await api.ok("POST", "/keys", {"name": "app"}, 201))["token"]
    rotated = await api.ok("POST", "/keys/app/rotate", {"grace_s": 2.0})
    new = rotated["token"]
    ends = datetime.fromisoformat(rotated["rotation_grace_until"]).timestamp()
    assert await api.chat(new) == "ok"
    # Asked during the grace period (unless the machine is slower than the grace).
    assert await api.chat(old) == "ok" or time.time() >= ends
    outcome = await api.until_refused(old)
    assert time.time() >= ends  # refused only once the grace had passed
    assert outcome.startswith("expired_api_key") and "expired" in outcome
    assert await api.chat(new) == "ok"
    # Without a grace period the old token stops at once.
    newest = (await api.ok("POST", "/keys/app/rotate", {"grace_s": 0}))["token"]
    assert (await api.chat(new)).startswith("invalid_api_key")
    assert await api.chat(newest) == "ok"
    no_secret(await api.ok("GET", "/keys/app"), old, new, newest)


async def test_an_expired_key_is_refused_with_a_clear_message(api: Api) -> None:
    soon = datetime.fromtimestamp(time.time() + 1.0, tz=UTC).isoformat()
    made = await api.ok("POST", "/keys", {"name": "temp", "expires_at": soon}, 201)
    outcome = await api.until_refused(made["token"])
    assert outcome.startswith("expired_api_key: This API key expired at ")
    assert (await api.ok("GET", "/keys/temp"))["expired"] is True
    status, answer = await api.call("POST", "/keys", {"name": "late", "expires_at": 1000})
    assert status == 400 and answer["error"]["param"] == "expires_at"
    later = await api.ok("PATCH", "/keys/temp", {"expires_at": time.time() + 3600})
    assert later["expired"] is False and await api.chat(made["token"]) == "ok"


async def test_config_keys_are_listed_read_only(api: Api) -> None:
    listed = await api.ok("GET", "/keys")
    (config_key,) = [k for k in listed["keys"] if k["name"] == "from-config"]
    assert config_key["source"] == "config" and config_key["read_only"] is True
    assert config_key["team"] == "search"
    for method, path, body in (
        ("POST", "/keys/from-config/rotate", {}),
        ("DELETE", "/keys/from-config", None),
        ("PATCH", "/keys/from-config", {"team": None}),
        ("POST", "/keys", {"name": "from-config"}),
    ):
        status, answer = await api.call(method, path, body)
        assert status == 409 and answer["error"]["code"] == "config_key", (method, path)
    assert await api.chat(CLIENT_TOKEN) == "ok"


async def test_operators_change_keys_and_viewers_read_them(api: Api) -> None:
    status, answer = await api.call("POST", "/keys", {"name": "x"}, who="vic")
    assert status == 403 and answer["error"]["role_needed"] == "operator"
    await api.ok("POST", "/keys", {"name": "x"}, 201)
    for method, path in (("DELETE", "/keys/x"), ("POST", "/keys/x/rotate")):
        status, _ = await api.call(method, path, {}, who="vic")
        assert status == 403
    status, listed = await api.call("GET", "/keys", who="vic")
    assert status == 200 and len(listed["keys"]) == 2


async def test_edits_reach_the_ring_and_bad_bodies_are_400s(api: Api) -> None:
    token = (await api.ok("POST", "/keys", {"name": "e"}, 201))["token"]
    edited = await api.ok(
        "PATCH", "/keys/e", {"limits": {"tpm": 1000}, "team": "search", "routes": ["chat"]}
    )
    assert edited["limits"]["tpm"] == 1000 and edited["routes"] == ["chat"]
    found = api.server.app[RUNTIME].current.keys.find(token)
    assert found is not None and found.limits.tpm == 1000 and found.team == "search"
    for body, param in (
        ({"name": "bad name!"}, "name"),
        ({"name": "n", "team": "nope"}, "team"),
        ({"name": "n", "routes": ["nope"]}, "routes"),
        ({"name": "n", "limits": {"rpm": 0}}, "limits.rpm"),
        ({"name": "n", "budget": {"usd": 1, "period": "week"}}, "budget.period"),
        ({"name": "n", "expires_at": "tomorrow"}, "expires_at"),
        ({"name": "n", "metadata": {"a": 1}}, "metadata"),
        ({"name": "n", "colour": "red"}, "colour"),
    ):
        status, answer = await api.call("POST", "/keys", body)
        assert status == 400 and answer["error"]["param"] == param, (body, answer)
    status, answer = await api.call("PATCH", "/keys/missing", {})
    assert status == 404 and answer["error"]["code"] == "key_not_found"


async def test_a_config_reload_keeps_the_stores_keys(api: Api, tmp_path: Path) -> None:
    token = (await api.ok("POST", "/keys", {"name": "kept"}, 201))["token"]
    path = tmp_path / "gateway.toml"
    path.write_text(config() + '[models.third]\ntargets = [{ provider = "mock", model = "x" }]\n')
    reloaded = await api.ok("POST", "/reload")
    assert reloaded["changes"]  # a new runtime, with a new key ring
    assert await api.chat(token) == "ok" and await api.chat(CLIENT_TOKEN) == "ok"
