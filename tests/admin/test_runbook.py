"""`GET /admin/prompts/{name}/diff` and `…/runbook` on a gateway on loopback: the diff
of two real versions, and the runbook of a prompt with docs, versions, a label, a
shadow, a rollout and a history, checked section by section."""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.appkeys import PROMPTS
from gateway.prompts.history import HistoryEntry
from tests.conftest import Gateway, Upstream

ROOT = Path(__file__).resolve().parents[2]
ADMIN = "admin-secret-token"
TOKENS = {"alice": "alice-token", "bob": "bob-token", "carol": "carol-token"}
ROLES = {"alice": '["author", "viewer"]', "bob": '["approver", "operator"]', "carol": '["viewer"]'}


def config(upstream_url: str) -> str:
    admins = "".join(
        f'\n[[admins]]\nname = "{name}"\nsha256 = "{hashlib.sha256(t.encode()).hexdigest()}"'
        f"\nroles = {ROLES[name]}\n"
        for name, t in TOKENS.items()
    )
    return (
        """
[server]
admin_token = "ADMIN"
request_timeout_s = 30
[providers.fake]
type = "openai"
base_url = "UPSTREAM"
api_key = "sk-upstream-secret"
[models.chat]
targets = [{ provider = "fake", model = "mock-gpt" }, { provider = "fake", model = "mock-spare" }]
per_try_timeout_s = 5
[pricing."mock-gpt"]
input_per_mtok = 0.15
output_per_mtok = 0.60
[[keys]]
name = "test-app"
sha256 = "{key_sha256}"
[prompts.support]
model = "chat"
note = "first version"
description = "Answers customer questions about one product, briefly."
owner = "Dana Reyes (support team)"
known_issues = "Long product names get cut at 40 characters."
runbook_notes = "Tell #support-oncall before any rollback in business hours."
messages = [{ role = "system", content = "You answer for {{product}}." }]
params = { temperature = 0.2 }
[prompts.bare]
model = "chat"
messages = [{ role = "user", content = "Hello." }]
""".replace("ADMIN", ADMIN).replace("UPSTREAM", upstream_url)
        + admins
    )


class Caller:
    def __init__(self, gw: Gateway, session: aiohttp.ClientSession, token: str) -> None:
        self.gw, self.session, self.token = gw, session, token

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.session.request(
            method,
            self.gw.url("/admin" + path),
            json=body,
            headers={"Authorization": f"Bearer {self.token}"},
        ) as r:
            return r.status, await r.json()

    async def text(self, path: str) -> tuple[int, str, str]:
        async with self.session.get(
            self.gw.url("/admin" + path), headers={"Authorization": f"Bearer {self.token}"}
        ) as r:
            return r.status, r.content_type, await r.text()


class Team:
    def __init__(self, gw: Gateway, session: aiohttp.ClientSession) -> None:
        self.gw = gw
        self.alice = Caller(gw, session, TOKENS["alice"])
        self.bob = Caller(gw, session, TOKENS["bob"])
        self.carol = Caller(gw, session, TOKENS["carol"])


@pytest.fixture
async def team(
    gateway_factory: Callable[[str], Awaitable[Gateway]], upstream: Upstream
) -> AsyncIterator[Team]:
    gw = await gateway_factory(config(upstream.base_url))
    async with aiohttp.ClientSession() as session:
        yield Team(gw, session)


V2 = {
    "model": "chat",
    "note": "answer briefly, in the customer's language",
    "messages": [{"role": "system", "content": "You answer briefly for {{product}}."}],
    "params": {"temperature": 0.5},
}


async def _push(caller: Caller, body: dict[str, Any]) -> str:
    status, pushed = await caller.call("POST", "/prompts/support/versions", body)
    assert status == 201, pushed
    return str(pushed["version"])


async def test_diff_of_two_versions_is_a_small_unified_diff(team: Team) -> None:
    assert await _push(team.alice, V2) == "v2"
    status, answer = await team.carol.call("GET", "/prompts/support/diff?from=v1&to=v2")
    assert status == 200, answer
    assert (answer["name"], answer["from"], answer["to"]) == ("support", "v1", "v2")
    assert answer["changed"] == ["params", "messages"]
    diff = answer["diff"].splitlines()
    assert diff[:2] == ["--- support@v1", "+++ support@v2"]
    assert diff[2].startswith("@@ ")
    changes = [line for line in diff[2:] if line[:1] in "+-"]
    assert changes == [
        "-  temperature: 0.2",
        "+  temperature: 0.5",
        "-  You answer for {{product}}.",
        "+  You answer briefly for {{product}}.",
    ]
    assert answer["notes"] == {"v1": "first version", "v2": V2["note"]}


async def test_diff_shows_pinned_targets_against_the_route_and_reads_labels(team: Team) -> None:
    await _push(team.alice, V2)
    pinned = {**V2, "targets": [{"provider": "fake", "model": "mock-pinned"}]}
    assert await _push(team.alice, pinned) == "v3"
    status, _ = await team.bob.call("PUT", "/prompts/support/labels/staging", {"version": "v3"})
    assert status == 200
    status, answer = await team.carol.call("GET", "/prompts/support/diff?from=v2&to=staging")
    assert status == 200, answer
    assert (answer["to"], answer["changed"]) == ("v3", ["targets"])
    changes = [line for line in answer["diff"].splitlines()[2:] if line[:1] in "+-"]
    assert changes == [
        "-targets (route chat):",
        "-  - fake/mock-gpt",
        "-  - fake/mock-spare",
        "+targets (pinned):",
        "+  - fake/mock-pinned",
    ]
    status, same = await team.carol.call("GET", "/prompts/support/diff?from=v1&to=v1")
    assert (status, same["diff"], same["changed"]) == (200, "", [])


async def test_diff_refuses_unknown_versions_and_missing_params(team: Team) -> None:
    status, error = await team.carol.call("GET", "/prompts/support/diff?from=v1&to=v9")
    assert (status, error["error"]["code"]) == (404, "version_not_found")
    status, error = await team.carol.call("GET", "/prompts/nothing/diff?from=v1&to=v1")
    assert (status, error["error"]["code"]) == (404, "prompt_not_found")
    status, error = await team.carol.call("GET", "/prompts/support/diff?from=v1")
    assert (status, error["error"]["param"]) == (400, "to")
    status, error = await team.carol.call("GET", "/prompts/support/diff?to=v1")
    assert (status, error["error"]["param"]) == (400, "from")


async def _story(team: Team) -> dict[str, Any]:
    """v2 approved by bob, labelled production, rolled out in one step (completed), then
    the routing set by hand to v1=10 v2=90 with draft v3 shadowed; a test run recorded."""
    await _push(team.alice, V2)
    language = {
        "model": "chat",
        "note": "in the customer's language",
        "messages": [
            {"role": "system", "content": "You answer for {{product}} in {{language}}."},
        ],
    }
    assert await _push(team.alice, language) == "v3"
    status, _ = await team.bob.call(
        "POST", "/prompts/support/versions/v2/approve", {"note": "read the diff, fine"}
    )
    assert status == 200
    status, _ = await team.bob.call("PUT", "/prompts/support/labels/production", {"version": "v2"})
    assert status == 200
    status, rollout = await team.bob.call(
        "POST", "/prompts/support/rollout", {"version": "v2", "steps": [100]}
    )
    assert status in (200, 201), rollout
    routing = {
        "weights": {"v1": 10, "v2": 90},
        "shadow": {"versions": ["v3"], "sample_rate": 0.25},
        "reason": "keep a tenth on v1 for a day",
    }
    status, current = await team.bob.call("PUT", "/prompts/support/routing", routing)
    assert status == 200, current
    run = HistoryEntry(
        "test_run",
        time.time(),
        "alice",
        "dataset smoke",
        version="v2",
        detail={"dataset": "smoke", "revision": 3, "pass_rate": 1.0, "cases": [1, 2, 3]},
    )
    await team.gw.app[PROMPTS].store.add_history("support", run)
    status, history = await team.carol.call("GET", "/prompts/support/history")
    assert status == 200
    return {"history": history["history"], "current": current}


def _section(text: str, title: str) -> str:
    """The body of `## title`, up to the next `## `."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match is not None, f"no section {title!r} in:\n{text}"
    return match.group(1)


async def test_runbook_has_every_section_with_the_live_values(team: Team) -> None:
    story = await _story(team)
    status, kind, text = await team.carol.text("/prompts/support/runbook")
    assert (status, kind) == (200, "text/markdown")
    assert text.startswith("# Runbook: prompt `support`\n")

    purpose = _section(text, "Purpose and owner")
    assert "Answers customer questions about one product, briefly." in purpose
    assert "**Owner:** Dana Reyes (support team)" in purpose

    variables = _section(text, "Variables")
    assert "| `product` | v1, v2, v3 | all |" in variables
    assert "| `language` | v3 | not v1, v2 |" in variables

    route = _section(text, "Route, targets and prices")
    assert "Route `chat`: failover" in route and "per-try timeout 5 s" in route
    assert "| v1 | 1 (route chat) | fake | openai | mock-gpt | $0.15 | $0.6 |" in route
    assert "| v1 | 2 (route chat) | fake | openai | mock-spare | no price | no price |" in route

    routing = _section(text, "Live routing and labels")
    assert "**Weights:** v1=10 v2=90" in routing
    assert "`production` → v2" in routing
    assert "| v2 | approved | 90% | production |" in routing
    assert "| v3 | draft | 0% |" in routing and "in the customer's language" in routing

    approvals = _section(text, "Approvals")
    assert re.search(r"approved by bob at \S+Z: read the diff, fine", approvals)
    assert "approved by config" in approvals  # v1, from the config file
    assert "approved targets: fake/mock-gpt, fake/mock-spare" in approvals
    assert "v3" not in approvals  # a shadowed draft was never approved to serve

    tests = _section(text, "Test and replay status")
    assert re.search(
        r"v2 by alice — dataset smoke \(dataset=smoke, revision=3, pass_rate=1, cases: 3 items\)",
        tests,
    )
    assert "Replays: none recorded" in tests

    shadow = _section(text, "Shadow and rollout")
    assert "Shadow: v3 at sample rate 0.25" in shadow
    assert "Rollout of **v2**: completed, step 100%" in shadow
    assert "baseline: v1=100" in shadow and "started by bob" in shadow

    metrics = _section(text, "Metrics to watch")
    for query in (
        'sum by (version) (rate(gateway_requests_total{prompt="support",role="primary"}[5m]))',
        'sum by (version) (rate(gateway_requests_total{prompt="support",role="primary",'
        'status=~"5.."}[5m])) / sum by (version) (rate(gateway_requests_total'
        '{prompt="support",role="primary"}[5m]))',
        "histogram_quantile(0.95, sum by (version, le) (rate(gateway_request_duration_seconds_"
        'bucket{prompt="support",role="primary"}[5m])))',
        "histogram_quantile(0.95, sum by (version, le) (rate(gateway_time_to_first_token_"
        'seconds_bucket{prompt="support",role="primary"}[5m])))',
        'sum by (version) (rate(gateway_cost_usd_total{prompt="support",role="primary"}[5m]))'
        " * 3600",
    ):
        assert f"```promql\n{query}\n```" in metrics

    watch = _section(text, "Dashboard panels and alerts")
    assert "set *Prompt* to `support` and *Route* to `chat`" in watch
    for title in _shipped_prompt_panels():
        assert title in watch
    for alert in _shipped_alerts():
        assert f"`{alert}`" in watch
    assert "`GatewayPromptVersionErrorRateAboveBaseline` (per prompt version, warning)" in watch

    _check_rollback(_section(text, "Rollback"), story)

    assert "Long product names get cut at 40 characters." in _section(text, "Known issues")
    assert "Tell #support-oncall" in _section(text, "Runbook notes")

    changes = _section(text, "Last changes")
    rows = [line for line in changes.splitlines() if line.startswith("| 20")]
    assert len(rows) == 10  # the latest ten of more
    for entry, row in zip(story["history"], rows, strict=False):
        assert row.startswith(f"| {entry['at']} | {entry['kind']} |")
        assert f"`{entry['id']}`" in row and f"| {entry['by']} |" in row
    assert "| routing | - | bob | keep a tenth on v1 for a day |" in changes


def _check_rollback(section: str, story: dict[str, Any]) -> None:
    routing_entries = [e for e in story["history"] if e["kind"] in ("routing", "rollout")]
    current, before = routing_entries[0], routing_entries[1]
    assert current["id"] == story["current"]["id"]
    assert before["kind"] == "rollout" and before["after"]["weights"] == {"v1": 0, "v2": 100}
    assert "# undo the last routing change: back to v2=100\ngateway prompts rollback support\n" in (
        section
    )
    assert f"gateway prompts rollback support --to {before['id']}\n" in section
    assert f"-d '{json.dumps({'to': before['id']}, separators=(',', ':'))}'" in section
    assert "# back to before the rollout of v2 (completed): v1=100" in section
    assert "gateway prompts rollback support --to before_rollout\n" in section
    assert (
        'curl -sS -X POST -H "Authorization: Bearer $GATEWAY_ADMIN_TOKEN" '
        "-H 'Content-Type: application/json' -d '{}' "
        '"$GATEWAY_URL/admin/prompts/support/rollback"'
    ) in section


async def test_the_rollback_commands_of_a_runbook_do_what_they_say(team: Team) -> None:
    story = await _story(team)
    before = [e for e in story["history"] if e["kind"] in ("routing", "rollout")][1]
    status, entry = await team.bob.call("POST", "/prompts/support/rollback", {"to": before["id"]})
    assert status == 200 and entry["after"]["weights"] == {"v1": 0, "v2": 100}
    status, entry = await team.bob.call(
        "POST", "/prompts/support/rollback", {"to": "before_rollout"}
    )
    assert status == 200 and entry["after"]["weights"] == {"v1": 100}


async def test_runbook_of_a_prompt_with_nothing_recorded_says_so(team: Team) -> None:
    status, _, text = await team.carol.text("/prompts/bare/runbook")
    assert status == 200
    assert "_No description recorded: set `description` in `[prompts.bare]`" in text
    assert "**Owner:** _no owner recorded_" in text
    assert "None: the templates of the versions in use take no `{{variables}}`." in text
    assert "**Labels:** none" in text
    assert "Test runs: none recorded" in text and "Replays: none recorded" in text
    assert "- Shadow: none" in text and "- Rollout: none recorded" in text
    assert "# nothing to undo: no earlier routing is recorded" in text
    assert "before_rollout" not in text
    assert "None recorded." in _section(text, "Known issues")
    assert "None recorded." in _section(text, "Runbook notes")
    status, error = await team.carol.call("GET", "/prompts/nothing/runbook")
    assert (status, error["error"]["code"]) == (404, "prompt_not_found")


async def test_runbook_queries_use_metric_names_the_gateway_exports(team: Team) -> None:
    _, _, text = await team.carol.text("/prompts/support/runbook")
    queries = re.findall(r"```promql\n(.*?)\n```", text, re.S)
    names = {re.sub(r"_bucket$", "", n) for q in queries for n in re.findall(r"gateway_\w+", q)}
    assert len(names) >= 6
    async with team.alice.session.get(team.gw.url("/metrics")) as r:
        exported = await r.text()
    for name in names:
        assert f"# TYPE {name} " in exported, name


def _shipped_prompt_panels() -> list[str]:
    board = json.loads((ROOT / "deploy/grafana/dashboards/gateway.json").read_text())
    titles = [
        p["title"]
        for p in board["panels"]
        if any("$prompt" in t.get("expr", "") for t in p.get("targets", []))
    ]
    assert "p95 latency by prompt version" in titles
    return titles


def _shipped_alerts() -> list[str]:
    text = (ROOT / "deploy/prometheus/alerts.yml").read_text()
    names = re.findall(r"- alert: (\S+)", text)
    assert "GatewayPromptVersionErrorRateAboveBaseline" in names
    return names
