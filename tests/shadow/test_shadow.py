"""Shadow traffic end to end: sampled mirrors of live requests to a route's shadow
targets and a prompt's shadow versions, run after the client has its answer, never
changing it; counted, logged and reported side by side with the primary."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.appkeys import METRICS, SHADOW
from gateway.config.loader import load_config
from gateway.config.source import ConfigError
from gateway.providers.mock import openai_completion
from tests.conftest import CLIENT_TOKEN, Gateway, Upstream

GatewayFactory = Callable[[str], Awaitable[Gateway]]
UpstreamFactory = Callable[..., Awaitable[Upstream]]
AiohttpServer = Callable[..., Awaitable[TestServer]]
ADMIN = "admin-token-for-shadow"
HELLO = [{"role": "user", "content": "hello"}]
AUTH = {"Authorization": f"Bearer {CLIENT_TOKEN}"}


def config(providers: dict[str, str], routes: str, shadow: str = "") -> str:
    """`providers`: name -> base URL (`mock` for the in-process mock)."""
    blocks = []
    for name, url in providers.items():
        kind = 'type = "mock"' if url == "mock" else f'type = "openai"\nbase_url = "{url}"'
        blocks.append(f"[providers.{name}]\n{kind}\n")
    return f"""
[server]
admin_token = "{ADMIN}"
request_timeout_s = 30
[shadow]
{shadow}
{"".join(blocks)}
{routes}
[pricing."mock-gpt"]
input_per_mtok = 1.0
output_per_mtok = 2.0
[pricing."words=5"]
input_per_mtok = 3.0
output_per_mtok = 4.0
[[keys]]
name = "test-app"
sha256 = "{{key_sha256}}"
"""


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens here once closed: refused


async def post(
    session: aiohttp.ClientSession, gw: Gateway, body: dict[str, Any]
) -> tuple[int, dict[str, str], bytes, float]:
    began = time.perf_counter()
    async with session.post(gw.url("/v1/chat/completions"), json=body, headers=AUTH) as r:
        raw = await r.read()
        return r.status, dict(r.headers), raw, time.perf_counter() - began


async def admin(
    session: aiohttp.ClientSession, gw: Gateway, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {ADMIN}"}
    async with session.request(method, gw.url("/admin" + path), json=body, headers=headers) as r:
        return r.status, await r.json()


def shadow_count(gw: Gateway, outcome: str, route: str = "chat", **labels: str) -> float:
    value = gw.app[METRICS].registry.get_sample_value(
        "gateway_shadow_requests_total",
        {"route": route, "prompt": "", "version": "", "outcome": outcome, **labels},
    )
    return value or 0.0


def row(report: dict[str, Any], shadow: str) -> dict[str, Any]:
    found = [r for r in report["comparisons"] if r["shadow"]["label"] == shadow]
    assert len(found) == 1, report
    return found[0]


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


async def test_every_request_mirrored_with_the_shadow_header_and_role(
    gateway_factory: GatewayFactory,
    upstream_factory: UpstreamFactory,
    capfd: pytest.CaptureFixture[str],
) -> None:
    main, side = await upstream_factory(), await upstream_factory()
    routes = """
[models.chat]
targets = [{ provider = "main", model = "mock-gpt" }]
shadow = { targets = [{ provider = "side", model = "words=5" }], sample_rate = 1.0 }
"""
    gw = await gateway_factory(config({"main": main.base_url, "side": side.base_url}, routes))
    async with aiohttp.ClientSession() as session:
        for _ in range(20):
            status, headers, _, _ = await post(session, gw, {"model": "chat", "messages": HELLO})
            assert status == 200 and not any("shadow" in h.lower() for h in headers)
        await gw.app[SHADOW].join()
        async with session.get(gw.url("/metrics")) as r:
            page = await r.text()
        _, report = await admin(session, gw, "GET", "/models/chat/shadow")
    assert main.stats.requests["/v1/chat/completions"] == 20
    assert side.stats.requests["/v1/chat/completions"] == 20
    assert side.stats.last_headers.get("X-Gateway-Shadow") == "1"
    assert "X-Gateway-Shadow" not in main.stats.last_headers
    assert shadow_count(gw, "ok") == 20
    for family in (
        "gateway_requests_total{",
        "gateway_request_duration_seconds_count{",
        "gateway_tokens_total{",
        "gateway_cost_usd_total{",
    ):
        lines = [line for line in page.splitlines() if line.startswith(family)]
        assert any('role="shadow"' in line and 'provider="side"' in line for line in lines)
        assert not any('role="shadow"' in line and 'provider="main"' in line for line in lines)
    comparison = row(report, "side/words=5")
    assert comparison["primary"]["label"] == "main/mock-gpt"
    assert comparison["primary"]["requests"] == comparison["shadow"]["requests"] == 20
    assert comparison["shadow"]["output_tokens_per_request"] == 5
    assert comparison["shadow"]["cost_usd_per_request"] > 0
    agreement = comparison["agreement"]
    assert agreement["compared"] == 20 and agreement["exact_match_rate"] == 0.0
    assert agreement["similarity"] < 1
    # The access log has each shadow line, tied to the request it mirrors.
    lines: list[dict[str, Any]] = []
    deadline = time.monotonic() + 10
    while len([x for x in lines if x.get("role") == "shadow"]) < 20:
        assert time.monotonic() < deadline, "shadow access-log lines never came"
        await asyncio.sleep(0.05)  # the writer thread flushes every 100 ms
        out, _ = capfd.readouterr()
        lines += [orjson.loads(x) for x in out.splitlines() if x.startswith('{"ts"')]
    primaries = {x["request_id"] for x in lines if x["role"] == "primary"}
    shadows = [x for x in lines if x["role"] == "shadow"]
    assert {x["primary_request_id"] for x in shadows} == primaries
    assert all(x["primary_request_id"] is None for x in lines if x["role"] == "primary")


async def test_a_sample_rate_mirrors_about_that_share(gateway_factory: GatewayFactory) -> None:
    routes = """
[models.chat]
targets = [{ provider = "mock", model = "demo" }]
shadow = { targets = [{ provider = "mock", model = "shadow" }], sample_rate = 0.1 }
"""
    gw = await gateway_factory(config({"mock": "mock"}, routes))
    gate = asyncio.Semaphore(16)

    async def one(session: aiohttp.ClientSession) -> None:
        async with gate:
            status, _, _, _ = await post(session, gw, {"model": "chat", "messages": HELLO})
            assert status == 200

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(one(session) for _ in range(1000)))
    await gw.app[SHADOW].join()
    mirrored = shadow_count(gw, "ok")
    # Binomial(1000, 0.1): mean 100, sd 9.5; this bound is over 5 sd either way.
    assert 50 <= mirrored <= 150, mirrored


async def test_failing_shadow_targets_leave_the_primary_alone(
    gateway_factory: GatewayFactory, upstream_factory: UpstreamFactory
) -> None:
    main, side = await upstream_factory(), await upstream_factory()
    down = f"http://127.0.0.1:{closed_port()}/v1"
    routes = """
[models.plain]
targets = [{ provider = "main", model = "slow=100" }]
[models.chat]
targets = [{ provider = "main", model = "slow=100" }]
shadow = { sample_rate = 1.0, targets = [
  { provider = "down", model = "mock-gpt" },
  { provider = "side", model = "slow=10000" },
  { provider = "side", model = "cut" },
] }
"""
    providers = {"main": main.base_url, "side": side.base_url, "down": down}
    gw = await gateway_factory(config(providers, routes, "timeout_s = 2\nmax_concurrency = 64"))
    latencies: dict[str, list[float]] = {"plain": [], "chat": []}
    answers: dict[str, set[bytes]] = {"plain": set(), "chat": set()}
    header_names: dict[str, set[frozenset[str]]] = {"plain": set(), "chat": set()}
    async with aiohttp.ClientSession() as session:
        for _ in range(15):
            for route in ("plain", "chat"):
                status, headers, raw, spent = await post(
                    session, gw, {"model": route, "messages": HELLO}
                )
                assert status == 200
                body = orjson.loads(raw)
                answers[route].add(orjson.dumps([body["choices"], body["usage"]]))
                header_names[route].add(frozenset(headers))
                latencies[route].append(spent)
        # The shadow off and on: the same answer, the same headers, no wait for shadows.
        assert answers["plain"] == answers["chat"] and len(answers["chat"]) == 1
        assert header_names["plain"] == header_names["chat"]
        # A primary that waited for its slow shadow would take 2 s instead of ~0.1 s.
        assert p99(latencies["chat"]) < 10 * p99(latencies["plain"])
        await gw.app[SHADOW].join()
        _, report = await admin(session, gw, "GET", "/models/chat/shadow?since=1h")
    assert shadow_count(gw, "error") == 45 and shadow_count(gw, "ok") == 0
    for target in ("down/mock-gpt", "side/slow=10000", "side/cut"):
        comparison = row(report, target)
        assert comparison["primary"]["error_rate"] == 0.0
        assert comparison["shadow"]["error_rate"] == 1.0
        assert comparison["agreement"]["compared"] == 0
    slow = row(report, "side/slow=10000")["shadow"]["latency_ms"]
    assert slow["p50"] >= 2000 and slow["p95"] < 10_000  # cut off by its own timeout


async def test_a_full_queue_drops_and_counts(
    gateway_factory: GatewayFactory,
    upstream_factory: UpstreamFactory,
    aiohttp_server: AiohttpServer,
) -> None:
    main = await upstream_factory()
    gate = asyncio.Event()

    async def held(request: web.Request) -> web.Response:
        await gate.wait()
        return web.json_response(openai_completion("held", "fine", 1, "chatcmpl-held"))

    held_app = web.Application()
    held_app.router.add_post("/v1/chat/completions", held)
    side = await aiohttp_server(held_app)
    routes = """
[models.chat]
targets = [{ provider = "main", model = "mock-gpt" }]
shadow = { targets = [{ provider = "side", model = "held" }] }
"""
    providers = {"main": main.base_url, "side": str(side.make_url("/v1"))}
    gw = await gateway_factory(config(providers, routes, "max_concurrency = 1\nqueue_size = 2"))
    async with aiohttp.ClientSession() as session:
        for _ in range(10):
            status, _, _, _ = await post(session, gw, {"model": "chat", "messages": HELLO})
            assert status == 200
        # One running, two waiting, seven dropped.
        assert shadow_count(gw, "dropped") == 7
        gate.set()
        await gw.app[SHADOW].join()
        _, report = await admin(session, gw, "GET", "/models/chat/shadow")
    assert shadow_count(gw, "ok") == 3
    comparison = row(report, "side/held")
    assert comparison["dropped"] == 7 and comparison["shadow"]["requests"] == 3


async def test_a_streaming_primary_gets_a_streaming_shadow_read_to_the_end(
    gateway_factory: GatewayFactory, upstream_factory: UpstreamFactory
) -> None:
    main, side = await upstream_factory(), await upstream_factory()
    routes = """
[models.chat]
targets = [{ provider = "main", model = "mock-gpt" }]
shadow = { targets = [{ provider = "side", model = "chunk_delay=5+words=12" }] }
"""
    gw = await gateway_factory(config({"main": main.base_url, "side": side.base_url}, routes))
    async with gw.client() as client:
        for _ in range(3):
            stream = await client.chat.completions.create(
                model="chat",
                messages=HELLO,
                stream=True,  # type: ignore[arg-type]
            )
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
            assert text == "Mock answer to: hello"
    await gw.app[SHADOW].join()
    assert side.stats.last_body["stream"] is True
    assert side.stats.last_headers.get("X-Gateway-Shadow") == "1"
    async with aiohttp.ClientSession() as session:
        _, report = await admin(session, gw, "GET", "/models/chat/shadow")
        async with session.get(gw.url("/metrics")) as r:
            page = await r.text()
    shadow = row(report, "side/chunk_delay=5+words=12")["shadow"]
    assert shadow["error_rate"] == 0.0 and shadow["ttft_ms"]["p50"] is not None
    # Usage comes in the last chunk: the whole stream was read.
    assert shadow["output_tokens_per_request"] == 12
    ttft = [x for x in page.splitlines() if x.startswith("gateway_time_to_first_token_seconds_c")]
    assert any('role="shadow"' in line for line in ttft)


PROMPT_ROUTES = """
[models.chat]
targets = [{ provider = "main", model = "mock-gpt" }]
[models.wordy]
targets = [{ provider = "wordy", model = "words=7" }]
[models.broken]
targets = [{ provider = "side", model = "error=500" }]
[models.slowpoke]
targets = [{ provider = "side", model = "slow=300" }]
[prompts.support]
model = "chat"
messages = [{ role = "system", content = "You answer for {{product}}." }]
params = { temperature = 0.2 }
"""


async def test_prompt_shadow_versions_reported_by_admin_api_and_cli(
    gateway_factory: GatewayFactory, upstream_factory: UpstreamFactory
) -> None:
    main, side, wordy = await upstream_factory(), await upstream_factory(), await upstream_factory()
    providers = {"main": main.base_url, "side": side.base_url, "wordy": wordy.base_url}
    gw = await gateway_factory(config(providers, PROMPT_ROUTES))
    system = [{"role": "system", "content": "You answer for {{product}}."}]
    versions = {
        "v2": {
            "model": "wordy",
            "messages": [{"role": "system", "content": "Shadow {{product}}"}],
            "params": {"temperature": 0.5},
        },
        "v3": {"model": "broken", "messages": system},
        "v4": {"model": "slowpoke", "messages": system},
        "v5": {"model": "chat", "messages": system, "params": {"temperature": 0.9}},
    }
    async with aiohttp.ClientSession() as session:
        for version, body in versions.items():
            status, created = await admin(session, gw, "POST", "/prompts/support/versions", body)
            assert (status, created["version"], created["status"]) == (201, version, "draft")
        shadow = {"versions": list(versions), "sample_rate": 1.0}
        status, _ = await admin(
            session,
            gw,
            "PUT",
            "/prompts/support/routing",
            {"weights": {"v1": 100}, "shadow": shadow},
        )
        assert status == 200
        body = {
            "model": "prompt:support",
            "messages": HELLO,
            "prompt_variables": {"product": "Acme"},
        }
        for _ in range(8):
            status, headers, _, _ = await post(session, gw, body)
            assert status == 200 and headers["X-Gateway-Prompt-Version"] == "v1"
        await post(session, gw, {**body, "model": "prompt:support@v1"})  # pinned: not mirrored
        await gw.app[SHADOW].join()
        status, report = await admin(session, gw, "GET", "/prompts/support/shadow?since=3600")
        assert status == 200
        status, _ = await admin(session, gw, "GET", "/prompts/nope/shadow")
        assert status == 404
        status, error = await admin(session, gw, "GET", "/prompts/support/shadow?since=soon")
        assert status == 400 and error["error"]["param"] == "since"
    # v2 rendered with the request's variables, its own params, then the client's messages.
    assert wordy.stats.last_body["messages"] == [
        {"role": "system", "content": "Shadow Acme"},
        {"role": "user", "content": "hello"},
    ]
    assert wordy.stats.last_body["temperature"] == 0.5
    assert "prompt_variables" not in wordy.stats.last_body
    assert [(r["primary"]["label"], r["shadow"]["label"]) for r in report["comparisons"]] == [
        ("v1", "v2"),
        ("v1", "v3"),
        ("v1", "v4"),
        ("v1", "v5"),
    ]
    for comparison in report["comparisons"]:
        assert comparison["primary"]["requests"] == 8
        assert comparison["primary"]["error_rate"] == 0.0
    v2, v3, v4, v5 = (row(report, v) for v in versions)
    assert v2["agreement"]["exact_match_rate"] == 0.0 and v2["agreement"]["similarity"] < 1
    assert v2["shadow"]["output_tokens_per_request"] == 7
    assert v3["shadow"]["error_rate"] == 1.0 and v3["agreement"]["compared"] == 0
    assert v4["shadow"]["latency_ms"]["p50"] >= 300
    assert v5["agreement"] == {"compared": 8, "exact_match_rate": 1.0, "similarity": 1.0}
    labels = {"route": "broken", "prompt": "support", "version": "v3"}
    assert shadow_count(gw, "error", **labels) == 8

    code, out, err = await cli(gw, "support", "--since", "1h")
    assert code == 0, err
    assert "v1 -> v3" in out and "100.0%" in out and "exact 100.0%" in out
    code, out, _ = await cli(gw, "chat", "--route", "--json")
    assert code == 0 and json.loads(out)["comparisons"] == []
    code, _, err = await cli(gw, "nope")
    assert code == 4 and "404" in err  # refused by the gateway


async def cli(gw: Gateway, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "shadow",
        "report",
        *args,
        "--url",
        gw.url(""),
        "--token",
        ADMIN,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    return process.returncode or 0, out.decode(), err.decode()


@pytest.mark.parametrize(
    ("shadow", "key", "message"),
    [
        (
            '{ targets = [{ provider = "nope", model = "m" }] }',
            "models.chat.shadow.targets[0].provider",
            "unknown provider 'nope'",
        ),
        (
            '{ targets = [{ provider = "p", model = "m" }], sample_rate = 1.5 }',
            "models.chat.shadow.sample_rate",
            "from 0 to 1",
        ),
        ("{ targets = [] }", "models.chat.shadow.targets", "at least one target"),
    ],
)
def test_route_shadow_is_validated(
    write_config: Callable[[str], Path], shadow: str, key: str, message: str
) -> None:
    path = write_config(f"""
        [providers.p]
        type = "mock"
        [models.chat]
        targets = [{{ provider = "p", model = "m" }}]
        shadow = {shadow}
    """)
    with pytest.raises(ConfigError, match=message) as caught:
        load_config(path)
    assert key in str(caught.value)


def test_shadow_section_defaults_and_limits(write_config: Callable[[str], Path]) -> None:
    base = (
        '[providers.p]\ntype = "mock"\n[models.chat]\ntargets = [{ provider = "p", model = "m" }]\n'
    )
    cfg = load_config(write_config(base))
    assert (cfg.shadow.max_concurrency, cfg.shadow.queue_size, cfg.shadow.timeout_s) == (8, 256, 30)
    assert cfg.models["chat"].shadow.targets == ()
    with pytest.raises(ConfigError, match=r"shadow\.max_concurrency"):
        load_config(write_config(base + "[shadow]\nmax_concurrency = 0\n"))


async def test_a_stream_that_stalls_mid_way_ends_the_same_for_a_shadow_and_a_primary(
    gateway_factory: GatewayFactory, upstream_factory: UpstreamFactory
) -> None:
    """One engine and one stream reader for both: the target's idle timeout cuts a
    stalled shadow stream as it cuts a primary's (502, `timeout`), long before the
    shadow's own deadline, and a shadow's failure never counts against the target."""
    main, side = await upstream_factory(), await upstream_factory()
    text = f"""
[server]
admin_token = "{ADMIN}"
request_timeout_s = 30
[shadow]
timeout_s = 20
[providers.main]
type = "openai"
base_url = "{main.base_url}"
[providers.side]
type = "openai"
base_url = "{side.base_url}"
idle_timeout_s = 0.2
[models.chat]
targets = [{{ provider = "main", model = "mock-gpt" }}]
shadow = {{ targets = [{{ provider = "side", model = "stall" }}], sample_rate = 1.0 }}
[models.stalling]
targets = [{{ provider = "side", model = "stall" }}]
[[keys]]
name = "test-app"
sha256 = "{{key_sha256}}"
"""
    gw = await gateway_factory(text)
    body = {"messages": HELLO, "stream": True}
    async with aiohttp.ClientSession() as session:
        async with session.post(
            gw.url("/v1/chat/completions"), json={**body, "model": "chat"}, headers=AUTH
        ) as r:
            assert r.status == 200 and b"[DONE]" in await r.read()
        await gw.app[SHADOW].join()
        async with session.post(
            gw.url("/v1/chat/completions"), json={**body, "model": "stalling"}, headers=AUTH
        ) as r:
            raw = await r.read()
            assert r.status == 200 and b"[DONE]" not in raw and b"stalled" in raw
    registry = gw.app[METRICS].registry

    def requests(route: str, status: str, role: str) -> float:
        labels = {"route": route, "prompt": "", "version": "", "provider": "side"}
        found = registry.get_sample_value(
            "gateway_requests_total", {**labels, "status": status, "role": role}
        )
        return found or 0.0

    assert requests("chat", "502", "shadow") == 1  # not 504 at the shadow's deadline
    assert requests("stalling", "502", "primary") == 1
    errors = "gateway_provider_errors_total"
    labels = {"provider": "side", "model": "stall", "reason": "timeout"}
    assert registry.get_sample_value(errors, labels) == 1  # the primary's only


async def test_a_shadow_version_that_needs_another_variable_is_a_counted_400(
    gateway_factory: GatewayFactory,
    upstream_factory: UpstreamFactory,
    capfd: pytest.CaptureFixture[str],
) -> None:
    main, side, wordy = await upstream_factory(), await upstream_factory(), await upstream_factory()
    providers = {"main": main.base_url, "side": side.base_url, "wordy": wordy.base_url}
    gw = await gateway_factory(config(providers, PROMPT_ROUTES))
    needy = {"model": "wordy", "messages": [{"role": "system", "content": "For {{team}}"}]}
    async with aiohttp.ClientSession() as session:
        status, _ = await admin(session, gw, "POST", "/prompts/support/versions", needy)
        assert status == 201
        routing = {"weights": {"v1": 100}, "shadow": {"versions": ["v2"], "sample_rate": 1.0}}
        status, _ = await admin(session, gw, "PUT", "/prompts/support/routing", routing)
        assert status == 200
        body = {"model": "prompt:support", "messages": HELLO, "prompt_variables": {"product": "A"}}
        status, _, _, _ = await post(session, gw, body)
        assert status == 200
        await gw.app[SHADOW].join()
    assert wordy.stats.total == 0
    labels = {"route": "wordy", "prompt": "support", "version": "v2"}
    assert shadow_count(gw, "error", **labels) == 1
    requests = gw.app[METRICS].registry.get_sample_value(
        "gateway_requests_total",
        {
            "route": "wordy",
            "prompt": "support",
            "version": "v2",
            "provider": "",
            "status": "400",
            "role": "shadow",
        },
    )
    assert requests == 1
    assert "Traceback" not in "".join(capfd.readouterr())
