"""Feedback one per (request, client key): a second replaces the first and is counted
once (in `gateway_feedback_total`, with the change in `gateway_feedback_replaced_total`,
and in the counts rollout guards read, with the latest value), across replicas too;
implicit feedback with a configured signal; unknown fields and signals are 400; `GET
/admin/feedback` reads it back with redacted comments. Embedded and on a real Redis."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from gateway.appkeys import FEEDBACK
from gateway.config.loader import load_config
from gateway.config.source import ConfigError
from tests.conftest import Gateway, Upstream, key_sha256
from tests.eval_support import gateway_config
from tests.evaluation.dataset_support import VIEWER, Caller, admins, metric
from tests.evaluation.test_feedback import feedback, served
from tests.redis_fixtures import RedisServer

GatewayFactory = Callable[[str], Awaitable[Gateway]]
SECRET = "sk-live-4f9Qz81"
CAPTURE = "enabled = true\n        redact = ['sk-live-[A-Za-z0-9]+']\n"
SIGNALS = """
        [feedback]
        signals = ["copied", "thumbs-up"]
"""


@pytest.fixture(params=["memory", "redis"])
def redis_url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return ""
    server: RedisServer = request.getfixturevalue("redis_server")
    return server.url


def config(upstream: Upstream, redis_url: str, extra: str = "") -> str:
    return gateway_config(
        upstream.base_url, capture=CAPTURE, redis_url=redis_url, extra=admins() + extra
    )


async def read_back(gw: Gateway, query: str = "") -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as session:
        answer = await Caller(gw, session, VIEWER).ok("GET", f"/feedback{query}")
    assert answer["count"] == len(answer["feedback"])
    found: list[dict[str, Any]] = answer["feedback"]
    return found


async def test_a_second_feedback_replaces_the_first_and_counts_once(
    gateway_factory: GatewayFactory, upstream: Upstream, redis_url: str
) -> None:
    cfg = config(upstream, redis_url)
    first = await gateway_factory(cfg)
    # With Redis the replacement lands on another replica.
    second = await gateway_factory(cfg) if redis_url else first
    (request_id, other_id) = list(await served(first, 2))
    await first.app[FEEDBACK].index.flush()
    status, answer = await feedback(first, {"request_id": request_id, "score": 1})
    assert status == 200 and answer["replaced"] is False and answer["kind"] == "explicit"
    status, answer = await feedback(second, {"request_id": request_id, "score": -1})
    assert status == 200 and answer["replaced"] is True and answer["value"] == "negative"
    assert (await feedback(first, {"request_id": other_id, "score": 1}))[0] == 200

    for gw in (first, second):  # the same on each replica
        counts = await gw.app[FEEDBACK].counts("support", "v1", 600)
        assert (counts.total, counts.positive, counts.negative) == (2, 1, 1)
        assert counts.score_sum == pytest.approx(1.0)  # 0 (was 1) + 1
    replicas = [first] if second is first else [first, second]

    async def total(name: str, **labels: str) -> float:
        labels.update(prompt="support", version="v1")
        return sum([await metric(gw, name, **labels) for gw in replicas])

    # Each request once, by its first value; the change apart.
    assert await total("gateway_feedback_total", value="positive") == 2
    assert await total("gateway_feedback_total", value="negative") == 0
    assert await total("gateway_feedback_replaced_total", to="negative") == 1
    assert await total("gateway_feedback_replaced_total", **{"from": "positive"}) == 1

    entries = await read_back(first)
    assert [(e["request_id"], e["value"]) for e in entries] == [
        (other_id, "positive"),
        (request_id, "negative"),  # the latest only
    ]
    assert entries[1]["replaced"] is True and entries[1]["key"] == "test-app"
    assert [e["request_id"] for e in await read_back(second, "?value=positive")] == [other_id]


async def test_concurrent_feedback_on_one_request_counts_once(
    gateway_factory: GatewayFactory, upstream: Upstream, redis_url: str
) -> None:
    cfg = config(upstream, redis_url)
    first = await gateway_factory(cfg)
    second = await gateway_factory(cfg) if redis_url else first
    (request_id,) = list(await served(first, 1))
    await first.app[FEEDBACK].index.flush()
    scores = [1, -1, 0.8, 0.1, 1, -1, 0.9, 0]
    replicas = [first, second] * 4
    results = await asyncio.gather(
        *(
            feedback(gw, {"request_id": request_id, "score": s})
            for gw, s in zip(replicas, scores, strict=True)
        )
    )
    assert all(status == 200 for status, _ in results)
    assert sum(not answer["replaced"] for _, answer in results) == 1  # one was first
    counts = await first.app[FEEDBACK].counts("support", "v1", 600)
    (latest,) = await read_back(first)
    assert counts.total == 1 and counts.positive + counts.negative == 1
    assert counts.score_sum == pytest.approx(latest["score"])
    assert (counts.positive == 1) == (latest["value"] == "positive")


async def test_implicit_feedback_names_a_configured_signal(
    gateway_factory: GatewayFactory, upstream: Upstream, redis_url: str
) -> None:
    gw = await gateway_factory(config(upstream, redis_url, SIGNALS))
    (request_id, other_id) = list(await served(gw, 2))
    body = {"request_id": request_id, "score": 1, "kind": "implicit", "signal": "copied"}
    status, answer = await feedback(gw, body)
    assert status == 200 and (answer["kind"], answer["signal"]) == ("implicit", "copied")
    status, _ = await feedback(gw, {"request_id": other_id, "score": 0.2, "comment": "meh"})
    assert status == 200
    (entry,) = await read_back(gw, "?kind=implicit")
    assert (entry["request_id"], entry["signal"], entry["kind"]) == (
        request_id,
        "copied",
        "implicit",
    )
    assert [e["request_id"] for e in await read_back(gw, "?signal=copied")] == [request_id]
    (explicit,) = await read_back(gw, "?kind=explicit")
    assert explicit["signal"] is None and explicit["comment"] == "meh"

    for bad, code, param in (
        ({"kind": "implicit", "signal": "regenerated"}, "unknown_signal", "signal"),  # not listed
        ({"kind": "implicit"}, None, "signal"),
        ({"signal": "copied"}, None, "signal"),  # a signal is implicit
        ({"kind": "sideways"}, None, "kind"),
        ({"scroe": 1}, "unknown_field", "scroe"),
        ({"metadata": {}}, "unknown_field", "metadata"),
    ):
        status, error = await feedback(gw, {"request_id": request_id, "score": 1, **bad})
        assert status == 400, bad
        assert error["error"]["param"] == param, error
        if code is not None:
            assert error["error"]["code"] == code
    assert len(await read_back(gw)) == 2  # nothing refused was kept


def test_signals_are_checked_in_the_config(tmp_path: Any) -> None:
    base = textwrap.dedent(gateway_config("http://127.0.0.1:9")).replace(
        "{key_sha256}", key_sha256()
    )
    assert load_config(tmp_path / "g.toml", text=base).feedback.signals == (
        "copied",
        "edited",
        "regenerated",
        "accepted",
    )
    for bad in ('signals = ["Copied"]', 'signals = ["a", "a"]', "signals = [1]", "nope = 1"):
        with pytest.raises(ConfigError):
            load_config(tmp_path / "g.toml", text=base + f"\n[feedback]\n{bad}\n")


async def test_comments_read_back_redacted_and_filtered(
    gateway_factory: GatewayFactory, upstream: Upstream, redis_url: str
) -> None:
    gw = await gateway_factory(config(upstream, redis_url))
    (request_id, other_id) = list(await served(gw, 2))
    comment = f"it printed my key {SECRET} back"
    assert (await feedback(gw, {"request_id": request_id, "score": -1, "comment": comment}))[
        0
    ] == 200
    assert (await feedback(gw, {"request_id": other_id, "score": 1}))[0] == 200
    (entry,) = await read_back(gw, "?prompt=support&version=v1&value=negative&since=1h")
    assert entry["comment"] == "it printed my key [REDACTED] back"
    assert entry["at"].endswith("Z") and entry["key"] == "test-app"
    assert (entry["prompt"], entry["version"], entry["model"]) == ("support", "v1", "mock-gpt")
    assert await read_back(gw, "?version=v2") == []
    assert await read_back(gw, "?prompt=other") == []
    assert len(await read_back(gw, "?limit=1")) == 1
    async with aiohttp.ClientSession() as session:
        viewer = Caller(gw, session, VIEWER)
        for query in ("?value=maybe", "?since=soon", "?limit=many"):
            status, error = await viewer.call("GET", f"/feedback{query}")
            assert status == 400 and error["error"]["code"] == "invalid_query", query
    if redis_url:  # never stored in the clear
        redis = aioredis.Redis.from_url(redis_url)
        try:
            keys = [k async for k in redis.scan_iter("gwtest:feedback:*")]
            for key in keys:
                kind = (await redis.type(key)).decode()
                raw = (
                    str(await redis.xrange(key))
                    if kind == "stream"
                    else str(await redis.hgetall(key))
                )
                assert SECRET not in raw
        finally:
            await redis.aclose()
