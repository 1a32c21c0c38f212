"""Change control over real HTTP: identities and roles from the config, four eyes,
labels, one history with ids, rollback to any point, documentation that is never
dropped. The end to end runs on real Redis with two replicas."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from gateway.app import create_app
from gateway.config.loader import load_config
from tests.conftest import CLIENT_TOKEN, key_sha256
from tests.redis_fixtures import RedisServer

AiohttpServer = Callable[..., Awaitable[TestServer]]
BREAK_GLASS = "break-glass-token"
TOKENS = {
    "ann": ("tok-ann-author", ["author"]),
    "abe": ("tok-abe-approver", ["approver", "viewer"]),
    "amy": ("tok-amy-approver", ["approver"]),
    "oli": ("tok-oli-operator", ["operator"]),
    "vic": ("tok-vic-viewer", ["viewer"]),
}
CLIENT = {"Authorization": f"Bearer {CLIENT_TOKEN}"}
V2 = {"model": "chat", "messages": [{"role": "system", "content": "Two for {{product}}."}]}


def admins(names: tuple[str, ...] = tuple(TOKENS)) -> str:
    blocks = []
    for name in names:
        token, roles = TOKENS[name]
        digest = hashlib.sha256(token.encode()).hexdigest()
        blocks.append(f'[[admins]]\nname = "{name}"\nsha256 = "{digest}"\nroles = {roles}\n')
    return "\n".join(blocks)


def config(redis_url: str = "", extra: str = "", with_admins: bool = True) -> str:
    redis = f'[redis]\nurl = "{redis_url}"\nprefix = "cc:"\npoll_interval_s = 0.1\n'
    return f"""
[server]
admin_token = "{BREAK_GLASS}"
{redis if redis_url else ""}
[rollout]
lease_s = 1.5
check_interval_s = 0.1
flush_interval_s = 0.1
bucket_s = 0.5
[providers.mock]
type = "mock"
[models.chat]
targets = [{{ provider = "mock", model = "demo" }}]
[[keys]]
name = "k"
sha256 = "{key_sha256()}"
[prompts.support]
model = "chat"
description = "Answers support questions"
owner = "support-team"
messages = [{{ role = "system", content = "One for {{{{product}}}}." }}]
{extra}
{admins() if with_admins else ""}
"""


class Api:
    def __init__(self, session: aiohttp.ClientSession, server: TestServer) -> None:
        self.session, self.server = session, server

    async def call(
        self, who: str, method: str, path: str, body: Any = None
    ) -> tuple[int, dict[str, Any]]:
        token = BREAK_GLASS if who == "admin" else TOKENS[who][0]
        async with self.session.request(
            method,
            self.server.make_url("/admin" + path),
            json=body,
            headers={"Authorization": f"Bearer {token}"},
        ) as r:
            return r.status, await r.json()

    async def ok(self, who: str, method: str, path: str, body: Any = None) -> dict[str, Any]:
        status, answer = await self.call(who, method, path, body)
        assert status in (200, 201), answer
        return answer

    async def ask(self, model: str = "prompt:support", user: str = "u") -> tuple[int, str]:
        body = {"model": model, "user": user, "messages": [], "prompt_variables": {"product": "X"}}
        async with self.session.post(
            self.server.make_url("/v1/chat/completions"), json=body, headers=CLIENT
        ) as r:
            await r.read()
            return r.status, r.headers.get("X-Gateway-Prompt-Version", "")


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def embedded(
    aiohttp_server: AiohttpServer, tmp_path: Path, session: aiohttp.ClientSession, text: str
) -> Api:
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    app = create_app(load_config(path), watch_interval_s=3600)
    return Api(session, await aiohttp_server(app))


def error_of(answer: dict[str, Any]) -> tuple[str, str]:
    return answer["error"]["code"], answer["error"]["message"]


async def test_roles_decide_who_may_do_what_and_by_is_the_token(
    aiohttp_server: AiohttpServer, tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    api = await embedded(aiohttp_server, tmp_path, session, config())
    assert (await api.ok("vic", "GET", "/whoami"))["name"] == "vic"
    status, answer = await api.call("vic", "POST", "/prompts/support/versions", V2)
    assert status == 403
    code, message = error_of(answer)
    assert code == "insufficient_role" and "author" in message
    assert answer["error"]["role_needed"] == "author"
    pushed = await api.ok("ann", "POST", "/prompts/support/versions", {**V2, "note": "shorter"})
    assert pushed["version"] == "v2"
    for who, method, path, body in (
        ("ann", "PUT", "/prompts/support/routing", {"weights": {"v1": 100}}),
        ("oli", "POST", "/prompts/support/versions/v2/approve", {}),
        ("vic", "POST", "/reload", None),
        ("ann", "POST", "/prompts/support/rollback", {}),
    ):
        status, answer = await api.call(who, method, path, body)
        assert (status, answer["error"]["code"]) == (403, "insufficient_role"), path
    # A `by` naming somebody else is refused; records carry the token's name.
    status, answer = await api.call(
        "abe", "POST", "/prompts/support/versions/v2/approve", {"by": "ann"}
    )
    assert (status, answer["error"]["code"]) == (400, "by_not_trusted")
    approved = await api.ok("abe", "POST", "/prompts/support/versions/v2/approve", {"note": "ok"})
    assert (approved["status"], approved["approved_by"], approved["created_by"]) == (
        "approved",
        "abe",
        "ann",
    )
    assert approved["note"] == "shorter"
    assert approved["approved_targets"] == [{"provider": "mock", "model": "demo"}]
    status, _ = await api.call("vic", "GET", "/prompts/support")
    assert status == 200
    assert (await api.call("ann", "GET", "/prompts/support"))[0] == 200  # every role reads
    async with session.get(api.server.make_url("/admin/prompts")) as r:
        assert r.status == 401
    async with session.get(
        api.server.make_url("/admin/prompts"), headers={"Authorization": "Bearer nope"}
    ) as r:
        assert r.status == 401


async def test_four_eyes_refuses_self_approval_and_counts_distinct_approvers(
    aiohttp_server: AiohttpServer, tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    text = config(extra="[change_control]\napprovals_required = 2\n")
    api = await embedded(aiohttp_server, tmp_path, session, text)
    await api.ok("admin", "POST", "/prompts/support/versions", V2)  # the break-glass pushes
    status, answer = await api.call("admin", "POST", "/prompts/support/versions/v2/approve", {})
    assert (status, answer["error"]["code"]) == (409, "self_approval")
    once = await api.ok("abe", "POST", "/prompts/support/versions/v2/approve", {})
    assert once["status"] == "draft" and [a["by"] for a in once["approvals"]] == ["abe"]
    status, answer = await api.call("abe", "POST", "/prompts/support/versions/v2/approve", {})
    assert (status, answer["error"]["code"]) == (409, "already_approved")
    status, answer = await api.call(
        "oli", "PUT", "/prompts/support/routing", {"weights": {"v1": 50, "v2": 50}}
    )
    assert (status, answer["error"]["code"]) == (409, "draft_version")
    twice = await api.ok("amy", "POST", "/prompts/support/versions/v2/approve", {})
    assert twice["status"] == "approved"
    assert [a["by"] for a in twice["approvals"]] == ["abe", "amy"]
    await api.ok("oli", "PUT", "/prompts/support/routing", {"weights": {"v1": 50, "v2": 50}})
    shown = await api.ok("vic", "GET", "/config")
    assert shown["control"]["four_eyes"] is True
    assert all(a["sha256"].endswith("…") for a in shown["control"]["admins"])


async def test_one_person_with_the_break_glass_token_works_as_before(
    aiohttp_server: AiohttpServer, tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    api = await embedded(aiohttp_server, tmp_path, session, config(with_admins=False))
    await api.ok("admin", "POST", "/prompts/support/versions", V2)
    approved = await api.ok("admin", "POST", "/prompts/support/versions/v2/approve", {})
    assert (approved["status"], approved["approved_by"]) == ("approved", "admin")
    assert (await api.ok("admin", "GET", "/config"))["control"]["four_eyes"] is False


async def test_labels_resolve_and_protected_ones_need_an_approver(
    aiohttp_server: AiohttpServer, tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    api = await embedded(aiohttp_server, tmp_path, session, config())
    await api.ok("ann", "POST", "/prompts/support/versions", V2)
    # A draft may carry a draft label, never another.
    await api.ok("oli", "PUT", "/prompts/support/labels/staging", {"version": "v2"})
    assert await api.ask("prompt:support@staging") == (200, "v2")
    status, answer = await api.call(
        "oli", "PUT", "/prompts/support/labels/canary", {"version": "v2"}
    )
    assert (status, answer["error"]["code"]) == (409, "draft_version")
    status, answer = await api.call(
        "oli", "PUT", "/prompts/support/labels/production", {"version": "v1"}
    )
    assert (status, answer["error"]["code"]) == (403, "insufficient_role")
    assert answer["error"]["role_needed"] == "approver"
    await api.ok("abe", "PUT", "/prompts/support/labels/production", {"version": "v1"})
    status, answer = await api.call("oli", "PUT", "/prompts/support/labels/v2", {"version": "v1"})
    assert (status, answer["error"]["code"]) == (400, "invalid_label")
    prompt = await api.ok("vic", "GET", "/prompts/support")
    assert prompt["labels"] == {"staging": "v2", "production": "v1"}
    assert await api.ask("prompt:support@production") == (200, "v1")
    removed = await api.ok("oli", "DELETE", "/prompts/support/labels/staging")
    assert (removed["kind"], removed["before"], removed["after"]) == ("label", "v2", None)
    assert (await api.ask("prompt:support@staging"))[0] == 404


async def test_one_history_with_ids_and_rollback_that_undoes_instead_of_toggling(
    aiohttp_server: AiohttpServer, tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    api = await embedded(aiohttp_server, tmp_path, session, config())
    await api.ok("ann", "POST", "/prompts/support/versions", V2)
    await api.ok("abe", "POST", "/prompts/support/versions/v2/approve", {})
    routings = [{"v1": 90, "v2": 10}, {"v1": 50, "v2": 50}, {"v2": 100}]
    for weights in routings:
        await api.ok("oli", "PUT", "/prompts/support/routing", {"weights": weights})
    history = (await api.ok("vic", "GET", "/prompts/support/history"))["history"]
    kinds = [e["kind"] for e in history]
    # Newest first, the config's own seed at the end (its version, docs, approval, routing).
    assert kinds == [
        *["routing"] * 3,
        "approved",
        "pushed",
        "routing",
        "approved",
        "docs",
        "pushed",
    ]
    assert len({e["id"] for e in history}) == len(history)
    for entry in history:
        assert datetime.fromisoformat(entry["at"].replace("Z", "+00:00")).tzinfo is not None
    assert [e["by"] for e in history[:5]] == ["oli", "oli", "oli", "abe", "ann"]
    # Undo steps back one change at a time: 100 → 50/50 → 90/10, never back and forth.
    first = await api.ok("oli", "POST", "/prompts/support/rollback", {"reason": "too slow"})
    assert first["reason"].startswith("too slow: rollback of ")
    second = await api.ok("oli", "POST", "/prompts/support/rollback", {})
    assert [first["after"]["weights"], second["after"]["weights"]] == routings[1::-1]
    # To any entry: the routing as it was right after it.
    launch = history[-4]  # the config's first routing
    back = await api.ok("oli", "POST", "/prompts/support/rollback", {"to": launch["id"]})
    assert back["after"]["weights"] == {"v1": 100}
    assert await api.ask() == (200, "v1")
    status, answer = await api.call("oli", "POST", "/prompts/support/rollback", {"to": "h0"})
    assert (status, answer["error"]["code"]) == (404, "history_not_found")


async def test_documentation_fields_are_kept_from_config_api_and_push(
    aiohttp_server: AiohttpServer, tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    api = await embedded(aiohttp_server, tmp_path, session, config())
    prompt = await api.ok("vic", "GET", "/prompts/support")
    assert (prompt["description"], prompt["owner"]) == ("Answers support questions", "support-team")
    await api.ok(
        "ann",
        "POST",
        "/prompts/support/versions",
        {**V2, "known_issues": "Slow on Mondays", "note": "v2 change"},
    )
    edited = await api.ok("ann", "PATCH", "/prompts/support", {"runbook_notes": "Page #support"})
    assert (edited["known_issues"], edited["runbook_notes"], edited["owner"]) == (
        "Slow on Mondays",
        "Page #support",
        "support-team",
    )
    assert edited["versions"][1]["note"] == "v2 change"
    status, answer = await api.call("ann", "PATCH", "/prompts/support", {"ownr": "x"})
    assert (status, answer["error"]["param"]) == (400, "ownr")
    history = (await api.ok("vic", "GET", "/prompts/support/history"))["history"]
    assert history[0]["kind"] == "docs" and history[0]["after"] == {
        "runbook_notes": "Page #support"
    }


async def test_admins_are_hot_reloaded(
    aiohttp_server: AiohttpServer, tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(config(extra=admins(("vic",)), with_admins=False))
    app = create_app(load_config(path), watch_interval_s=3600)
    api = Api(session, await aiohttp_server(app))
    status, _ = await api.call("ann", "GET", "/whoami")
    assert status == 401
    path.write_text(config())
    assert (await api.call("admin", "POST", "/reload"))[0] == 200
    assert (await api.ok("ann", "GET", "/whoami"))["roles"] == ["author"]


# -- end to end: two replicas on real Redis ---------------------------------------------


@contextlib.asynccontextmanager
async def traffic(apis: list[Api]) -> AsyncIterator[None]:
    users = itertools.count()

    async def worker() -> None:
        while True:
            i = next(users)
            with contextlib.suppress(aiohttp.ClientError):
                await apis[i % len(apis)].ask(user=f"user-{i}")

    tasks = [asyncio.create_task(worker()) for _ in range(4)]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def until(check: Callable[[], Awaitable[bool]], within_s: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not await check():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def test_end_to_end_on_two_replicas(
    aiohttp_server: AiohttpServer,
    tmp_path: Path,
    session: aiohttp.ClientSession,
    redis_server: RedisServer,
) -> None:
    path = tmp_path / "gateway.toml"
    gate = 'require_suite = "faq"'
    path.write_text(config(redis_server.url, gate))
    a, b = [
        Api(session, await aiohttp_server(create_app(load_config(path), watch_interval_s=3600)))
        for _ in range(2)
    ]
    # The author pushes on one replica; her approval is refused; the approver's, on the
    # other replica, is accepted.
    await a.ok("ann", "POST", "/prompts/support/versions", V2)
    status, answer = await b.call("ann", "POST", "/prompts/support/versions/v2/approve", {})
    assert (status, answer["error"]["code"]) == (403, "insufficient_role")
    await b.ok("oli", "PUT", "/prompts/support/routing", {"weights": {"v1": 100}})
    text = config(redis_server.url, gate).replace(
        "roles = ['author']", "roles = ['author', 'approver']"
    )
    path.write_text(text)
    for api in (a, b):
        assert (await api.call("admin", "POST", "/reload"))[0] == 200
    # The gate: only a passing run the gateway made of `faq`, at its current revision.
    approve = "/prompts/support/versions/v2/approve"

    async def refused() -> str:
        status, answer = await b.call("abe", "POST", approve, {})
        assert (status, answer["error"]["code"]) == (409, "suite_required"), answer
        message: str = answer["error"]["message"]
        return message

    def cases(checks: dict[str, Any]) -> list[dict[str, Any]]:
        ask = [{"role": "user", "content": "hello"}]
        return [{"name": "one", "variables": {"product": "X"}, "messages": ask, "checks": checks}]

    failing, passing = cases({"contains": "never-in-an-answer"}), cases({"max_latency_ms": 60000})
    await a.ok("ann", "POST", "/datasets", {"name": "faq", "cases": failing})
    await a.ok("ann", "POST", "/datasets", {"name": "other", "cases": passing})
    test = "/prompts/support/versions/v2/test"
    assert (await b.ok("ann", "POST", test, {"dataset": "faq"}))["passed"] == 0
    assert "failed" in await refused()
    assert (await b.ok("ann", "POST", test, {"dataset": "other"}))["passed"] == 1
    assert "failed" in await refused()  # another dataset's pass does not count
    await b.ok("ann", "PUT", "/datasets/faq/cases", {"cases": passing})  # revision 2
    assert (await a.ok("ann", "POST", test, {"dataset": "faq"}))["passed"] == 1
    status, answer = await a.call("ann", "POST", approve, {})
    assert (status, answer["error"]["code"]) == (409, "self_approval")
    approved = await b.ok("abe", "POST", "/prompts/support/versions/v2/approve", {})
    assert (approved["approved_by"], approved["created_by"]) == ("abe", "ann")
    # No route takes a result from outside.
    for api in (a, b):
        status, _ = await api.call(
            "admin", "POST", "/prompts/support/versions/v2/suite-results", {"passed": True}
        )
        assert status in (404, 405)
    # A rollout that completes, then `before_rollout` restores its baseline exactly.
    baseline = {"v1": 100}
    body = {
        "version": "v2",
        "steps": [50, 100],
        "interval_s": 0.2,
        "guards": {"min_requests": 1, "latency_floor_s": 5.0},
    }
    await a.ok("oli", "POST", "/prompts/support/rollout", body)

    async def completed() -> bool:
        rollout = await b.ok("vic", "GET", "/prompts/support/rollout")
        return rollout["state"] == "completed" and not rollout["pending"]

    async with traffic([a, b]):
        await until(completed)
    assert (await a.ok("vic", "GET", "/prompts/support"))["routing"]["weights"]["v2"] == 100
    back = await b.ok("oli", "POST", "/prompts/support/rollback", {"to": "before_rollout"})
    assert {k: v for k, v in back["after"]["weights"].items() if v} == baseline
    assert back["kind"] == "rollback" and back["by"] == "oli"

    async def served_by_v1() -> bool:
        return all([await api.ask(user="someone") == (200, "v1") for api in (a, b)])

    await until(served_by_v1, 5.0)
    history = (await a.ok("vic", "GET", "/prompts/support/history"))["history"]
    kinds = {e["kind"] for e in history}
    assert {"pushed", "approved", "routing", "rollout", "rollback"} <= kinds
    # The rollout's decisions that moved no weights are there once each, too.
    events = [e["detail"].get("event") for e in history if e["kind"] == "rollout"]
    assert events.count("start") == 1 and events.count("complete") == 1
