"""`POST /v1/feedback`: tied to the version and target that served the request (two
live versions by weight), counted in `gateway_feedback_total` and in time buckets a
rollout can read, shared by replicas through Redis; bad input is 400, unknown ids 404."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from gateway.appkeys import FEEDBACK, METRICS
from gateway.store.records import RecentRequests, ServedBy
from tests.conftest import CLIENT_TOKEN, Gateway, Upstream, key_sha256
from tests.eval_support import Admin, gateway_config
from tests.redis_fixtures import RedisServer

GatewayFactory = Callable[[str], Awaitable[Gateway]]
OTHER_TOKEN = "sk-other-client-token"
OTHER_KEY = f"""
        [[keys]]
        name = "other-app"
        sha256 = "{key_sha256(OTHER_TOKEN)}"
"""


async def feedback(gw: Gateway, body: Any, token: str = CLIENT_TOKEN) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as session,
        session.post(gw.url("/v1/feedback"), json=body, headers=headers) as response,
    ):
        return response.status, await response.json()


async def two_live_versions(gw: Gateway) -> None:
    """support v1 (route chat, mock-gpt) and v2 (route other, mock-other) at 50/50."""
    async with aiohttp.ClientSession() as session:
        admin = Admin(gw, session)
        v2 = {"model": "other", "messages": [{"role": "system", "content": "v2 {{product}}"}]}
        assert (await admin.call("POST", "/prompts/support/versions", v2))[0] == 201
        assert (await admin.call("POST", "/prompts/support/versions/v2/approve", {}))[0] == 200
        status, _ = await admin.call(
            "PUT", "/prompts/support/routing", {"weights": {"v1": 50, "v2": 50}}
        )
        assert status == 200


async def served(gw: Gateway, count: int) -> dict[str, str]:
    """request id → the version that served it, for `count` sticky users."""
    versions = {}
    async with gw.client() as client:
        for i in range(count):
            raw = await client.chat.completions.with_raw_response.create(
                model="prompt:support",
                messages=[{"role": "user", "content": "hi"}],
                user=f"user-{i}",
                extra_body={"prompt_variables": {"product": "Acme"}},
            )
            versions[raw.headers["X-Request-Id"]] = raw.headers["X-Gateway-Prompt-Version"]
    return versions


def feedback_total(gw: Gateway, version: str, value: str) -> float:
    labels = {"prompt": "support", "version": version, "value": value}
    return gw.app[METRICS].registry.get_sample_value("gateway_feedback_total", labels) or 0.0


async def test_feedback_lands_on_the_version_that_served_each_request(
    gateway_factory: GatewayFactory, upstream: Upstream
) -> None:
    gw = await gateway_factory(gateway_config(upstream.base_url))
    await two_live_versions(gw)
    versions = await served(gw, 40)
    assert set(versions.values()) == {"v1", "v2"}  # 40 users, 50/50: both served
    for request_id, version in versions.items():
        status, answer = await feedback(
            gw, {"request_id": request_id, "score": 1 if version == "v1" else -1}
        )
        assert status == 200, answer
        assert answer["version"] == version and answer["prompt"] == "support"
        assert answer["model"] == ("mock-gpt" if version == "v1" else "mock-other")
        assert answer["value"] == ("positive" if version == "v1" else "negative")
    on_v1 = sum(v == "v1" for v in versions.values())
    on_v2 = len(versions) - on_v1
    assert feedback_total(gw, "v1", "positive") == on_v1
    assert feedback_total(gw, "v2", "negative") == on_v2
    assert feedback_total(gw, "v1", "negative") == feedback_total(gw, "v2", "positive") == 0
    stats = gw.app[FEEDBACK]
    v1, v2 = await stats.counts("support", "v1", 600), await stats.counts("support", "v2", 600)
    assert (v1.positive, v1.negative, v1.total, v1.negative_ratio) == (on_v1, 0, on_v1, 0.0)
    assert (v2.positive, v2.negative, v2.total, v2.negative_ratio) == (0, on_v2, on_v2, 1.0)
    assert (await stats.counts("support", "v3", 600)).total == 0


async def test_scores_between_0_and_1_and_plain_routes(
    gateway_factory: GatewayFactory, upstream: Upstream
) -> None:
    gw = await gateway_factory(gateway_config(upstream.base_url))
    ids = list(await served(gw, 3))
    for request_id, score in zip(ids, (0.8, 0.2, 0), strict=True):
        status, answer = await feedback(gw, {"request_id": request_id, "score": score})
        assert status == 200
        assert answer["value"] == ("positive" if score >= 0.5 else "negative")
    counts = await gw.app[FEEDBACK].counts("support", "v1", 60)
    assert (counts.positive, counts.negative, counts.total) == (1, 2, 3)
    assert counts.mean_score == pytest.approx(1.0 / 3)
    async with gw.client() as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="chat", messages=[{"role": "user", "content": "hi"}]
        )
    request_id = raw.headers["X-Request-Id"]
    status, answer = await feedback(gw, {"request_id": request_id, "score": 1, "comment": "ok"})
    assert status == 200 and answer["prompt"] is None and answer["model"] == "mock-gpt"


async def test_bad_feedback_is_400_unknown_is_404_and_keys_are_checked(
    gateway_factory: GatewayFactory, upstream: Upstream
) -> None:
    gw = await gateway_factory(gateway_config(upstream.base_url, extra=OTHER_KEY))
    (request_id,) = list(await served(gw, 1))
    for bad in (
        {"request_id": request_id, "score": 2},
        {"request_id": request_id, "score": -0.5},
        {"request_id": request_id, "score": "good"},
        {"request_id": request_id, "score": True},
        {"request_id": request_id},
        {"request_id": "", "score": 1},
        {"score": 1},
        {"request_id": request_id, "score": 1, "comment": 5},
    ):
        status, error = await feedback(gw, bad)
        assert status == 400, bad
        assert error["error"]["type"] == "invalid_request_error"
    status, error = await feedback(gw, {"request_id": "never-seen", "score": 1})
    assert status == 404 and error["error"]["code"] == "request_not_found"
    status, _ = await feedback(gw, {"request_id": request_id, "score": 1}, token="")
    assert status == 401
    # Another client's request is as unknown as a made-up one.
    status, _ = await feedback(gw, {"request_id": request_id, "score": 1}, token=OTHER_TOKEN)
    assert status == 404
    assert feedback_total(gw, "v1", "positive") == 0


async def test_with_redis_any_replica_takes_feedback_and_counts_are_shared(
    redis_server: RedisServer, gateway_factory: GatewayFactory, upstream: Upstream
) -> None:
    config = gateway_config(upstream.base_url, redis_url=redis_server.url)
    first, second = await gateway_factory(config), await gateway_factory(config)
    await two_live_versions(first)
    versions = await served(first, 10)
    await first.app[FEEDBACK].index.flush()  # the index reaches Redis in batches
    results = await asyncio.gather(
        *(
            feedback(second, {"request_id": rid, "score": 1 if v == "v1" else -1})
            for rid, v in versions.items()
        )
    )
    assert [answer["version"] for _, answer in results] == list(versions.values())
    on_v2 = sum(v == "v2" for v in versions.values())
    for gw in (first, second):  # both replicas read the same buckets
        counts = await gw.app[FEEDBACK].counts("support", "v2", 300)
        assert (counts.negative, counts.total) == (on_v2, on_v2)
    redis = aioredis.Redis.from_url(redis_server.url)
    try:
        request_key = f"gwtest:request:{next(iter(versions))}"
        assert 0 < await redis.pttl(request_key) <= 24 * 3600 * 1000
        buckets = [k async for k in redis.scan_iter("gwtest:feedback:{support}:*")]
        assert buckets and all(ttl > 0 for ttl in [await redis.ttl(k) for k in buckets])
        assert await redis.xlen("gwtest:feedback:events") == len(versions)
    finally:
        await redis.aclose()


def test_the_in_memory_index_is_bounded_in_size_and_time() -> None:
    recent = RecentRequests(ttl_s=60, max_entries=3)
    now = time.time()
    for i in range(5):
        recent.put(ServedBy(f"r{i}", now, "chat", "support", "v1", "fake", "mock-gpt", ""))
    assert len(recent) == 3 and recent.get("r0") is None and recent.get("r4") is not None
    recent.put(ServedBy("old", now - 61, "chat", "", "", "fake", "mock-gpt", ""))
    assert recent.get("old") is None  # past its time
    recent.put(ServedBy("new", now, "chat", "", "", "fake", "mock-gpt", ""))
    assert recent.get("old") is None and len(recent) <= 3


def test_expired_entries_leave_the_in_memory_index_in_bulk() -> None:
    """Memory is given back once entries pass their time, not only at the size cap."""
    recent = RecentRequests(ttl_s=60, max_entries=10_000)
    now = time.time()
    for i in range(10):
        recent.put(ServedBy(f"old{i}", now - 61, "chat", "", "", "fake", "mock-gpt", ""))
    for i in range(1024):
        recent.put(ServedBy(f"r{i}", now, "chat", "", "", "fake", "mock-gpt", ""))
    assert len(recent) == 1024
