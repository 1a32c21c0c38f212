"""Each guard check and each `on_fail` over real HTTP: scripted fake upstreams, a real
webhook server (one that never answers in time), the OpenAI SDK as the client."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

import aiohttp
import openai
import pytest

from tests.conftest import CLIENT_TOKEN, AiohttpServer, Gateway
from tests.eval_support import ADMIN
from tests.guards.support import Hook, admin_call, config, scripted_upstream, webhook

Start = Callable[[str], Awaitable[Gateway]]
USER = [{"role": "user", "content": "hello"}]


def guarded(guard: str, route_extra: str = "") -> str:
    return f"""
        [guards.g]
        {guard}

        [models.chat]
        targets = [@TARGETS@]
        guards = ["g"]
        {route_extra}
    """


async def ask(gw: Gateway, model: str = "chat") -> tuple[str, Mapping[str, str]]:
    async with gw.client() as client:
        raw = await client.chat.completions.with_raw_response.create(model=model, messages=USER)
    return raw.parse().choices[0].message.content or "", raw.headers


async def guard_results(gw: Gateway) -> dict[str, float]:
    async with aiohttp.ClientSession() as session, session.get(gw.url("/metrics")) as r:
        page = await r.text()
    found: dict[str, float] = {}
    for line in page.splitlines():
        if line.startswith("gateway_guard_results_total{"):
            labels, value = line.rsplit(" ", 1)
            result = labels.split('result="')[1].split('"')[0]
            found[result] = found.get(result, 0) + float(value)
    return found


async def test_retry_asks_the_same_target_again_until_the_answer_passes(
    gateway_factory: Start, aiohttp_server: AiohttpServer
) -> None:
    url, script = await scripted_upstream(aiohttp_server, "BAD one", "BAD two", "fine")
    gw = await gateway_factory(
        config([url], guarded('regex_deny = ["BAD"]\non_fail = "retry"\nretries = 2'))
    )
    text, _ = await ask(gw)
    assert text == "fine" and len(script.asked) == 3
    assert await guard_results(gw) == {"fail": 2.0, "pass": 1.0}


async def test_retry_that_runs_out_is_a_block(
    gateway_factory: Start, aiohttp_server: AiohttpServer
) -> None:
    url, script = await scripted_upstream(aiohttp_server, "BAD")
    gw = await gateway_factory(
        config([url], guarded('regex_deny = ["BAD"]\non_fail = "retry"\nretries = 1'))
    )
    with pytest.raises(openai.UnprocessableEntityError) as refused:
        await ask(gw)
    assert refused.value.code == "guard_failed" and len(script.asked) == 2


async def test_fallback_goes_to_the_next_target(
    gateway_factory: Start, aiohttp_server: AiohttpServer
) -> None:
    first, asked_first = await scripted_upstream(aiohttp_server, "too long an answer")
    second, _ = await scripted_upstream(aiohttp_server, "short")
    gw = await gateway_factory(
        config([first, second], guarded('max_chars = 10\non_fail = "fallback"'))
    )
    text, headers = await ask(gw)
    assert text == "short" and headers["X-Gateway-Provider"] == "p1"
    assert len(asked_first.asked) == 1  # not retried: a guard failure is no fault to retry
    async with (
        aiohttp.ClientSession() as session,
        session.get(gw.url("/admin/providers"), headers={"Authorization": f"Bearer {ADMIN}"}) as r,
    ):
        providers = await r.json()
    # The target that answered badly is healthy: its circuit stays closed.
    [first_target] = [t for t in providers["targets"] if t["provider"] == "p0"]
    assert first_target["circuit"] == "closed" and first_target["consecutive_failures"] == 0


async def test_fallback_to_the_prompts_named_version_once_no_target_is_left(
    gateway_factory: Start, aiohttp_server: AiohttpServer
) -> None:
    url, script = await scripted_upstream(aiohttp_server, "{system}")
    extra = """
        [guards.g]
        regex_require = ["^OK"]
        on_fail = "fallback"

        [models.chat]
        targets = [@TARGETS@]

        [prompts.support]
        model = "chat"
        messages = [{ role = "system", content = "OK from v1" }]
        guards = ["g"]
        fallback_version = "v1"
    """
    gw = await gateway_factory(config([url], extra))
    base = gw.url("/").rstrip("/")
    async with aiohttp.ClientSession() as session:
        v2 = {"model": "chat", "messages": [{"role": "system", "content": "NOT OK from v2"}]}
        status, pushed = await admin_call(session, base, "POST", "/prompts/support/versions", v2)
        assert status == 201 and pushed["version"] == "v2"
        await admin_call(session, base, "POST", "/prompts/support/versions/v2/approve", {})
        routing = {"weights": {"v2": 100}}
        status, _ = await admin_call(session, base, "PUT", "/prompts/support/routing", routing)
        assert status == 200
    text, headers = await ask(gw, "prompt:support")
    assert text == "OK from v1" and headers["X-Gateway-Prompt-Version"] == "v1"
    assert [m["content"] for m in (a["messages"][0] for a in script.asked)] == [
        "NOT OK from v2",
        "OK from v1",
    ]


async def test_block_is_a_422_naming_the_guard(
    gateway_factory: Start, aiohttp_server: AiohttpServer
) -> None:
    url, _ = await scripted_upstream(aiohttp_server, "not json")
    schema = 'json_schema = { type = "object", required = ["answer"] }\non_fail = "block"'
    gw = await gateway_factory(config([url], guarded(schema)))
    with pytest.raises(openai.UnprocessableEntityError) as refused:
        await ask(gw)
    assert refused.value.code == "guard_failed"
    assert "'g'" in refused.value.message
    body = refused.value.body
    assert isinstance(body, dict) and body["guard"] == "g"


async def test_json_schema_passes_a_matching_answer(
    gateway_factory: Start, aiohttp_server: AiohttpServer
) -> None:
    url, _ = await scripted_upstream(aiohttp_server, '{"answer": "yes"}')
    schema = 'json_schema = { type = "object", required = ["answer"] }\non_fail = "block"'
    gw = await gateway_factory(config([url], guarded(schema)))
    text, _ = await ask(gw)
    assert text == '{"answer": "yes"}'


async def test_flag_delivers_and_queues_for_review(
    gateway_factory: Start, aiohttp_server: AiohttpServer
) -> None:
    url, _ = await scripted_upstream(aiohttp_server, "a rude answer")
    gw = await gateway_factory(config([url], guarded('regex_deny = ["rude"]\non_fail = "flag"')))
    text, headers = await ask(gw)
    assert text == "a rude answer"
    review_id = headers["X-Gateway-Review"]
    base = gw.url("/").rstrip("/")
    async with aiohttp.ClientSession() as session:
        status, item = await admin_call(session, base, "GET", "/reviews/" + review_id)
        for _ in range(100):  # queued off the client's way: it may land a moment later
            if status == 200:
                break
            status, item = await admin_call(session, base, "GET", "/reviews/" + review_id)
        assert status == 200 and item["kind"] == "flagged" and item["state"] == "pending"
        assert item["answer"] == "a rude answer" and item["route"] == "chat"


@pytest.mark.parametrize(("on_error", "passes"), [("fail", False), ("pass", True)])
async def test_a_webhook_that_never_answers_in_time_counts_as_its_on_error(
    gateway_factory: Start, aiohttp_server: AiohttpServer, on_error: str, passes: bool
) -> None:
    url, _ = await scripted_upstream(aiohttp_server, "anything")
    hook = Hook({"pass": True}, hang=True)
    hook_url = await webhook(aiohttp_server, hook)
    guard = f'webhook = {{ url = "{hook_url}", timeout_s = 0.2, on_error = "{on_error}" }}'
    gw = await gateway_factory(config([url], guarded(guard + '\non_fail = "block"')))
    if passes:
        text, _ = await ask(gw)
        assert text == "anything"
    else:
        with pytest.raises(openai.UnprocessableEntityError) as refused:
            await ask(gw)
        assert "no answer within 0.2s" in refused.value.message
    assert hook.seen and hook.seen[0]["answer"] == "anything"
    assert await guard_results(gw) == {"error": 1.0}


async def test_a_webhook_verdict_decides(
    gateway_factory: Start, aiohttp_server: AiohttpServer
) -> None:
    url, _ = await scripted_upstream(aiohttp_server, "anything")
    hook = Hook({"pass": False, "reason": "off-brand"})
    hook_url = await webhook(aiohttp_server, hook)
    guard = f'webhook = {{ url = "{hook_url}", timeout_s = 5 }}\non_fail = "block"'
    gw = await gateway_factory(config([url], guarded(guard)))
    with pytest.raises(openai.UnprocessableEntityError) as refused:
        await ask(gw)
    assert "off-brand" in refused.value.message
    assert hook_url not in refused.value.message


async def test_a_stream_under_guards_is_buffered_and_checked(
    gateway_factory: Start, aiohttp_server: AiohttpServer
) -> None:
    url, script = await scripted_upstream(aiohttp_server, "BAD", "a streamed answer")
    gw = await gateway_factory(config([url], guarded('regex_deny = ["BAD"]\non_fail = "retry"')))
    async with gw.client() as client:
        stream = await client.chat.completions.create(
            model="chat", messages=USER, stream=True, stream_options={"include_usage": True}
        )
        chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "a streamed answer"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 8
    assert all("stream" not in asked for asked in script.asked)  # asked whole


async def test_a_stream_on_a_hold_route_is_a_400(
    gateway_factory: Start, aiohttp_server: AiohttpServer
) -> None:
    url, script = await scripted_upstream(aiohttp_server, "x")
    gw = await gateway_factory(config([url], guarded('max_chars = 1000\non_fail = "hold"')))
    async with gw.client() as client:
        with pytest.raises(openai.BadRequestError) as refused:
            await client.chat.completions.create(model="chat", messages=USER, stream=True)
    assert refused.value.code == "hold_needs_non_streaming" and not script.asked


async def test_a_route_without_guards_is_served_as_before(
    gateway_factory: Start, aiohttp_server: AiohttpServer
) -> None:
    url, _ = await scripted_upstream(aiohttp_server, "BAD but unguarded")
    extra = """
        [guards.g]
        regex_deny = ["BAD"]

        [models.chat]
        targets = [@TARGETS@]
    """
    gw = await gateway_factory(config([url], extra))
    text, headers = await ask(gw)
    assert text == "BAD but unguarded" and "X-Gateway-Review" not in headers
    assert await guard_results(gw) == {}


async def test_fallback_with_no_target_or_version_left_is_a_block(
    gateway_factory: Start, aiohttp_server: AiohttpServer
) -> None:
    first, _ = await scripted_upstream(aiohttp_server, "BAD")
    second, _ = await scripted_upstream(aiohttp_server, "BAD too")
    guard = 'regex_deny = ["BAD"]\non_fail = "fallback"'
    gw = await gateway_factory(config([first, second], guarded(guard)))
    with pytest.raises(openai.UnprocessableEntityError) as refused:
        await ask(gw)
    assert refused.value.code == "guard_failed"
    assert await guard_results(gw) == {"fail": 2.0}


async def test_a_guarded_route_answers_through_no_other_api(
    gateway_factory: Start, aiohttp_server: AiohttpServer
) -> None:
    """A held or blocked answer must not come out of /v1/responses, /v1/messages or
    /v1/completions, where the guards do not run: those are refused before any call."""
    url, script = await scripted_upstream(aiohttp_server, "fine")
    gw = await gateway_factory(config([url], guarded('max_chars = 10\non_fail = "hold"')))
    bodies = {
        "/v1/responses": {"model": "chat", "input": "hello"},
        "/v1/messages": {"model": "chat", "max_tokens": 5, "messages": USER},
        "/v1/completions": {"model": "chat", "prompt": "hello"},
    }
    async with aiohttp.ClientSession() as session:
        for path, body in bodies.items():
            headers = {"Authorization": f"Bearer {CLIENT_TOKEN}"}
            async with session.post(gw.url(path), json=body, headers=headers) as response:
                assert response.status == 400, path
                error = await response.json()
            if path == "/v1/messages":  # Anthropic's shape there
                assert error["error"]["type"] == "invalid_request_error"
                assert "/v1/chat/completions" in error["error"]["message"]
            else:
                assert error["error"]["code"] == "guarded_route", path
    assert script.asked == []  # nothing reached the provider
