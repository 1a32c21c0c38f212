"""Gradual rollouts end to end: real Redis, gateways on loopback, the in-process mock
provider, steps of about a second. Traffic uses a new sticky user per request, so the
split follows the weights; conditions are awaited by polling the rollout's status."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.app import create_app
from gateway.appkeys import METRICS, ROLLOUTS
from gateway.cli.main import main as cli_main
from gateway.config.loader import load_config
from gateway.config.source import ConfigError
from gateway.rollout.state import RolloutRequest
from gateway.store.redis import RedisStore
from gateway.store.rollout_redis import RedisRolloutStore
from tests.conftest import CLIENT_TOKEN, Gateway, key_sha256
from tests.redis_fixtures import RedisServer

AiohttpServer = Callable[..., Awaitable[TestServer]]
ADMIN = {"Authorization": "Bearer admin-token"}
CLIENT = {"Authorization": f"Bearer {CLIENT_TOKEN}"}
FAST = {"interval_s": 1, "steps": [20, 50, 100]}
# Tests not about latency: a loaded test machine's jitter of tens of ms is no breach.
CALM = {"latency_floor_s": 1.0}


def config(redis_url: str) -> str:
    redis = (
        f'[redis]\nurl = "{redis_url}"\nprefix = "ro:"\npoll_interval_s = 0.1' if redis_url else ""
    )
    return f"""
[server]
admin_token = "admin-token"
{redis}
[logging]
access_log = false
[rollout]
lease_s = 1.5
check_interval_s = 0.1
flush_interval_s = 0.1
bucket_s = 0.5
[providers.mock]
type = "mock"
[models.good]
targets = [{{ provider = "mock", model = "demo" }}]
[models.bad]
targets = [{{ provider = "mock", model = "error=500" }}]
retries_per_target = 0
[models.slow]
targets = [{{ provider = "mock", model = "slow=300" }}]
[[keys]]
name = "k"
sha256 = "{key_sha256()}"
[prompts.support]
model = "good"
messages = [{{ role = "system", content = "Answer for {{{{product}}}}." }}]
"""


class Replica:
    def __init__(self, server: TestServer, app: web.Application) -> None:
        self.server, self.app = server, app

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))


@pytest.fixture
async def start_replica(
    aiohttp_server: AiohttpServer, tmp_path: Path
) -> Callable[[str], Awaitable[Replica]]:
    async def start(redis_url: str) -> Replica:
        path = tmp_path / "gateway.toml"
        path.write_text(config(redis_url))
        app = create_app(load_config(path), watch_interval_s=3600)
        return Replica(await aiohttp_server(app), app)

    return start


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def admin(
    session: aiohttp.ClientSession, gw: Replica, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    async with session.request(method, gw.url("/admin" + path), json=body, headers=ADMIN) as r:
        return r.status, await r.json()


async def canary(session: aiohttp.ClientSession, gw: Replica, model: str) -> None:
    """v2 of `support` on route `model`, approved."""
    body = {
        "model": model,
        "messages": [{"role": "system", "content": f"v2 {{{{product}}}} {model}"}],
    }
    status, created = await admin(session, gw, "POST", "/prompts/support/versions", body)
    assert (status, created["version"]) == (201, "v2")
    status, _ = await admin(session, gw, "POST", "/prompts/support/versions/v2/approve", {})
    assert status == 200


async def start(session: aiohttp.ClientSession, gw: Replica, **body: Any) -> dict[str, Any]:
    status, answer = await admin(
        session, gw, "POST", "/prompts/support/rollout", {"version": "v2", **body}
    )
    assert status == 201, answer
    return answer


async def status_when(
    session: aiohttp.ClientSession,
    gw: Replica,
    done: Callable[[dict[str, Any]], bool],
    within_s: float = 20.0,
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        status, answer = await admin(session, gw, "GET", "/prompts/support/rollout")
        assert status == 200, answer
        if done(answer):
            return answer
        assert loop.time() < deadline, (
            f"rollout never got there: {answer['state']} {answer['events'][-3:]}"
        )
        await asyncio.sleep(0.05)


async def ask(session: aiohttp.ClientSession, gw: Replica, user: str) -> tuple[str, str]:
    body = {
        "model": "prompt:support",
        "user": user,
        "messages": [],
        "prompt_variables": {"product": "A"},
    }
    async with session.post(gw.url("/v1/chat/completions"), json=body, headers=CLIENT) as r:
        await r.read()
        return r.headers.get("X-Gateway-Prompt-Version", ""), r.headers.get("X-Request-Id", "")


@contextlib.asynccontextmanager
async def traffic(
    session: aiohttp.ClientSession,
    replicas: list[Replica],
    concurrency: int = 6,
    after: Callable[[str, str], Awaitable[None]] | None = None,
) -> AsyncIterator[None]:
    """Steady requests from new users, round robin over `replicas` (a live list)."""
    users = itertools.count()

    async def worker() -> None:
        while True:
            i = next(users)
            with contextlib.suppress(aiohttp.ClientError):
                version, request_id = await ask(session, replicas[i % len(replicas)], f"user-{i}")
                if after is not None and version:
                    await after(version, request_id)

    tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def finished(answer: dict[str, Any]) -> bool:
    """Decided, and the routing written (`pending` until it is)."""
    return answer["state"] != "running" and not answer["pending"]


def events(answer: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in answer["events"] if e["event"] == kind]


def counted(gw: Replica, event: str) -> float:
    value = gw.app[METRICS].registry.get_sample_value(
        "gateway_rollout_events_total", {"prompt": "support", "event": event}
    )
    return value or 0.0


async def test_a_healthy_canary_ramps_through_every_step_to_completion(
    redis_server: RedisServer,
    start_replica: Callable[[str], Awaitable[Replica]],
    session: aiohttp.ClientSession,
) -> None:
    gw = await start_replica(redis_server.url)
    await canary(session, gw, "good")
    started = await start(session, gw, **FAST, guards={"min_requests": 10, **CALM})
    assert (started["state"], started["step"], started["weights"]) == (
        "running",
        20,
        {"v1": 80, "v2": 20},
    )
    async with traffic(session, [gw]):
        answer = await status_when(session, gw, finished)
    assert answer["state"] == "completed", answer["events"]
    assert answer["weights"] == {"v1": 0, "v2": 100}
    promotes = events(answer, "promote")
    assert [e["step"] for e in promotes] == [50, 100]
    for event in promotes:
        numbers = event["numbers"]
        assert numbers["decision"] == "promote" and numbers["breached"] == []
        assert numbers["canary"]["requests"] >= 10 and numbers["baseline"]["requests"] >= 10
    assert counted(gw, "promote") == 2
    _, history = await admin(session, gw, "GET", "/prompts/support/history")
    by_rollout = [c for c in history["history"] if c["by"] == "rollout"]
    assert [c["after"]["weights"]["v2"] for c in by_rollout] == [100, 50, 20]
    assert "all guards held" in by_rollout[0]["reason"]
    assert "max_error_rate_increase" in by_rollout[0]["reason"]
    # Served by the new weights: everyone is on v2 now.
    assert (await ask(session, gw, "someone"))[0] == "v2"


async def test_an_erroring_canary_is_rolled_back_at_the_first_step(
    redis_server: RedisServer,
    start_replica: Callable[[str], Awaitable[Replica]],
    session: aiohttp.ClientSession,
) -> None:
    gw = await start_replica(redis_server.url)
    await canary(session, gw, "bad")
    await start(session, gw, **FAST, guards={"min_requests": 10, **CALM})
    async with traffic(session, [gw]):
        answer = await status_when(session, gw, finished)
    assert (answer["state"], answer["step"]) == ("rolled_back", 20)
    assert answer["weights"] == {"v1": 100}
    rollback = events(answer, "rollback")[0]
    numbers = rollback["numbers"]
    assert numbers["breached"] == ["max_error_rate_increase"]
    assert numbers["canary"]["error_rate"] == 1.0 and numbers["baseline"]["error_rate"] == 0.0
    assert numbers["canary"]["requests"] >= 10
    assert "max_error_rate_increase" in rollback["reason"]
    assert counted(gw, "rollback") == 1
    _, prompt = await admin(session, gw, "GET", "/prompts/support")
    assert prompt["routing"]["weights"] == {"v1": 100}
    _, history = await admin(session, gw, "GET", "/prompts/support/history")
    last = history["history"][0]
    assert last["by"] == "rollout" and "rolled back at 20%" in last["reason"]
    assert "canary 1 vs baseline 0" in last["reason"]


async def test_a_slow_canary_breaches_the_latency_guard_and_pauses_then_resume_and_abort(
    redis_server: RedisServer,
    start_replica: Callable[[str], Awaitable[Replica]],
    session: aiohttp.ClientSession,
) -> None:
    gw = await start_replica(redis_server.url)
    await canary(session, gw, "slow")
    await start(session, gw, **FAST, on_breach="pause", guards={"min_requests": 8})
    async with traffic(session, [gw], concurrency=10):
        answer = await status_when(session, gw, finished)
    assert (answer["state"], answer["step"]) == ("paused", 20)
    assert answer["weights"] == {"v1": 80, "v2": 20}  # paused: the canary keeps its share
    numbers = events(answer, "pause")[0]["numbers"]
    assert numbers["breached"] == ["max_p95_latency_ratio"]
    assert numbers["canary"]["p95_latency_s"] >= 0.25
    assert counted(gw, "pause") == 1
    status, error = await admin(session, gw, "POST", "/prompts/support/rollout/pause")
    assert status == 409 and error["error"]["code"] == "rollout_state"
    status, resumed = await admin(session, gw, "POST", "/prompts/support/rollout/resume", {})
    assert (status, resumed["state"], resumed["events"][-1]["by"]) == (200, "running", "admin")
    status, aborted = await admin(session, gw, "DELETE", "/prompts/support/rollout")
    assert (status, aborted["state"], aborted["weights"]) == (200, "aborted", {"v1": 100})
    _, prompt = await admin(session, gw, "GET", "/prompts/support")
    assert prompt["routing"]["weights"] == {"v1": 100}
    status, _ = await admin(session, gw, "DELETE", "/prompts/support/rollout")
    assert status == 409


async def test_negative_feedback_breaches_the_feedback_guard(
    redis_server: RedisServer,
    start_replica: Callable[[str], Awaitable[Replica]],
    session: aiohttp.ClientSession,
) -> None:
    gw = await start_replica(redis_server.url)
    await canary(session, gw, "good")
    await start(session, gw, **FAST, guards={"min_requests": 10, "min_feedback": 5, **CALM})

    async def feedback(version: str, request_id: str) -> None:
        body = {"request_id": request_id, "score": -1 if version == "v2" else 1}
        async with session.post(gw.url("/v1/feedback"), json=body, headers=CLIENT) as r:
            assert r.status == 200, await r.text()

    async with traffic(session, [gw], after=feedback):
        answer = await status_when(session, gw, finished)
    assert (answer["state"], answer["step"]) == ("rolled_back", 20)
    numbers = events(answer, "rollback")[0]["numbers"]
    assert numbers["breached"] == ["max_negative_feedback_increase"]
    assert numbers["canary"]["negative_ratio"] == 1.0
    assert numbers["baseline"]["negative_ratio"] == 0.0


async def test_too_few_requests_hold_the_step_without_a_decision(
    redis_server: RedisServer,
    start_replica: Callable[[str], Awaitable[Replica]],
    session: aiohttp.ClientSession,
) -> None:
    gw = await start_replica(redis_server.url)
    await canary(session, gw, "good")
    await start(session, gw, **FAST, guards={"min_requests": 1000})
    for i in range(5):
        await ask(session, gw, f"user-{i}")

    def held_with_all_five(answer: dict[str, Any]) -> bool:
        return any(
            e["numbers"]["canary"]["requests"] + e["numbers"]["baseline"]["requests"] == 5
            for e in events(answer, "hold")
        )

    answer = await status_when(session, gw, held_with_all_five)
    assert (answer["state"], answer["step"], answer["weights"]) == (
        "running",
        20,
        {"v1": 80, "v2": 20},
    )
    hold = events(answer, "hold")[-1]
    assert hold["numbers"]["decision"] == "hold" and hold["numbers"]["checks"] == []
    assert "too few requests" in hold["reason"]
    assert not events(answer, "promote") and counted(gw, "promote") == 0
    _, history = await admin(session, gw, "GET", "/prompts/support/history")
    assert [c["by"] for c in history["history"]].count("rollout") == 1  # the start only


async def test_two_replicas_share_one_rollout_one_drives_and_the_other_takes_over(
    redis_server: RedisServer,
    start_replica: Callable[[str], Awaitable[Replica]],
    session: aiohttp.ClientSession,
) -> None:
    a, b = await start_replica(redis_server.url), await start_replica(redis_server.url)
    await canary(session, a, "good")
    await start(
        session, a, interval_s=1, steps=[10, 30, 60, 100], guards={"min_requests": 5, **CALM}
    )
    live = [a, b]
    async with traffic(session, live):
        answer = await status_when(session, b, lambda s: bool(events(s, "promote")))
        drivers = {a.app[ROLLOUTS].replica_id: a, b.app[ROLLOUTS].replica_id: b}
        driver = drivers[answer["driver"]]
        other = b if driver is a else a
        assert "support" in driver.app[ROLLOUTS].held
        assert "support" not in other.app[ROLLOUTS].held
        assert {e["by"] for e in events(answer, "promote")} == {answer["driver"]}
        live.remove(driver)
        await driver.server.close()  # its cleanup hands the lease over
        answer = await status_when(session, other, finished)
    assert answer["state"] == "completed", answer["events"]
    deciders = [e["by"] for e in answer["events"] if e["event"] in ("promote", "hold")]
    survivor = other.app[ROLLOUTS].replica_id
    assert deciders[0] != survivor and deciders[-1] == survivor
    assert deciders == sorted(deciders, key=lambda by: by == survivor)  # never back


async def test_a_driver_that_dies_without_a_word_is_replaced_when_its_lease_expires(
    redis_server: RedisServer,
    start_replica: Callable[[str], Awaitable[Replica]],
    session: aiohttp.ClientSession,
) -> None:
    """No graceful hand-over: the driver's loop just stops (as in a kill -9 or a frozen
    process), its lease is left to expire, and the other replica takes over."""
    a, b = await start_replica(redis_server.url), await start_replica(redis_server.url)
    await canary(session, a, "good")
    await start(
        session, a, interval_s=1, steps=[10, 30, 60, 100], guards={"min_requests": 5, **CALM}
    )
    async with traffic(session, [a, b]):
        answer = await status_when(session, b, lambda s: bool(events(s, "promote")))
        drivers = {a.app[ROLLOUTS].replica_id: a, b.app[ROLLOUTS].replica_id: b}
        driver = drivers[answer["driver"]]
        other = b if driver is a else a
        driver.app[ROLLOUTS].stop()  # no renewal, no release: the lease must expire
        answer = await status_when(session, other, finished)
    assert answer["state"] == "completed", answer["events"]
    assert answer["events"][-1]["by"] == other.app[ROLLOUTS].replica_id


async def test_the_lease_expires_renews_and_is_released_only_by_its_holder(
    redis_store: RedisStore,
) -> None:
    store = RedisRolloutStore(redis_store.client, "lease:")
    assert await store.lease("p", "a", 0.3)
    assert not await store.lease("p", "b", 0.3)
    assert await store.lease("p", "a", 0.3)  # renewed
    await store.release("p", "b")  # not b's to release
    assert await store.lease_holder("p") == "a"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while not await store.lease("p", "b", 0.3):  # a died: its lease runs out
        assert loop.time() < deadline
        await asyncio.sleep(0.05)
    assert not await store.lease("p", "a", 0.3)
    await store.release("p", "b")
    assert await store.lease_holder("p") is None


async def test_rollout_state_is_written_by_compare_and_set(redis_store: RedisStore) -> None:
    store = RedisRolloutStore(redis_store.client, "cas:")
    first = replace(RolloutRequest("v2").rollout("p", {"v1": 100}, "t"), revision=1)
    assert await store.save(first, 0)
    assert not await store.save(first, 0)  # someone wrote revision 1 already
    loaded = await store.load("p")
    assert loaded == first
    assert await store.active() == ["p"]


async def test_admin_checks_and_the_embedded_driver(
    start_replica: Callable[[str], Awaitable[Replica]], session: aiohttp.ClientSession
) -> None:
    gw = await start_replica("")  # embedded store: the in-process driver
    body = {"model": "good", "messages": [{"role": "system", "content": "draft {{product}}"}]}
    await admin(session, gw, "POST", "/prompts/support/versions", body)
    status, error = await admin(session, gw, "POST", "/prompts/support/rollout", {"version": "v2"})
    assert (status, error["error"]["code"]) == (409, "version_not_approved")
    await admin(session, gw, "POST", "/prompts/support/versions/v2/approve", {})
    for bad in (
        {"steps": [50, 20, 100]},
        {"steps": [20, 50]},
        {"on_breach": "x"},
        {"guards": {"nope": 1}},
    ):
        status, error = await admin(
            session, gw, "POST", "/prompts/support/rollout", {"version": "v2", **bad}
        )
        assert status == 400, bad
    status, error = await admin(session, gw, "GET", "/prompts/support/rollout")
    assert (status, error["error"]["code"]) == (404, "rollout_not_found")
    await start(session, gw, interval_s=0.5, steps=[50, 100], guards={"min_requests": 5, **CALM})
    status, error = await admin(session, gw, "POST", "/prompts/support/rollout", {"version": "v2"})
    assert (status, error["error"]["code"]) == (409, "rollout_in_progress")
    async with traffic(session, [gw]):
        answer = await status_when(session, gw, finished)
    assert (answer["state"], answer["weights"]) == ("completed", {"v1": 0, "v2": 100})


async def test_the_cli_starts_watches_and_aborts(
    start_replica: Callable[[str], Awaitable[Replica]],
    session: aiohttp.ClientSession,
    capsys: pytest.CaptureFixture[str],
) -> None:
    gw = await start_replica("")
    await canary(session, gw, "good")
    conn = ["--url", gw.url("/").rstrip("/"), "--token", "admin-token"]
    start_args = ["rollout", "start", "support", "v2", "--steps", "10,50,100", "--interval", "10m"]
    assert await asyncio.to_thread(cli_main, [*start_args, "--min-requests", "7", *conn]) == 0
    assert await asyncio.to_thread(cli_main, ["rollout", "status", "support", *conn]) == 0
    assert await asyncio.to_thread(cli_main, ["rollout", "pause", "support", *conn]) == 0
    assert await asyncio.to_thread(cli_main, ["rollout", "abort", "support", *conn]) == 0
    out = capsys.readouterr().out
    assert "running at 10%" in out and "paused" in out and "aborted" in out
    _, answer = await admin(session, gw, "GET", "/prompts/support/rollout")
    assert answer["interval_s"] == 600 and answer["guards"]["min_requests"] == 7
    assert answer["weights"] == {"v1": 100}


def test_the_rollout_section_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text("[rollout]\nlease_s = 2\ncheck_interval_s = 1\n")
    with pytest.raises(ConfigError, match=r"rollout\.check_interval_s: must be less than half"):
        load_config(path)
    path.write_text("[rollout]\nlease_s = 3\ncheck_interval_s = 1\nbucket_s = 5\n")
    rollout = load_config(path).rollout
    assert (rollout.lease_s, rollout.bucket_s, rollout.stats_ttl_s) == (3, 5, 3600)


async def test_pinned_requests_do_not_count_as_live_traffic(
    gateway_factory: Callable[[str], Awaitable[Gateway]],
) -> None:
    """Suites and replays pin `prompt:NAME@vN`: they must not sway a rollout's guards."""
    gw = await gateway_factory("""
        [providers.mock]
        type = "mock"
        [models.chat]
        targets = [{ provider = "mock", model = "demo" }]
        [[keys]]
        name = "k"
        sha256 = "{key_sha256}"
        [prompts.p]
        model = "chat"
        messages = [{ role = "system", content = "hi" }]
    """)
    async with gw.client() as client:
        for model in ("prompt:p", "prompt:p@v1", "prompt:p@v1", "prompt:p"):
            await client.chat.completions.create(model=model, messages=[])
    stats = gw.app[ROLLOUTS].stats
    await stats.flush()
    counts = await stats.window("p", time.time() - 60)
    assert counts["v1"].requests == 2
