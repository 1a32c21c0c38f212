"""The metrics contract against the real thing: Debian's `prometheus` scrapes a gateway
under traffic with deploy/prometheus/alerts.yml loaded, and every PromQL expression of
the Grafana dashboard and of the alert rules runs on what it scraped. `promtool` checks
the rules, the Prometheus config and a live /metrics page. The docker compose files are
checked for agreement with each other, and the compose gateway config serves the
compose load generator's traffic."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
import yaml
from aiohttp.test_utils import TestServer
from prometheus_client.metrics import MetricWrapperBase

from gateway.app import create_app
from gateway.appkeys import RUNTIME
from gateway.config.loader import load_config
from gateway.telemetry.metrics import Batched, Family, Metrics
from tests.conftest import Gateway, Upstream

GatewayFactory = Callable[[str], Awaitable[Gateway]]
AiohttpServer = Callable[..., Awaitable[TestServer]]

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "gateway.json"
ADMIN_TOKEN = "admin-token-for-tests"
MESSAGES = [{"role": "user", "content": "How do I reset my password?"}]
WAIT_S = 30.0  # the longest any condition below is waited for (a busy CI machine)

# Expressions that rightly return nothing here, each with the reason: matched as a
# substring of the expression (spaces ignored). Every entry must match something.
NO_DATA_EXPECTED = {
    "gateway_shadow_requests_total": "no shadow routing is set: nothing is mirrored",
    "gateway_rollout_events_total": "no rollout runs in this test",
    "gateway_feedback_total": "no feedback is sent in this test",
    "gateway_store_up==0": "alert: the embedded store is always up",
    "gateway_store_data_loss_total[15m])>0": "alert: the embedded store never loses its data",
    'up{job="gateway"}==0': "alert: the gateway is up while it is scraped",
    "(gateway_prompt_drift)==1": "alert: no reload moves a route under an approved version",
    "*scalar(gateway:": "alert: every request is within the latency and TTFT objectives",
    "gateway_limited_requests_total": "no key has limits in this test",
    "gateway_budget_spent_usd": "no key has a budget in this test",
}
# Metrics of SPEC §12 that the limits and budgets export (the alerts use them).
LIMIT_METRICS = {
    "gateway_limited_requests_total": {"key", "team", "limit"},
    "gateway_budget_spent_usd": {"key", "team", "period"},
    "gateway_budget_limit_usd": {"key", "team", "period"},
}
SCOPE = 'job=~"$job",instance=~"$instance"'  # in every selector of the dashboard
# Grafana's variables, as the dashboard's defaults ("All") resolve them.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "1m",
    "$job": ".*",
    "$instance": ".*",
    "$route": ".*",
    "$prompt": ".*",
}


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"`{name}` is not installed: these tests need Debian's prometheus package "
            "(apt-get install prometheus; `make services` does it)",
            pytrace=False,
        )
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def gateway_config(upstream: Upstream) -> str:
    """Routes for every kind of traffic the dashboard and the alerts look at."""
    return f"""
        [server]
        request_timeout_s = 30
        admin_token = "{ADMIN_TOKEN}"

        [providers.fake]
        type = "openai"
        base_url = "{upstream.base_url}"

        [providers.fake-anthropic]
        type = "anthropic"
        base_url = "{upstream.root_url}"

        [providers.canary]              # its breaker never opens: the canary keeps failing
        type = "openai"
        base_url = "{upstream.base_url}"
        breaker_consecutive_failures = 100000
        breaker_min_requests = 100000

        [models.chat]
        targets = [{{ provider = "fake", model = "mock-gpt" }}]

        [models.claude]
        targets = [{{ provider = "fake-anthropic", model = "mock-claude" }}]

        [models.failover]               # the first target always answers 500
        targets = [
          {{ provider = "fake", model = "error=500" }},
          {{ provider = "fake", model = "mock-gpt" }},
        ]

        [models.local]                  # no price
        targets = [{{ provider = "fake", model = "mock-local" }}]

        [models.canary-bad]             # slow, then 503
        targets = [{{ provider = "canary", model = "slow=600+error=503" }}]
        retries_per_target = 0

        [pricing."mock-gpt"]
        input_per_mtok = 0.15
        output_per_mtok = 0.60

        [pricing."mock-claude"]
        input_per_mtok = 1.0
        output_per_mtok = 5.0

        [[keys]]
        name = "test-app"
        sha256 = "{{key_sha256}}"

        [prompts.support]               # v1: live with all the weight
        model = "chat"
        messages = [{{ role = "system", content = "You help with {{{{product}}}}." }}]
    """


async def admin(gw: Gateway, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, gw.url("/admin" + path), json=body, headers=headers) as response,
    ):
        return response.status, await response.json()


async def add_canary(gw: Gateway) -> None:
    """`support` v2 on the slow, failing route, approved, at 20%."""
    v2 = {
        "model": "canary-bad",
        "messages": [{"role": "system", "content": "You help with {{product}}, v2."}],
    }
    status, created = await admin(gw, "POST", "/prompts/support/versions", v2)
    assert (status, created["version"]) == (201, "v2"), created
    status, _ = await admin(gw, "POST", "/prompts/support/versions/v2/approve", {})
    assert status == 200
    status, _ = await admin(
        gw, "PUT", "/prompts/support/routing", {"weights": {"v1": 80, "v2": 20}}
    )
    assert status == 200


async def _chat(client: openai.AsyncOpenAI, model: str, stream: bool) -> int:
    """One request; the status the client got."""
    extra = {"prompt_variables": {"product": "Acme"}} if model.startswith("prompt:") else None
    try:
        if stream:
            chunks = await client.chat.completions.create(
                model=model, messages=MESSAGES, stream=True, extra_body=extra
            )
            async for _ in chunks:
                pass
        else:
            await client.chat.completions.create(model=model, messages=MESSAGES, extra_body=extra)
    except openai.APIStatusError as exc:
        return exc.status_code
    return 200


async def drive_traffic(gw: Gateway, canary_requests: int) -> int:
    """A burst of every kind, at once; returns how many /v1 requests were made."""
    burst: list[tuple[str, bool, set[int], int]] = [
        ("chat", False, {200}, 3),
        ("chat", True, {200}, 3),
        ("claude", False, {200}, 1),
        ("claude", True, {200}, 2),
        ("failover", False, {200}, 3),
        ("failover", True, {200}, 1),
        ("local", False, {200}, 2),
        ("local", True, {200}, 1),
        ("prompt:support@v1", False, {200}, 3),
        ("prompt:support@v1", True, {200}, 3),
        ("prompt:support", False, {200, 502}, 4),  # by weight: v1 or v2
        ("prompt:support@v2", False, {502}, canary_requests),
    ]
    calls = [(model, stream, ok) for model, stream, ok, n in burst for _ in range(n)]
    async with gw.client() as client:
        statuses = await asyncio.gather(*(_chat(client, m, s) for m, s, _ in calls))
    for (model, stream, ok), status in zip(calls, statuses, strict=True):
        assert status in ok, f"{model} (stream={stream}) answered {status}"
    return len(calls)


def _replace_text(path: Path, text: str) -> str:
    """Write `text` to `path`; returns what was there."""
    before = path.read_text()
    path.write_text(text)
    return before


async def fail_a_reload(gw: Gateway) -> None:
    """A broken config file is refused (the old one stays); the fixed file reloads."""
    path = Path(gw.app[RUNTIME].current.config.path)
    good = _replace_text(path, "[models.broken\n")
    status, body = await admin(gw, "POST", "/reload")
    assert status == 400, body
    _replace_text(path, good)
    status, body = await admin(gw, "POST", "/reload")
    assert status == 200, body


@dataclass
class Prometheus:
    url: str
    session: aiohttp.ClientSession
    log: Path

    async def api(self, path: str, **params: str) -> Any:
        async with self.session.get(self.url + path, params=params) as response:
            body = await response.json()
        assert body.get("status") == "success", f"{path} {params}: {body}"
        return body["data"]

    async def query(self, expr: str) -> list[dict[str, Any]]:
        data = await self.api("/api/v1/query", query=expr)
        assert data["resultType"] in ("vector", "scalar"), data
        result: list[dict[str, Any]] = data["result"] if data["resultType"] == "vector" else [data]
        return result

    async def value(self, expr: str) -> float:
        """The single value of `expr`, or NaN while it has none."""
        result = await self.query(expr)
        return float(result[0]["value"][1]) if result else float("nan")

    async def eventually(
        self, what: str, check: Callable[[], Awaitable[bool]], seen: Any = None
    ) -> None:
        """Poll `check` (Prometheus scrapes every second, evaluates rules every second);
        `seen` is shown on failure."""
        deadline = time.monotonic() + WAIT_S
        while not await check():
            if time.monotonic() > deadline:
                log = self.log.read_text()[-3000:]
                pytest.fail(
                    f"not within {WAIT_S:g}s: {what}\nlast seen: {seen}\nprometheus log:\n{log}"
                )
            await asyncio.sleep(0.1)


@pytest.fixture
async def prometheus_factory(
    tmp_path: Path,
) -> AsyncIterator[Callable[[str], Awaitable[Prometheus]]]:
    """Start Debian's prometheus on a free loopback port, scraping `target` every second
    and evaluating deploy/prometheus/alerts.yml every second."""
    binary = _binary("prometheus")
    processes: list[asyncio.subprocess.Process] = []
    sessions: list[aiohttp.ClientSession] = []

    async def start(target: str) -> Prometheus:
        config = tmp_path / "prometheus.yml"
        config.write_text(
            textwrap.dedent(f"""
                global:
                  scrape_interval: 1s
                  scrape_timeout: 1s
                  evaluation_interval: 1s
                rule_files:
                  - "{ALERTS}"
                scrape_configs:
                  - job_name: gateway
                    static_configs:
                      - targets: ["{target}"]
            """)
        )
        port = free_port()
        log = tmp_path / "prometheus.log"
        with log.open("wb") as out:
            process = await asyncio.create_subprocess_exec(
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                stdout=out,
                stderr=out,
            )
        processes.append(process)
        session = aiohttp.ClientSession()
        sessions.append(session)
        prom = Prometheus(f"http://127.0.0.1:{port}", session, log)

        async def ready() -> bool:
            if process.returncode is not None:
                pytest.fail(f"prometheus exited {process.returncode}:\n{log.read_text()}")
            try:
                async with session.get(prom.url + "/-/ready") as response:
                    return response.status == 200
            except aiohttp.ClientConnectionError:
                return False

        await prom.eventually("prometheus is ready", ready)
        return prom

    yield start
    for session in sessions:
        await session.close()
    for process in processes:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


def dashboard_queries() -> list[str]:
    """Every PromQL expression of the dashboard as written (panels, annotations, the
    query variables' `label_values(selector, label)` as the PromQL they stand for)."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("expr"), str):
                found.append(node["expr"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    dashboard = json.loads(DASHBOARD.read_text())
    walk(dashboard["panels"])
    walk(dashboard["annotations"]["list"])
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "datasource":
            continue
        query = variable["query"]
        query = query["query"] if isinstance(query, dict) else query
        match = re.fullmatch(r"label_values\((\w+(?:\{[^}]*\})?),\s*(\w+)\)", query)
        assert match, f"variable {variable['name']}: unexpected query {query}"
        found.append(f"count by ({match[2]}) ({match[1]})")
    return found


def dashboard_expressions() -> list[str]:
    """Every PromQL expression of the dashboard, Grafana's variables resolved as its
    defaults ("All") resolve them."""
    resolved = []
    for expr in dashboard_queries():
        for name, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(name, value)
        assert "$" not in expr, f"unresolved Grafana variable in {expr}"
        resolved.append(expr)
    return resolved


def _no_data_reason(expr: str) -> str | None:
    compact = re.sub(r"\s+", "", expr)
    for needle, reason in NO_DATA_EXPECTED.items():
        if needle in compact:
            return reason
    return None


async def test_dashboard_and_alert_queries_on_a_real_prometheus(
    gateway_factory: GatewayFactory,
    upstream_factory: Callable[..., Awaitable[Upstream]],
    prometheus_factory: Callable[[str], Awaitable[Prometheus]],
) -> None:
    upstream = await upstream_factory()
    gw = await gateway_factory(gateway_config(upstream))
    await add_canary(gw)
    prom = await prometheus_factory(f"127.0.0.1:{gw.server.port}")

    async def up() -> bool:
        return await prom.value('up{job="gateway"}') == 1

    await prom.eventually("the gateway is scraped", up)

    # Two bursts seen by two different scrapes, so that rate() and increase() have data.
    sent = await drive_traffic(gw, canary_requests=24)

    def scraped(total: int) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return await prom.value("sum(gateway_requests_total)") >= total

        return check

    await prom.eventually(f"{sent} requests scraped", scraped(sent))
    await fail_a_reload(gw)
    sent += await drive_traffic(gw, canary_requests=24)
    await prom.eventually(f"{sent} requests scraped", scraped(sent))

    async def failed_reload_seen() -> bool:
        failures = 'sum(gateway_config_reloads_total{result="failure"})'
        return await prom.value(failures) >= 1

    await prom.eventually("the failed reload scraped", failed_reload_seen)

    # What Prometheus holds is what happened.
    assert await prom.value('sum(gateway_unpriced_requests_total{model="mock-local"})') == 6
    assert await prom.query('gateway_cost_usd_total{model="mock-local"}') == []
    assert await prom.value('sum(gateway_tokens_total{model="mock-local",type="output"})') > 0
    weights = 'gateway_prompt_weight{prompt="support",version="%s"}'
    assert (await prom.value(weights % "v1"), await prom.value(weights % "v2")) == (80, 20)
    assert await prom.value('gateway_circuit_state{model="error=500"}') == 2
    drift = 'gateway_prompt_drift{prompt="support",version="%s"}'
    assert (await prom.value(drift % "v1"), await prom.value(drift % "v2")) == (0, 0)
    assert await prom.value('sum(gateway_failovers_total{route="failover"})') == 8
    assert await prom.value('sum(gateway_requests_total{version="v2",status="502"})') >= 48

    # Every rule of alerts.yml (alerts and recording rules) loads and evaluates.
    expected_rules = len(re.findall(r"^\s*- (?:alert|record):", ALERTS.read_text(), re.M))
    rules: list[dict[str, Any]] = []

    async def rules_evaluated() -> bool:
        groups = (await prom.api("/api/v1/rules"))["groups"]
        rules[:] = [r for g in groups for r in g["rules"]]
        return len(rules) == expected_rules and all(r["health"] != "unknown" for r in rules)

    await prom.eventually("every alert rule evaluated", rules_evaluated)
    assert [
        (r["name"], r["health"], r.get("lastError", "")) for r in rules if r["health"] != "ok"
    ] == []

    # Every expression parses; every one has data unless the list above says why not.
    expressions = [(f"dashboard: {e}", e) for e in dashboard_expressions()]
    expressions += [(f"alert {r['name']}: {r['query']}", r["query"]) for r in rules]
    used: set[str] = set()
    waiting: list[tuple[str, str]] = []
    for where, expr in expressions:
        reason = _no_data_reason(expr)
        if reason is not None:
            used.add(reason)
        else:
            waiting.append((where, expr))

    async def all_have_data() -> bool:
        # Rules are evaluated a second apart from the scrapes: what has no data yet is
        # asked again until the deadline, not judged on one evaluation.
        waiting[:] = [(w, e) for w, e in waiting if not await prom.query(e)]
        return not waiting

    await prom.eventually("data for every expression", all_have_data, seen=waiting)
    assert used == set(NO_DATA_EXPECTED.values()), "stale entries in NO_DATA_EXPECTED"

    # The traffic raises exactly the alerts it should, on exactly the right labels.
    expected = {
        ("GatewayRouteErrorRateHigh", "route", "canary-bad"),
        ("GatewayCircuitOpen", "model", "error=500"),
        ("GatewayPromptVersionErrorRateAboveBaseline", "version", "v2"),
        ("GatewayPromptVersionLatencyAboveBaseline", "version", "v2"),
        ("GatewayConfigReloadFailing", "instance", f"127.0.0.1:{gw.server.port}"),
    }
    raised: set[tuple[str, str, str]] = set()
    alerts: list[dict[str, Any]] = []

    async def alerts_raised() -> bool:
        alerts[:] = (await prom.api("/api/v1/alerts"))["alerts"]
        raised.clear()
        for alert in alerts:
            labels = alert["labels"]
            for name, label, value in expected:
                if labels["alertname"] == name and labels.get(label) == value:
                    raised.add((name, label, value))
        names = Counter(a["labels"]["alertname"] for a in alerts)
        # One alert each: no healthy route, target or version is flagged.
        return raised == expected and all(n == 1 for n in names.values())

    await prom.eventually(f"alerts {sorted(expected)}", alerts_raised, alerts)

    # The dashboard's job and instance variables list the gateway; its reload
    # annotation shows the failed reload (and the good one) on the gateway's instance.
    instance = f"127.0.0.1:{gw.server.port}"
    variables = dashboard_expressions()
    jobs = await prom.query(next(e for e in variables if e.startswith("count by (job)")))
    assert [r["metric"]["job"] for r in jobs] == ["gateway"]
    instances = await prom.query(next(e for e in variables if e.startswith("count by (instance)")))
    assert [r["metric"]["instance"] for r in instances] == [instance]
    reloads = next(e for e in variables if "gateway_config_reloads_total" in e and "> 0" in e)
    marked = {
        (r["metric"]["instance"], r["metric"]["result"])
        for r in await prom.query(
            reloads.replace("[1m]", "[1h]")  # the whole test, not one step of a graph
        )
    }
    assert marked == {(instance, "failure"), (instance, "success")}


def _known_metrics() -> dict[str, set[str]]:
    """Every series name the gateway can export (collectors included), with the label
    names it may carry."""
    metrics = Metrics()
    labels: dict[str, set[str]] = {}
    types: dict[str, str] = {}
    for family in metrics.registry.collect():
        types[family.name] = family.type
        labels[family.name] = {k for s in family.samples for k in s.labels}
    for attribute in vars(metrics).values():
        collector = attribute.metric if isinstance(attribute, (Family, Batched)) else attribute
        if isinstance(collector, MetricWrapperBase):
            labels[collector._name] |= set(collector._labelnames)
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
    known = {}
    for name, names in labels.items():
        for suffix in suffixes.get(types[name], ("",)):
            known[name + suffix] = names | ({"le"} if suffix == "_bucket" else set())
    return known


def test_dashboard_and_alerts_use_only_the_gateways_metric_and_label_names() -> None:
    known = _known_metrics()
    for name, label_names in LIMIT_METRICS.items():
        known.setdefault(name, label_names)
    known["up"] = set()  # Prometheus's own, per scrape target
    scrape_labels = {"instance", "job"}
    rules = [r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]]
    recorded = {r["record"] for r in rules if "record" in r}
    exprs = dashboard_expressions() + [str(r["expr"]) for r in rules]
    for expr in exprs:
        # A series recorded in alerts.yml (level:metric:operations) is checked as a name.
        uses = set(re.findall(r"\b[a-z_]+:[a-z0-9_:]+", expr))
        assert uses <= recorded, f"{uses - recorded} recorded nowhere, in {expr}"
        expr = re.sub(r"\b[a-z_]+:[a-z0-9_:]+", "", expr)
        if expr.startswith("vector(") or (
            uses and not re.search(r"\b(?:gateway|process|python)_", expr)
        ):
            continue  # a constant (an objective), or recorded series only
        names = set(re.findall(r"\b((?:gateway|process|python)_[a-z_]+|up)\b(?!\s*\()", expr))
        assert names, expr
        unknown = names - known.keys()
        assert not unknown, f"unknown metric {unknown} in {expr}"
        allowed = set.union(*(known[n] for n in names)) | scrape_labels
        used = set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)\s*\"", expr))
        for group in re.findall(
            r"\b(?:by|on|without|ignoring|group_left|group_right)\s*\(([^)]*)\)", expr
        ):
            used |= {g.strip() for g in group.split(",") if g.strip()}
        assert used <= allowed, f"unknown labels {used - allowed} in {expr}"


def _promtool(*args: str, stdin: bytes | None = None) -> tuple[int, str]:
    done = subprocess.run(
        [_binary("promtool"), *args], input=stdin, capture_output=True, timeout=30, check=False
    )
    return done.returncode, (done.stdout + done.stderr).decode()


def test_promtool_checks_the_rules_and_the_prometheus_config() -> None:
    code, output = _promtool("check", "rules", str(ALERTS))
    assert code == 0, output
    # The compose config, with the rule file it loads from beside it.
    code, output = _promtool("check", "config", str(DEPLOY / "prometheus" / "prometheus.yml"))
    assert code == 0, output


async def test_promtool_accepts_a_live_metrics_page(
    gateway_factory: GatewayFactory, upstream: Upstream
) -> None:
    gw = await gateway_factory(gateway_config(upstream))
    await add_canary(gw)
    await drive_traffic(gw, canary_requests=2)
    async with aiohttp.ClientSession() as session, session.get(gw.url("/metrics")) as response:
        page = await response.read()
    for name in (
        "gateway_tokens_total",
        "gateway_unpriced_requests_total",
        "process_cpu_seconds_total",
        "python_info",
    ):
        assert name.encode() in page
    # Exit 0 only with no lint problem either (3 would mean lint warnings).
    code, output = await asyncio.to_thread(_promtool, "check", "metrics", stdin=page)
    assert (code, output) == (0, "")


COMPOSE = ROOT / "docker-compose.yml"
COMPOSE_CONFIG = DEPLOY / "gateway.compose.toml"
COMPOSE_ENV = {"GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN, "REDIS_URL": "redis://redis:6379/0"}


def test_compose_files_agree_with_each_other() -> None:
    """docker cannot run here: check what the stack's files say of each other."""
    compose = COMPOSE.read_text()
    for path in [COMPOSE, *DEPLOY.rglob("*.yml")]:
        assert "\t" not in path.read_text(), f"a tab in {path}: YAML forbids them"
    services = set(re.findall(r"^  ([a-z][a-z0-9-]*):$", compose, re.M))
    assert {"gateway", "mock", "loadgen", "redis", "prometheus", "grafana"} <= services
    assert "build: ." in compose and (ROOT / "Dockerfile").is_file()
    mounts = re.findall(r"^\s+- \./([^:]+):([^:]+)(?::ro)?$", compose, re.M)
    assert len(mounts) >= 5
    for source, _ in mounts:
        assert (ROOT / source).exists(), f"docker-compose.yml mounts a missing ./{source}"
    mounted = {source: target for source, target in mounts}

    # The gateway listens where Prometheus scrapes it, and reaches redis and the mock.
    config = load_config(COMPOSE_CONFIG, env=COMPOSE_ENV)
    assert mounted["deploy/gateway.compose.toml"] in compose.split("command:")[1].split("\n")[0]
    prometheus = (DEPLOY / "prometheus" / "prometheus.yml").read_text()
    assert f'targets: ["gateway:{config.server.port}"]' in prometheus
    assert "REDIS_URL: redis://redis:6379/0" in compose
    assert config.redis.url == COMPOSE_ENV["REDIS_URL"]
    assert '"--port", "9100"' in compose
    assert {p.type for p in config.providers.values()} == {"openai", "anthropic"}
    for provider in config.providers.values():
        assert provider.base_url.startswith("http://mock:9100"), provider
    assert mounted["deploy/prometheus"] == "/etc/prometheus"
    assert "--config.file=/etc/prometheus/prometheus.yml" in compose

    # Grafana: the datasource is the prometheus service, with the uid the dashboard
    # uses; the dashboard provider reads the directory the dashboard is mounted at.
    # The dashboard names no uid: its data source variable picks the default one.
    datasource = (DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text()
    assert "url: http://prometheus:9090" in datasource
    assert "type: prometheus" in datasource and "isDefault: true" in datasource
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert {p["datasource"]["uid"] for p in panels} == {"${datasource}"}
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    provider = (DEPLOY / "grafana/provisioning/dashboards/gateway.yml").read_text()
    assert f"path: {mounted['deploy/grafana/dashboards']}" in provider
    assert mounted["deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    assert 'GF_AUTH_ANONYMOUS_ENABLED: "true"' in compose
    assert "GF_AUTH_ANONYMOUS_ORG_ROLE: Viewer" in compose


def test_compose_gateway_config_passes_check_config() -> None:
    command = [sys.executable, "-m", "gateway", "check-config", str(COMPOSE_CONFIG)]
    env = {k: v for k, v in os.environ.items() if k not in COMPOSE_ENV}
    done = subprocess.run(
        command, env={**env, **COMPOSE_ENV}, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # Without the admin token it is refused, and says which variable is missing.
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode != 0
    assert "GATEWAY_ADMIN_TOKEN" in done.stdout + done.stderr


async def test_compose_config_serves_the_load_generator(
    aiohttp_server: AiohttpServer, upstream: Upstream
) -> None:
    """deploy/gateway.compose.toml with the mock at another address (MOCK_URL), driven
    by deploy/loadgen.py as a process: every answer is a 200 and the canary is live."""
    env = {**COMPOSE_ENV, "REDIS_URL": "", "MOCK_URL": upstream.root_url}
    app = create_app(load_config(COMPOSE_CONFIG, env=env))
    gw = Gateway(await aiohttp_server(app), app)
    loadgen = await asyncio.create_subprocess_exec(
        sys.executable,
        str(DEPLOY / "loadgen.py"),
        "--url",
        gw.url("/").rstrip("/"),
        "--count",
        "40",
        "--rate",
        "400",
        "--seed",
        "1",
        env={**os.environ, "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(loadgen.communicate(), 30)
    finally:
        if loadgen.returncode is None:
            loadgen.kill()
            await loadgen.wait()
    assert loadgen.returncode == 0, err.decode()
    summary = json.loads(out.decode().splitlines()[-1])
    assert summary == {"sent": 40, "statuses": {"200": 40}}, out.decode()

    async with aiohttp.ClientSession() as session, session.get(gw.url("/metrics")) as response:
        page = await response.text()
    assert 'gateway_prompt_weight{prompt="support-reply",version="v1"} 90.0' in page
    assert 'gateway_prompt_weight{prompt="support-reply",version="v2"} 10.0' in page
    for key in ("support-app", "search-app"):
        assert re.search(rf'gateway_cost_usd_total{{[^}}]*key="{key}"', page), key
    for route in ("chat", "claude", "fast", "slow"):
        assert f'route="{route}"' in page, route
    assert re.search(r'gateway_requests_total{prompt="support-reply"[^}]*status="200"', page)


def test_dashboard_has_a_datasource_input_and_job_and_instance_everywhere() -> None:
    """Importable anywhere: no data source uid but `${datasource}`, and every selector of
    every query (panels, annotations, the variables after job) scoped by `$job` and
    `$instance`; config reloads and rollout decisions are annotations."""
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert list(variables)[:3] == ["datasource", "job", "instance"]
    assert (variables["datasource"]["type"], variables["datasource"]["query"]) == (
        "datasource",
        "prometheus",
    )
    assert variables["datasource"]["current"] == {}  # Grafana's default data source
    assert variables["instance"]["definition"] == (
        'label_values(gateway_build_info{job=~"$job"}, instance)'
    )
    for name in ("job", "instance", "route", "prompt"):
        assert variables[name]["includeAll"] and variables[name]["allValue"] == ".*", name

    uids: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            source = node.get("datasource")
            if isinstance(source, dict) and source.get("type") == "prometheus":
                uids.add(source["uid"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(dashboard)
    assert uids == {"${datasource}"}

    queries = dashboard_queries()
    assert len(queries) > 50
    for query in queries:
        if query == "count by (job) (gateway_build_info)":
            continue  # the job variable itself
        selectors = re.findall(r"\b(?:gateway|process)_[a-z_]+\b(?!\s*\()(\{[^}]*\})?", query)
        assert selectors, query
        scope = 'job=~"$job"' if "count by (instance)" in query else SCOPE
        for selector in selectors:
            assert selector.startswith("{" + scope), f"{selector or 'no selector'} in {query}"

    annotations = {a["name"]: a for a in dashboard["annotations"]["list"]}
    assert "gateway_config_reloads_total" in annotations["Config reloads"]["expr"]
    assert "gateway_rollout_events_total" in annotations["Rollout decisions"]["expr"]
    for name in ("Config reloads", "Rollout decisions"):
        assert annotations[name]["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert annotations[name]["enable"] is True
