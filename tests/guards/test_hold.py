"""A held route end to end over real HTTP, with the OpenAI SDK as the client: 202 and a
review id; the answer in no place the client can read until a reviewer approves; an
edited approval, a rejection and both timeouts as the config says."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from gateway.appkeys import CAPTURE
from tests.conftest import CLIENT_TOKEN, AiohttpServer, Gateway
from tests.guards.support import (
    OTHER_TOKEN,
    admin_call,
    client_review,
    config,
    scripted_upstream,
)

ANSWER = "The refund code is ZX-4412."
REVIEWER, VIEWER = "tok-rita-reviewer", "tok-vera-viewer"
ADMINS = f"""
        [[admins]]
        name = "rita"
        sha256 = "{hashlib.sha256(REVIEWER.encode()).hexdigest()}"
        roles = ["reviewer", "viewer"]

        [[admins]]
        name = "vera"
        sha256 = "{hashlib.sha256(VIEWER.encode()).hexdigest()}"
        roles = ["viewer"]
"""
HOLD = """
        [guards.refunds]
        regex_deny = ["refund code"]
        on_fail = "hold"

        [models.chat]
        targets = [@TARGETS@]
        guards = ["refunds"]

        [capture]
        enabled = true
"""
Start = Callable[[str], Awaitable[Gateway]]


async def held(gw: Gateway) -> str:
    """A held request through the SDK: its review id."""
    async with gw.client() as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="chat", messages=[{"role": "user", "content": "my refund?"}]
        )
    assert raw.status_code == 202
    body = orjson.loads(raw.content)
    assert body["object"] == "review" and body["status"] == "pending"
    assert ANSWER not in raw.content.decode()
    assert raw.headers["X-Gateway-Review"] == body["id"]
    return str(body["id"])


async def start_held(
    gateway_factory: Start, aiohttp_server: AiohttpServer, extra: str = ""
) -> Gateway:
    url, _ = await scripted_upstream(aiohttp_server, ANSWER)
    return await gateway_factory(config([url], HOLD + ADMINS + extra))


async def pending_gauge(session: aiohttp.ClientSession, base: str) -> float:
    async with session.get(base + "/metrics") as r:
        page = await r.text()
    [line] = [x for x in page.splitlines() if x.startswith("gateway_reviews_pending ")]
    return float(line.split()[1])


async def until(check: Callable[[], Awaitable[bool]], within_s: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not await check():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_a_held_answer_reaches_the_client_only_after_an_edited_approval(
    gateway_factory: Start, aiohttp_server: AiohttpServer
) -> None:
    gw = await start_held(gateway_factory, aiohttp_server)
    base = gw.url("/").rstrip("/")
    review_id = await held(gw)
    async with aiohttp.ClientSession() as session:
        # The client: pending, no answer. Another key: as if there were no such item.
        status, view = await client_review(session, base, review_id, CLIENT_TOKEN)
        assert (status, view) == (200, {"id": review_id, "object": "review", "status": "pending"})
        status, other = await client_review(session, base, review_id, OTHER_TOKEN)
        assert status == 404 and other["error"]["code"] == "review_not_found"
        # Reviewers see the answer and the request's messages; a viewer may read, not decide.
        status, items = await admin_call(
            session, base, "GET", "/reviews?state=pending", token=VIEWER
        )
        assert status == 200
        [item] = items["data"]
        assert item["id"] == review_id and item["kind"] == "held" and item["key"] == "test-app"
        assert item["answer"] == ANSWER and item["guard"] == "refunds"
        assert item["messages"] == [{"role": "user", "content": "my refund?"}]
        status, refused = await admin_call(
            session, base, "POST", f"/reviews/{review_id}/approve", {"note": "ok"}, VIEWER
        )
        assert status == 403 and refused["error"]["code"] == "insufficient_role"
        # The capture is admin-only and says the answer is held, and why.
        await gw.app[CAPTURE].flush()
        status, captured = await admin_call(session, base, "GET", "/captures/" + item["request_id"])
        assert status == 200 and captured["held"] is True and captured["answer"] == ANSWER
        assert captured["guards"] == [
            {"guard": "refunds", "result": "fail", "reason": "matches denied pattern 'refund code'"}
        ]
        assert await pending_gauge(session, base) == 1.0
        status, decided = await admin_call(
            session,
            base,
            "POST",
            f"/reviews/{review_id}/approve",
            {"note": "rephrased", "edited_answer": "A person will call you."},
            REVIEWER,
        )
        assert status == 200
        assert decided["state"] == "approved" and decided["decided_by"] == "rita"
        assert decided["edited_answer"] == "A person will call you."
        status, view = await client_review(session, base, review_id, CLIENT_TOKEN)
        assert view["status"] == "approved"
        completion = view["completion"]
        assert completion["object"] == "chat.completion"
        assert completion["choices"][0]["message"]["content"] == "A person will call you."
        assert await pending_gauge(session, base) == 0.0
        # Decided once: a second decision is a conflict.
        status, again = await admin_call(
            session, base, "POST", f"/reviews/{review_id}/reject", {"note": "no"}, REVIEWER
        )
        assert status == 409 and again["error"]["code"] == "review_decided"
        status, history = await admin_call(session, base, "GET", "/reviews/" + review_id)
        assert history["note"] == "rephrased"


async def test_a_rejected_answer_never_reaches_the_client(
    gateway_factory: Start, aiohttp_server: AiohttpServer
) -> None:
    gw = await start_held(gateway_factory, aiohttp_server)
    base = gw.url("/").rstrip("/")
    review_id = await held(gw)
    async with aiohttp.ClientSession() as session:
        status, decided = await admin_call(
            session, base, "POST", f"/reviews/{review_id}/reject", {"note": "leaks"}, REVIEWER
        )
        assert status == 200 and decided["state"] == "rejected" and decided["decided_by"] == "rita"
        status, view = await client_review(session, base, review_id, CLIENT_TOKEN)
        assert view == {"id": review_id, "object": "review", "status": "rejected"}
        status, listed = await admin_call(session, base, "GET", "/reviews?state=rejected")
        assert [i["id"] for i in listed["data"]] == [review_id]
        status, bad = await admin_call(session, base, "GET", "/reviews?state=maybe")
        assert status == 400 and bad["error"]["param"] == "state"
        async with session.get(base + "/metrics") as r:
            page = await r.text()
        assert 'gateway_reviews_total{outcome="rejected",prompt="",version=""} 1.0' in page
        assert 'gateway_guard_results_total{guard="refunds",prompt="",result="fail"' in page


@pytest.mark.parametrize(
    ("on_timeout", "status", "state"),
    [("reject", "rejected", "expired"), ("release", "approved", "approved")],
)
async def test_an_undecided_item_takes_the_configured_timeout(
    gateway_factory: Start,
    aiohttp_server: AiohttpServer,
    on_timeout: str,
    status: str,
    state: str,
) -> None:
    review = f"""
        [review]
        timeout_s = 0.3
        on_timeout = "{on_timeout}"
        sweep_interval_s = 0.05
    """
    gw = await start_held(gateway_factory, aiohttp_server, review)
    base = gw.url("/").rstrip("/")
    review_id = await held(gw)
    async with aiohttp.ClientSession() as session:
        seen: dict[str, Any] = {}

        async def decided() -> bool:
            _, seen["view"] = await client_review(session, base, review_id, CLIENT_TOKEN)
            return bool(seen["view"]["status"] != "pending")

        await until(decided)
        assert seen["view"]["status"] == status
        if status == "approved":
            assert seen["view"]["completion"]["choices"][0]["message"]["content"] == ANSWER
        else:
            assert "completion" not in seen["view"]
        _, item = await admin_call(session, base, "GET", "/reviews/" + review_id)
        assert item["state"] == state and item["decided_by"] == "timeout" and item["timed_out"]


async def test_a_decision_calls_back_and_is_in_the_prompts_history(
    gateway_factory: Start, aiohttp_server: AiohttpServer
) -> None:
    heard: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def callback(request: web.Request) -> web.Response:
        await heard.put(await request.json())
        return web.json_response({})

    hooks = web.Application()
    hooks.router.add_post("/decided", callback)
    hook_server = await aiohttp_server(hooks)
    url, _ = await scripted_upstream(aiohttp_server, ANSWER)
    extra = f"""
        [guards.refunds]
        regex_deny = ["refund code"]
        on_fail = "hold"

        [models.chat]
        targets = [@TARGETS@]

        [prompts.support]
        model = "chat"
        messages = [{{ role = "system", content = "Help." }}]
        guards = ["refunds"]

        [review]
        callback_url = "{hook_server.make_url("/decided")}?token=cb-secret"
    """
    gw = await gateway_factory(config([url], extra + ADMINS))
    base = gw.url("/").rstrip("/")
    async with gw.client() as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="prompt:support", messages=[{"role": "user", "content": "refund?"}]
        )
    assert raw.status_code == 202
    review_id = orjson.loads(raw.content)["id"]
    async with aiohttp.ClientSession() as session:
        status, _ = await admin_call(
            session, base, "POST", f"/reviews/{review_id}/approve", {"note": "fine"}, REVIEWER
        )
        assert status == 200
        said = await asyncio.wait_for(heard.get(), timeout=10)
        assert said["id"] == review_id and said["state"] == "approved"
        assert said["decided_by"] == "rita" and said["prompt"] == "support"
        assert "answer" not in said and "messages" not in said  # the decision, not the text

        async def in_history() -> bool:
            _, entries = await admin_call(session, base, "GET", "/prompts/support/history")
            return any(e["kind"] == "review" for e in entries["history"])

        await until(in_history)
        _, entries = await admin_call(session, base, "GET", "/prompts/support/history")
        [entry] = [e for e in entries["history"] if e["kind"] == "review"]
        assert entry["by"] == "rita" and entry["version"] == "v1" and entry["after"] == "approved"
