"""The admin API and prompt routing on the embedded store, end to end."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from tests.conftest import Gateway, Upstream

GatewayFactory = Callable[[str], Awaitable[Gateway]]
ADMIN = "admin-secret-token"


def config(upstream_url: str) -> str:
    return f"""
        [server]
        admin_token = "{ADMIN}"
        [providers.fake]
        type = "openai"
        base_url = "{upstream_url}"
        api_key = "sk-upstream-secret"
        [models.chat]
        targets = [{{ provider = "fake", model = "mock-gpt" }}]
        [models.other]
        targets = [{{ provider = "fake", model = "mock-other" }}]
        [[keys]]
        name = "test-app"
        sha256 = "{{key_sha256}}"
        [prompts.support]
        model = "chat"
        messages = [{{ role = "system", content = "You answer for {{{{product}}}}." }}]
        params = {{ temperature = 0.2 }}
    """


class Admin:
    def __init__(self, gw: Gateway, session: aiohttp.ClientSession, token: str = ADMIN):
        self.gw, self.session, self.token = gw, session, token

    async def call(self, method: str, path: str, json: Any = None) -> tuple[int, Any]:
        async with self.session.request(
            method,
            self.gw.url("/admin" + path),
            json=json,
            headers={"Authorization": f"Bearer {self.token}"},
        ) as r:
            return r.status, await r.json()


@pytest.fixture
async def setup(gateway_factory: GatewayFactory, upstream: Upstream) -> Any:
    gw = await gateway_factory(config(upstream.base_url))
    async with aiohttp.ClientSession() as session:
        yield gw, Admin(gw, session), upstream


async def test_admin_needs_the_token(setup: Any) -> None:
    gw, admin, _ = setup
    for token in ("", "wrong", "sk-client-secret-token"):
        status, body = await Admin(gw, admin.session, token).call("GET", "/prompts")
        assert status == 401
        assert body["error"]["code"] in ("invalid_admin_token",)


async def test_config_prompt_is_live_as_v1(setup: Any) -> None:
    gw, admin, upstream = setup
    status, prompt = await admin.call("GET", "/prompts/support")
    assert status == 200
    assert prompt["routing"]["weights"] == {"v1": 100}
    assert prompt["versions"][0]["status"] == "approved"
    async with gw.client() as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="prompt:support",
            messages=[{"role": "user", "content": "hello"}],
            extra_body={"prompt_variables": {"product": "Acme"}},
        )
    assert raw.headers["X-Gateway-Prompt-Version"] == "v1"
    sent = upstream.stats.last_body
    assert sent["messages"] == [
        {"role": "system", "content": "You answer for Acme."},
        {"role": "user", "content": "hello"},
    ]
    assert sent["temperature"] == 0.2
    assert "prompt_variables" not in sent
    async with gw.client() as client:
        assert "prompt:support" in [m.id async for m in client.models.list()]


async def test_missing_variable_is_400(setup: Any) -> None:
    gw, _, upstream = setup
    async with gw.client() as client:
        with pytest.raises(openai.BadRequestError, match="product"):
            await client.chat.completions.create(model="prompt:support", messages=[])
    assert upstream.stats.total == 0


async def test_version_lifecycle_weights_and_rollback(setup: Any) -> None:
    gw, admin, upstream = setup
    v2_body = {"model": "other", "messages": [{"role": "system", "content": "v2 for {{product}}"}]}
    status, created = await admin.call("POST", "/prompts/support/versions", v2_body)
    assert (status, created["version"], created["status"]) == (201, "v2", "draft")
    status, again = await admin.call("POST", "/prompts/support/versions", v2_body)
    assert (status, again["version"], again["hash"]) == (200, "v2", created["hash"])

    status, error = await admin.call(
        "PUT", "/prompts/support/routing", {"weights": {"v1": 50, "v2": 50}}
    )
    assert status == 409 and error["error"]["code"] == "draft_version"
    status, _ = await admin.call(
        "PUT", "/prompts/support/routing", {"weights": {"v1": 50, "v2": 60}}
    )
    assert status == 400
    status, _ = await admin.call("PUT", "/prompts/support/routing", {"weights": {"v9": 100}})
    assert status == 400
    # A draft may be shadowed.
    status, _ = await admin.call(
        "PUT",
        "/prompts/support/routing",
        {"weights": {"v1": 100}, "shadow": {"versions": ["v2"], "sample_rate": 0.5}},
    )
    assert status == 200

    status, approved = await admin.call(
        "POST", "/prompts/support/versions/v2/approve", {"note": "reviewed"}
    )
    assert (status, approved["status"], approved["approved_by"]) == (200, "approved", "admin")
    status, change = await admin.call(
        "PUT",
        "/prompts/support/routing",
        {"weights": {"v1": 0, "v2": 100}, "reason": "ship v2"},
    )
    assert status == 200 and change["after"]["weights"] == {"v1": 0, "v2": 100}

    async with gw.client() as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="prompt:support", messages=[], extra_body={"prompt_variables": {"product": "X"}}
        )
        assert raw.headers["X-Gateway-Prompt-Version"] == "v2"
        assert raw.headers["X-Gateway-Route"] == "other"
        assert upstream.stats.last_body["model"] == "mock-other"
        # A pinned version serves whatever the weights say.
        raw = await client.chat.completions.with_raw_response.create(
            model="prompt:support@v1",
            messages=[],
            extra_body={"prompt_variables": {"product": "X"}},
        )
        assert raw.headers["X-Gateway-Prompt-Version"] == "v1"

    status, history = await admin.call("GET", "/prompts/support/history")
    assert history["history"][0]["reason"] == "ship v2"
    assert history["history"][0]["by"] == "admin"
    assert history["history"][0]["before"]["weights"] == {"v1": 100}

    status, rolled = await admin.call("POST", "/prompts/support/rollback")
    assert status == 200 and rolled["after"]["weights"] == {"v1": 100}
    async with gw.client() as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="prompt:support", messages=[], extra_body={"prompt_variables": {"product": "X"}}
        )
        assert raw.headers["X-Gateway-Prompt-Version"] == "v1"
    metrics = await _metrics(gw, admin.session)
    assert 'gateway_prompt_weight{prompt="support",version="v1"} 100.0' in metrics
    assert 'gateway_prompt_weight{prompt="support",version="v2"} 0.0' in metrics


async def test_sticky_key_keeps_a_user_on_one_version(setup: Any) -> None:
    gw, admin, _ = setup
    await admin.call(
        "POST",
        "/prompts/support/versions",
        {"model": "chat", "messages": [{"role": "system", "content": "B {{product}}"}]},
    )
    await admin.call("POST", "/prompts/support/versions/v2/approve", {})
    await admin.call("PUT", "/prompts/support/routing", {"weights": {"v1": 50, "v2": 50}})
    seen: dict[str, set[str]] = {}
    async with gw.client() as client:
        for user in ("ann", "bob", "cy", "dee"):
            for _ in range(3):
                raw = await client.chat.completions.with_raw_response.create(
                    model="prompt:support",
                    messages=[],
                    user=user,
                    extra_body={"prompt_variables": {"product": "X"}},
                )
                seen.setdefault(user, set()).add(raw.headers["X-Gateway-Prompt-Version"])
            raw = await client.chat.completions.with_raw_response.create(
                model="prompt:support",
                messages=[],
                extra_headers={"X-Gateway-Sticky-Key": user},
                extra_body={"prompt_variables": {"product": "X"}},
            )
            seen[user].add(raw.headers["X-Gateway-Prompt-Version"])
    assert all(len(versions) == 1 for versions in seen.values())


async def test_unknown_prompt_and_version(setup: Any) -> None:
    gw, admin, _ = setup
    async with gw.client() as client:
        with pytest.raises(openai.NotFoundError):
            await client.chat.completions.create(model="prompt:nope", messages=[])
        with pytest.raises(openai.NotFoundError):
            await client.chat.completions.create(model="prompt:support@v7", messages=[])
        # An empty version is a mistake, not a request for the live one.
        with pytest.raises(openai.BadRequestError) as refused:
            await client.chat.completions.create(model="prompt:support@", messages=[])
    assert refused.value.code == "invalid_model" and refused.value.param == "model"
    assert (await admin.call("GET", "/prompts/nope"))[0] == 404
    assert (await admin.call("POST", "/prompts/support/versions/v9/approve", {}))[0] == 404
    status, _ = await admin.call(
        "POST",
        "/prompts/support/versions",
        {"model": "no-such-route", "messages": [{"role": "user", "content": "x"}]},
    )
    assert status == 400


async def test_config_and_providers_hide_secrets(setup: Any) -> None:
    gw, admin, _ = setup
    status, cfg = await admin.call("GET", "/config")
    assert status == 200
    text = str(cfg)
    assert "sk-upstream-secret" not in text and ADMIN not in text
    assert cfg["providers"]["fake"]["api_key"] == "***"
    async with gw.client() as client:
        await client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "x"}]
        )
    status, providers = await admin.call("GET", "/providers")
    assert status == 200
    target = providers["targets"][0]
    assert target["circuit"] == "closed"
    assert target["window_requests"] == 1 and target["window_error_rate"] == 0.0
    assert "sk-upstream-secret" not in str(providers)


async def _metrics(gw: Gateway, session: aiohttp.ClientSession) -> str:
    async with session.get(gw.url("/metrics")) as r:
        return await r.text()


async def _cli(gw: Gateway, *args: str, token: str = ADMIN) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "prompts",
        *args,
        "--url",
        gw.url(""),
        "--token",
        token,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    return process.returncode or 0, out.decode(), err.decode()


async def test_prompts_cli(setup: Any, tmp_path: Path) -> None:
    gw, _, _ = setup
    code, out, _ = await _cli(gw, "list")
    assert code == 0 and "support" in out and "v1=100" in out
    file = tmp_path / "prompts.toml"
    file.write_text(
        '[prompts.support]\nmodel = "chat"\n'
        'messages = [{ role = "system", content = "New {{product}}" }]\n'
    )
    code, out, _ = await _cli(gw, "push", str(file))
    assert code == 0 and "support: v2 (draft" in out
    code, _, err = await _cli(gw, "weights", "support", "v1=90", "v2=10")
    assert code == 4 and "409" in err  # refused by the gateway
    code, out, _ = await _cli(gw, "approve", "support", "v2", "--note", "ok")
    assert code == 0 and "approved" in out
    code, out, _ = await _cli(gw, "weights", "support", "v1=90", "v2=10", "--reason", "canary")
    assert code == 0 and "v1=90 v2=10" in out
    code, out, _ = await _cli(gw, "history", "support")
    assert code == 0 and "canary" in out.splitlines()[0]
    code, out, _ = await _cli(gw, "rollback", "support")
    assert code == 0 and "v1=100" in out
    code, out, _ = await _cli(gw, "show", "support", "--json")
    assert code == 0 and json.loads(out)["routing"]["weights"] == {"v1": 100}
    code, _, err = await _cli(gw, "list", token="wrong")
    assert code == 4 and "401" in err


async def test_a_bad_field_is_named_and_who_acts_comes_from_the_token(setup: Any) -> None:
    gw, admin, _ = setup
    for path, body, param in (
        ("/prompts/support/versions/v1/approve", {"note": 3}, "note"),
        ("/prompts/support/routing", {"weights": {"v1": "all"}}, "weights"),
        ("/prompts/support/rollback", {"by": ["x"]}, "by"),
        ("/prompts/support/rollout", {"version": "v1", "interval_s": 0}, "interval_s"),
    ):
        status, error = await admin.call("POST" if "routing" not in path else "PUT", path, body)
        assert (status, error["error"]["type"], error["error"]["param"]) == (
            400,
            "invalid_request_error",
            param,
        ), path
    async with (
        aiohttp.ClientSession() as session,
        session.put(
            gw.url("/admin/prompts/support/routing"),
            json={"weights": {"v1": 100}, "reason": "same"},
            headers={"Authorization": f"Bearer {ADMIN}", "X-Gateway-Actor": "carol"},
        ) as r,
    ):
        error = (await r.json())["error"]
        assert (r.status, error["code"], error["param"]) == (400, "by_not_trusted", "by")
    status, change = await admin.call(
        "PUT", "/prompts/support/routing", {"weights": {"v1": 100}, "by": "admin"}
    )
    assert (status, change["by"]) == (200, "admin")  # naming oneself is no lie
