"""What runs is what was approved (SPEC §9): a config reload that moves the targets
under an approved version serving traffic is drift, in the prompt's history (once,
whichever replicas reload), in the version's admin JSON and in
`gateway_prompt_drift`; `block_drift` refuses such a reload and the old config serves.
Two replicas on a real Redis, reloading the same file."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.app import create_app
from gateway.config.drift import check_prompt, new_drift
from gateway.config.loader import load_config
from gateway.config.routes import RouteConfig, Target
from gateway.prompts.versions import PromptContent, PromptState, PromptVersion, Routing, TargetPin
from tests.conftest import CLIENT_TOKEN, key_sha256
from tests.redis_fixtures import RedisServer

AiohttpServer = Callable[..., Awaitable[TestServer]]
ADMIN = {"Authorization": "Bearer admin-token"}
CLIENT = {"Authorization": f"Bearer {CLIENT_TOKEN}"}
APPROVED = ["mock/model-a"]
MOVED = ["mock/model-b"]
SYSTEM = [{"role": "system", "content": "Answer for {{product}}."}]


def config(
    redis_url: str, chat: str = "model-a", other: str = "model-c", block: bool = False
) -> str:
    return f"""
[server]
admin_token = "admin-token"
[redis]
url = "{redis_url}"
prefix = "drift:"
socket_timeout_s = 0.5
connect_timeout_s = 0.5
poll_interval_s = 0.05
[providers.mock]
type = "mock"
[models.chat]
targets = [{{ provider = "mock", model = "{chat}" }}]
[models.other]
targets = [{{ provider = "mock", model = "{other}" }}]
[change_control]
block_drift = {str(block).lower()}
[[keys]]
name = "k"
sha256 = "{key_sha256()}"
[prompts.support]
model = "chat"
messages = [{{ role = "system", content = "Answer for {{{{product}}}}." }}]
"""


async def replica(aiohttp_server: AiohttpServer, path: Path) -> tuple[TestServer, web.Application]:
    app = create_app(load_config(path), watch_interval_s=3600)  # reloads only when asked
    return await aiohttp_server(app), app


async def call(
    session: aiohttp.ClientSession,
    server: TestServer,
    method: str,
    path: str,
    body: Any = None,
    status: int = 200,
) -> Any:
    async with session.request(
        method, server.make_url("/admin" + path), headers=ADMIN, json=body
    ) as r:
        assert r.status == status, await r.text()
        return await r.json()


async def drift_history(session: aiohttp.ClientSession, server: TestServer) -> list[Any]:
    history = (await call(session, server, "GET", "/prompts/support/history"))["history"]
    return [e for e in history if e["kind"] == "drift"]


async def versions(session: aiohttp.ClientSession, server: TestServer) -> dict[str, Any]:
    prompt = await call(session, server, "GET", "/prompts/support")
    return {v["version"]: v for v in prompt["versions"]}


async def gauge(session: aiohttp.ClientSession, server: TestServer, version: str) -> float | None:
    """`gateway_prompt_drift{prompt="support",version=…}`, None without the series."""
    async with session.get(server.make_url("/metrics")) as r:
        page = await r.text()
    series = f'gateway_prompt_drift{{prompt="support",version="{version}"}} '
    for line in page.splitlines():
        if line.startswith(series):
            return float(line.removeprefix(series))
    return None


async def served_model(session: aiohttp.ClientSession, server: TestServer) -> str:
    body = {"model": "prompt:support", "messages": [], "prompt_variables": {"product": "X"}}
    async with session.post(
        server.make_url("/v1/chat/completions"), json=body, headers=CLIENT
    ) as r:
        assert r.status == 200, await r.text()
        return r.headers["X-Gateway-Model"]


async def push_and_approve(
    session: aiohttp.ClientSession, server: TestServer, body: dict[str, Any]
) -> str:
    pushed = await call(session, server, "POST", "/prompts/support/versions", body, status=201)
    version: str = pushed["version"]
    await call(session, server, "POST", f"/prompts/support/versions/{version}/approve", {})
    return version


async def test_a_route_edit_under_a_live_version_is_one_drift_entry_across_replicas(
    aiohttp_server: AiohttpServer, tmp_path: Path, redis_server: RedisServer
) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(config(redis_server.url))
    server_a, _ = await replica(aiohttp_server, path)
    server_b, _ = await replica(aiohttp_server, path)
    async with aiohttp.ClientSession() as session:
        v1 = (await versions(session, server_a))["v1"]
        assert (v1["approved_targets"], v1["drift"]) == (
            [{"provider": "mock", "model": "model-a"}],
            None,
        )
        assert await gauge(session, server_a, "v1") == 0

        path.write_text(config(redis_server.url, chat="model-b"))
        reloaded = await call(session, server_a, "POST", "/reload")
        [entry] = await drift_history(session, server_a)
        assert (entry["by"], entry["version"]) == ("config", "v1")
        assert (entry["before"], entry["after"]) == (APPROVED, MOVED)
        assert "'chat'" in entry["reason"] and reloaded["config"] in entry["reason"]
        drift = (await versions(session, server_a))["v1"]["drift"]
        assert drift == {"approved": APPROVED, "now": MOVED, "since": entry["at"]}
        assert await gauge(session, server_a, "v1") == 1
        assert await served_model(session, server_a) == "model-b"  # drift is reported, not undone

        # The other replica reloading the same file finds the entry and writes none.
        await call(session, server_b, "POST", "/reload")
        assert await drift_history(session, server_b) == [entry]
        assert await gauge(session, server_b, "v1") == 1

        # The route back on the approved target: drift resolved, once.
        path.write_text(config(redis_server.url))
        for server in (server_a, server_b):
            await call(session, server, "POST", "/reload")
        resolved, first = await drift_history(session, server_a)
        assert first == entry
        assert (resolved["by"], resolved["version"]) == ("config", "v1")
        assert (resolved["before"], resolved["after"]) == (MOVED, APPROVED)
        assert resolved["reason"].startswith("drift resolved")
        assert (await versions(session, server_b))["v1"]["drift"] is None
        assert [await gauge(session, s, "v1") for s in (server_a, server_b)] == [0, 0]


async def test_a_file_edit_noticed_by_the_watcher_records_drift(
    aiohttp_server: AiohttpServer, tmp_path: Path, redis_server: RedisServer
) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(config(redis_server.url))
    server = await aiohttp_server(create_app(load_config(path), watch_interval_s=0.05))
    async with aiohttp.ClientSession() as session:
        path.write_text(config(redis_server.url, chat="model-b"))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while not (found := await drift_history(session, server)):
            assert loop.time() < deadline, "the file edit was not reloaded"
            await asyncio.sleep(0.02)
        assert [(e["before"], e["after"]) for e in found] == [(APPROVED, MOVED)]


async def test_block_drift_refuses_the_reload_and_the_old_config_keeps_serving(
    aiohttp_server: AiohttpServer, tmp_path: Path, redis_server: RedisServer
) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(config(redis_server.url, block=True))
    server, _ = await replica(aiohttp_server, path)
    async with aiohttp.ClientSession() as session:
        path.write_text(config(redis_server.url, chat="model-b", block=True))
        refused = (await call(session, server, "POST", "/reload", status=400))["error"]
        assert refused["code"] == "drift_blocked"
        for named in ("'support' v1", "route 'chat'", "mock/model-a", "mock/model-b"):
            assert named in refused["message"], named
        assert await served_model(session, server) == "model-a"
        async with session.get(server.make_url("/metrics")) as r:
            assert 'gateway_config_reloads_total{result="failure"} 1.0' in await r.text()
        assert await drift_history(session, server) == []
        assert (await versions(session, server))["v1"]["drift"] is None
        assert await gauge(session, server, "v1") == 0

        # A route no serving approved version uses may change.
        path.write_text(config(redis_server.url, other="model-d", block=True))
        await call(session, server, "POST", "/reload")
        assert await served_model(session, server) == "model-a"


async def test_a_start_with_a_drifting_config_and_block_drift_serves_and_reports_it(
    aiohttp_server: AiohttpServer, tmp_path: Path, redis_server: RedisServer
) -> None:
    """A start is not a reload: a new replica serves the file it is given (refusing
    would turn a restart into an outage) and records the drift; the replica already
    running refuses the same file as a reload."""
    path = tmp_path / "gateway.toml"
    path.write_text(config(redis_server.url, block=True))
    running, _ = await replica(aiohttp_server, path)
    path.write_text(config(redis_server.url, chat="model-b", block=True))
    started, _ = await replica(aiohttp_server, path)
    async with aiohttp.ClientSession() as session:
        assert await served_model(session, started) == "model-b"
        [entry] = await drift_history(session, started)
        assert (entry["by"], entry["before"], entry["after"]) == ("config", APPROVED, MOVED)
        assert await gauge(session, started, "v1") == 1
        await call(session, running, "POST", "/reload", status=400)
        assert await served_model(session, running) == "model-a"


async def test_a_version_pinning_its_targets_is_not_moved_by_a_route_edit(
    aiohttp_server: AiohttpServer, tmp_path: Path, redis_server: RedisServer
) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(config(redis_server.url))
    server, _ = await replica(aiohttp_server, path)
    async with aiohttp.ClientSession() as session:
        pins = [{"provider": "mock", "model": "pinned"}]
        v2 = await push_and_approve(
            session, server, {"model": "chat", "messages": SYSTEM, "targets": pins}
        )
        await call(
            session, server, "PUT", "/prompts/support/routing", {"weights": {"v1": 50, v2: 50}}
        )
        path.write_text(config(redis_server.url, chat="model-b"))
        await call(session, server, "POST", "/reload")
        assert [e["version"] for e in await drift_history(session, server)] == ["v1"]
        found = await versions(session, server)
        assert found[v2]["approved_targets"] == pins and found[v2]["drift"] is None
        assert found["v1"]["drift"]["now"] == MOVED
        assert (await gauge(session, server, "v1"), await gauge(session, server, v2)) == (1, 0)


async def test_a_labelled_approved_version_drifts_and_a_draft_never_does(
    aiohttp_server: AiohttpServer, tmp_path: Path, redis_server: RedisServer
) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(config(redis_server.url))
    server, _ = await replica(aiohttp_server, path)
    async with aiohttp.ClientSession() as session:
        labelled = await push_and_approve(session, server, {"model": "other", "messages": SYSTEM})
        idle = await push_and_approve(
            session, server, {"model": "other", "messages": [*SYSTEM, *SYSTEM]}
        )
        draft_body = {"model": "other", "messages": [{"role": "system", "content": "draft"}]}
        draft = (await call(session, server, "POST", "/prompts/support/versions", draft_body, 201))[
            "version"
        ]
        await call(
            session, server, "PUT", "/prompts/support/labels/production", {"version": labelled}
        )
        await call(session, server, "PUT", "/prompts/support/labels/staging", {"version": draft})
        path.write_text(config(redis_server.url, other="model-d"))
        await call(session, server, "POST", "/reload")

        [entry] = await drift_history(session, server)
        assert entry["version"] == labelled
        assert (entry["before"], entry["after"]) == (["mock/model-c"], ["mock/model-d"])
        found = await versions(session, server)
        assert found[labelled]["drift"]["now"] == ["mock/model-d"]
        assert found[draft]["status"] == "draft" and found[draft]["drift"] is None
        assert found[idle]["drift"] is None  # approved, but it serves nothing
        assert found["v1"]["drift"] is None
        assert await gauge(session, server, labelled) == 1
        assert (await gauge(session, server, draft), await gauge(session, server, idle)) == (
            None,
            None,
        )


async def test_a_drifted_version_given_weight_shows_on_every_replica(
    aiohttp_server: AiohttpServer, tmp_path: Path, redis_server: RedisServer
) -> None:
    """The snapshot refresh sets the gauge: weight put on a version whose route moved
    while it served nothing makes it drift on the replica that only heard of it."""
    path = tmp_path / "gateway.toml"
    path.write_text(config(redis_server.url))
    server_a, _ = await replica(aiohttp_server, path)
    server_b, _ = await replica(aiohttp_server, path)
    async with aiohttp.ClientSession() as session:
        v2 = await push_and_approve(session, server_a, {"model": "other", "messages": SYSTEM})
        path.write_text(config(redis_server.url, other="model-d"))
        for server in (server_a, server_b):
            await call(session, server, "POST", "/reload")
        assert await drift_history(session, server_a) == []  # v2 served nothing then
        await call(
            session, server_a, "PUT", "/prompts/support/routing", {"weights": {"v1": 90, v2: 10}}
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while await gauge(session, server_b, v2) != 1:
            assert loop.time() < deadline, "replica B's gauge did not follow the routing"
            await asyncio.sleep(0.02)
        drift = (await versions(session, server_b))[v2]["drift"]
        assert drift == {"approved": ["mock/model-c"], "now": ["mock/model-d"], "since": None}


def state(*versions: PromptVersion, weights: dict[str, int]) -> PromptState:
    return PromptState("p", {v.id: v for v in versions}, Routing(weights))


def approved(version: str, *targets: TargetPin) -> PromptVersion:
    content = PromptContent("chat", ({"role": "system", "content": version},))
    return PromptVersion(version, content.hash, content, "approved", approved_targets=targets)


def test_targets_compare_in_failover_order_and_unrecorded_approvals_never_drift() -> None:
    a, b = TargetPin("x", "a"), TargetPin("y", "b")
    models = {"chat": RouteConfig("chat", (Target("y", "b"), Target("x", "a")))}
    checks = check_prompt(
        state(approved("v1", a, b), approved("v2"), weights={"v1": 50, "v2": 50}), models
    )
    assert [(c.version, c.drifted) for c in checks] == [("v1", True)]  # v2: nothing recorded
    assert checks[0].now == (b, a)
    same = {"chat": RouteConfig("chat", (Target("x", "a"), Target("y", "b")))}
    unchanged = check_prompt(state(approved("v1", a, b), weights={"v1": 100}), same)
    assert not unchanged[0].drifted
    assert new_drift(checks, checks) == []  # drift the old config had already is not new
    assert new_drift(unchanged, checks) == checks
