"""Test traffic apart: during a running rollout (real Redis, the built-in mock provider),
a replay of the canary and a test call of the canary change none of the per-version
counts the rollout's guards read, are never captured, cannot be given feedback, and
are counted in `/metrics` with their own roles."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict
from typing import Any

import aiohttp
import pytest

from gateway.appkeys import CAPTURE, ROLLOUTS
from gateway.proxy.call import TEST
from gateway.proxy.own_calls import call_pinned
from tests.conftest import CLIENT_TOKEN, Gateway
from tests.eval_support import ADMIN, Admin
from tests.evaluation.test_replay import replay_requests
from tests.redis_fixtures import RedisServer

GatewayFactory = Callable[[str], Awaitable[Gateway]]
CLIENT = {"Authorization": f"Bearer {CLIENT_TOKEN}"}


def config(redis_url: str) -> str:
    return f"""
        [server]
        admin_token = "{ADMIN}"

        [logging]
        access_log = false

        [redis]
        url = "{redis_url}"
        prefix = "apart:"
        poll_interval_s = 0.05

        [rollout]
        check_interval_s = 0.1
        flush_interval_s = 0.1
        bucket_s = 0.5

        [providers.mock]
        type = "mock"

        [models.good]
        targets = [{{ provider = "mock", model = "echo" }}]

        [models.wordy]
        targets = [{{ provider = "mock", model = "words=9" }}]

        [[keys]]
        name = "k"
        sha256 = "{{key_sha256}}"

        [prompts.support]
        model = "good"
        messages = [{{ role = "system", content = "Answer for {{{{product}}}}." }}]

        [capture]
        enabled = true
    """


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def chat(session: aiohttp.ClientSession, gw: Gateway, i: int) -> str:
    body = {
        "model": "prompt:support",
        "messages": [{"role": "user", "content": f"question {i}"}],
        "prompt_variables": {"product": "Acme"},
        "user": f"user-{i}",  # sticky: the split follows the weights
    }
    async with session.post(gw.url("/v1/chat/completions"), json=body, headers=CLIENT) as r:
        assert r.status == 200, await r.text()
        return r.headers["X-Request-Id"]


async def counts(gw: Gateway, since: float) -> dict[str, Any]:
    """What the rollout's guards read: per-version counts since `since`, flushed."""
    stats = gw.app[ROLLOUTS].stats
    await stats.flush()
    window = await stats.window("support", since)
    return {version: asdict(c) for version, c in window.items()}


async def test_replays_and_test_calls_of_the_canary_leave_the_rollout_statistics_alone(
    redis_server: RedisServer, gateway_factory: GatewayFactory, session: aiohttp.ClientSession
) -> None:
    gw = await gateway_factory(config(redis_server.url))
    admin = Admin(gw, session)
    canary = {"model": "wordy", "messages": [{"role": "system", "content": "v2 {{product}}"}]}
    status, body = await admin.call("POST", "/prompts/support/versions", canary)
    assert (status, body["version"]) == (201, "v2")
    status, _ = await admin.call("POST", "/prompts/support/versions/v2/approve", {})
    assert status == 200
    began = time.time() - 1
    rollout = {"version": "v2", "steps": [20, 100], "interval_s": 3600}  # stays at 20
    status, started = await admin.call("POST", "/prompts/support/rollout", rollout)
    assert status == 201 and started["state"] == "running", started

    production = [await chat(session, gw, i) for i in range(30)]
    await gw.app[CAPTURE].flush()
    before = await counts(gw, began)
    assert set(before) == {"v1", "v2"}  # both served live traffic
    assert sum(c["requests"] for c in before.values()) == 30
    status, captured = await admin.call("GET", "/captures?prompt=support&limit=1000")
    assert captured["count"] == 30

    status, kept = await admin.call(
        "POST", "/prompts/support/replays", {"candidate": "v2", "baseline": "v1"}
    )
    assert status == 201 and kept["counts"]["requests"] == 30, kept
    assert kept["counts"]["candidate_errors"] == 0
    body = {"messages": [{"role": "user", "content": "hi"}], "prompt_variables": {"product": "A"}}
    tested = await call_pinned(gw.app, "support", "v2", {**body, "stream": True}, TEST)
    assert (tested.status, tested.role, tested.version) == (200, "test", "v2")

    assert await counts(gw, began) == before  # the guards see no new request
    status, rollout_now = await admin.call("GET", "/prompts/support/rollout")
    assert (rollout_now["state"], rollout_now["step"]) == ("running", 20)
    await gw.app[CAPTURE].flush()
    status, captured = await admin.call("GET", "/captures?prompt=support&limit=1000")
    assert captured["count"] == 30  # none of them captured
    async with session.post(
        gw.url("/v1/feedback"), json={"request_id": tested.request_id, "score": -1}, headers=CLIENT
    ) as r:
        assert r.status == 404  # no feedback on a test call
    async with session.post(
        gw.url("/v1/feedback"), json={"request_id": production[0], "score": 1}, headers=CLIENT
    ) as r:
        assert r.status == 200  # while production's is taken

    async with session.get(gw.url("/metrics")) as response:
        metrics = await response.text()
    assert replay_requests(metrics) == 60  # 30 through each version
    assert any(
        line.startswith("gateway_requests_total{") and 'role="test"' in line
        and 'version="v2"' in line and line.endswith(" 1.0")
        for line in metrics.splitlines()
    )  # fmt: skip
