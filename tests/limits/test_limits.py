"""Limits and budgets in one process (the embedded store: exact), through the official
OpenAI SDK where a client is involved."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from gateway.appkeys import LIMITER, SPEND_WRITER
from gateway.cli.main import main
from gateway.config.keys import ClientKey
from gateway.config.loader import load_config
from gateway.config.source import ConfigError
from tests.conftest import CLIENT_TOKEN, Gateway, key_sha256

ADMIN = "admin-secret-token"
OTHER = "sk-other-client-token"

CONFIG = f"""
[server]
admin_token = "{ADMIN}"
[providers.mock]
type = "mock"
[models.chat]
targets = [{{ provider = "mock", model = "words=5" }}]
[models.failover]
targets = [{{ provider = "mock", model = "error=500" }}, {{ provider = "mock", model = "words=7" }}]
[models.unpriced]
targets = [{{ provider = "mock", model = "words=3+unpriced" }}]
[pricing."words=5"]
input_per_mtok = 100000
output_per_mtok = 100000
[pricing."words=7"]
input_per_mtok = 1
output_per_mtok = 1
[pricing."error=500"]
input_per_mtok = 1
output_per_mtok = 1
[teams.search]
limits = {{ rpm = 1000 }}
[[keys]]
name = "app"
sha256 = "{{key_sha256}}"
team = "search"
[keys.limits]
LIMITS
[keys.budget]
BUDGET
[[keys]]
name = "free"
sha256 = "{key_sha256(OTHER)}"
[limits]
unpriced = "UNPRICED"
"""

Start = Callable[[str], Awaitable[Gateway]]


def config(limits: str = "rpm = 3", budget: str = "usd = 100", unpriced: str = "allow") -> str:
    return CONFIG.replace("LIMITS", limits).replace("BUDGET", budget).replace("UNPRICED", unpriced)


async def ask(gw: Gateway, model: str = "chat", token: str = CLIENT_TOKEN, **extra: Any) -> Any:
    async with gw.client(api_key=token) as client:
        return await client.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": "hello there"}], **extra
        )


async def admin(gw: Gateway, path: str) -> Any:
    async with (
        aiohttp.ClientSession() as s,
        s.get(gw.url(f"/admin{path}"), headers={"Authorization": f"Bearer {ADMIN}"}) as r,
    ):
        assert r.status == 200, await r.text()
        return await r.json()


async def meter(gw: Gateway, name: str) -> dict[str, Any]:
    found = await admin(gw, "/limits")
    return next(m for m in found["meters"] if m["meter"] == name)


def test_a_key_is_limited_only_when_it_or_its_team_may_be() -> None:
    assert not ClientKey("a", "0" * 64).limited
    assert ClientKey("a", "0" * 64, team="t").limited


async def test_rpm_is_exact_in_one_process_with_openai_headers(gateway_factory: Start) -> None:
    gw = await gateway_factory(config())
    remaining = []
    for _ in range(3):
        raw = await ask(gw)
        assert raw.http_response.status_code == 200
        assert raw.headers["x-ratelimit-limit-requests"] == "3"
        assert raw.headers["x-ratelimit-reset-requests"].endswith("s")
        remaining.append(raw.headers["x-ratelimit-remaining-requests"])
    assert remaining == ["2", "1", "0"]
    with pytest.raises(openai.RateLimitError) as refused:
        await ask(gw)
    error = refused.value
    assert error.code == "rate_limited"
    assert int(error.response.headers["Retry-After"]) >= 1
    assert error.response.headers["x-ratelimit-remaining-requests"] == "0"
    # A key without limits is not slowed or labelled.
    free = await ask(gw, token=OTHER)
    assert "x-ratelimit-limit-requests" not in free.headers
    async with aiohttp.ClientSession() as s, s.get(gw.url("/metrics")) as r:
        page = await r.text()
    assert 'gateway_limited_requests_total{key="app",limit="rpm",team="search"} 1.0' in page


async def test_a_spent_budget_answers_budget_exceeded(gateway_factory: Start) -> None:
    # words=5 at $0.1 per token: one answer costs well over a cent.
    gw = await gateway_factory(config(limits="rpm = 1000", budget='usd = 0.01\nperiod = "day"'))
    raw = await ask(gw, user="alice")
    cost = (raw.parse().usage.prompt_tokens + raw.parse().usage.completion_tokens) * 0.1
    assert cost > 0.01
    with pytest.raises(openai.RateLimitError) as refused:
        await ask(gw)
    assert refused.value.code == "budget_exceeded"
    spent = await meter(gw, "key:app:budget:day")
    assert spent["used"] == round(cost * 1_000_000)
    await gw.app[LIMITER].sync()  # the loop does this at least once a second
    async with aiohttp.ClientSession() as s, s.get(gw.url("/metrics")) as r:
        page = await r.text()
    assert 'gateway_budget_limit_usd{key="app",period="day",team="search"} 0.01' in page
    spent_line = (
        f'gateway_budget_spent_usd{{key="app",period="day",team="search"}} {round(cost, 6)}'
    )
    assert spent_line in page


async def test_tpm_is_corrected_from_a_streams_usage_and_a_failovers(
    gateway_factory: Start,
) -> None:
    gw = await gateway_factory(config(limits="tpm = 100000"))
    usage = None
    async with gw.client() as client:
        stream = await client.chat.completions.create(
            model="chat",
            messages=[{"role": "user", "content": "hello there"}],
            stream=True,
            stream_options={"include_usage": True},
            max_tokens=500,
        )
        async for chunk in stream:
            usage = chunk.usage or usage
    assert usage is not None
    first = usage.prompt_tokens + usage.completion_tokens
    assert (await meter(gw, "key:app:tpm"))["used"] == first  # not the estimate (500+)
    # The first target fails, the second answers: only the tokens used are counted.
    raw = await ask(gw, model="failover", max_tokens=800)
    assert int(raw.headers["X-Gateway-Attempts"]) >= 2  # a retry, then the next target
    assert raw.headers["X-Gateway-Model"] == "words=7"
    used = raw.parse().usage
    assert (await meter(gw, "key:app:tpm"))["used"] == first + used.total_tokens


async def test_tpm_refuses_what_would_not_fit(gateway_factory: Start) -> None:
    gw = await gateway_factory(config(limits="tpm = 600"))
    assert (await ask(gw, max_tokens=100)).http_response.status_code == 200
    with pytest.raises(openai.RateLimitError) as refused:
        await ask(gw, max_tokens=5000)
    assert refused.value.code == "rate_limited"
    assert refused.value.response.headers["x-ratelimit-limit-tokens"] == "600"


async def test_max_concurrent_and_the_unpriced_policies(gateway_factory: Start) -> None:
    gw = await gateway_factory(config(limits="max_concurrent = 1", unpriced="deny"))
    with pytest.raises(openai.PermissionDeniedError) as denied:
        await ask(gw, model="unpriced")
    assert denied.value.code == "unpriced_model"
    assert (await ask(gw)).http_response.status_code == 200  # the slot was given back
    allowing = await gateway_factory(config())
    await ask(allowing, model="unpriced")
    async with aiohttp.ClientSession() as s, s.get(allowing.url("/metrics")) as r:
        page = await r.text()
    assert 'gateway_budget_unpriced_requests_total{key="app",team="search"} 1.0' in page


async def test_spend_by_key_team_and_user_never_a_user_label(gateway_factory: Start) -> None:
    gw = await gateway_factory(config(limits="rpm = 100"))
    await ask(gw, user="alice")
    await ask(gw, user="alice")
    async with gw.client(default_headers={"X-Gateway-User": "bob"}) as client:
        await client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "x"}]
        )
    await ask(gw, token=OTHER, user="carol")
    await gw.app[SPEND_WRITER].flush()  # else within a second
    found = await admin(gw, "/spend?by=user&since=7d")
    rows = {row["user"]: row for row in found["data"]}
    assert rows["alice"]["requests"] == 2 and rows["bob"]["requests"] == 1
    assert rows["alice"]["cost_usd"] > 0
    keys = {row["key"]: row for row in (await admin(gw, "/spend?by=key"))["data"]}
    assert keys["app"]["requests"] == 3 and keys["free"]["requests"] == 1
    teams = (await admin(gw, "/spend?by=team"))["data"]
    assert [t["team"] for t in teams] == ["search"]
    async with aiohttp.ClientSession() as s, s.get(gw.url("/metrics")) as r:
        assert "alice" not in await r.text()
    async with (
        aiohttp.ClientSession() as s,
        s.get(gw.url("/admin/spend?by=nobody"), headers={"Authorization": f"Bearer {ADMIN}"}) as r,
    ):
        assert r.status == 400
        assert (await r.json())["error"]["param"] == "by"


async def test_the_spend_command_prints_the_top_spenders(
    gateway_factory: Start, capsys: pytest.CaptureFixture[str]
) -> None:
    gw = await gateway_factory(config(limits="rpm = 100"))
    await ask(gw, user="dana")
    await gw.app[SPEND_WRITER].flush()
    argv = ["spend", "--by", "user", "--since", "7d", "--url", gw.url("/"), "--token", ADMIN]
    assert await asyncio.to_thread(main, argv) == 0  # a blocking client: not on the loop
    out = capsys.readouterr().out
    assert "spend by user" in out
    (row,) = [line for line in out.splitlines() if line.startswith("dana")]
    assert row.split()[1] == "1"  # one request


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ('unpriced = "maybe"', "limits.unpriced"),
        ('on_store_error = "retry"', "limits.on_store_error"),
    ],
)
def test_a_bad_limits_setting_is_a_load_error_naming_it(
    tmp_path: Path, line: str, key: str
) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(f"[limits]\n{line}\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert key in str(error.value)
