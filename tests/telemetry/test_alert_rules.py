"""The alert rules against Debian's `promtool`: its unit tests (tests/telemetry/rules/)
pass, every alert is tested firing and quiet, and every alert's `runbook_url` is a page
of docs/runbooks/ that says what it means, what to check and the commands to run."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = sorted((Path(__file__).parent / "rules").glob("*.test.yaml"))
RUNBOOKS = ROOT / "docs" / "runbooks"


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "`promtool` is not installed: it ships in Debian's prometheus package "
            "(apt-get install prometheus; `make services` does it)",
            pytrace=False,
        )
    return path


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    assert RULE_TESTS, "no tests/telemetry/rules/*.test.yaml"
    done = subprocess.run(
        [promtool(), "test", "rules", *map(str, RULE_TESTS)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("SUCCESS") == len(RULE_TESTS), done.stdout


def test_every_alert_is_tested_firing_and_quiet() -> None:
    fired: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        doc = yaml.safe_load(path.read_text())
        assert (path.parent / doc["rule_files"][0]).resolve() == ALERTS
        for case in doc["tests"]:
            for check in case.get("alert_rule_test", []):
                (fired if check["exp_alerts"] else quiet).add(check["alertname"])
                for expected in check["exp_alerts"]:
                    # The rendered annotations are compared too: the runbook among them.
                    url = expected["exp_annotations"]["runbook_url"]
                    assert url == f"docs/runbooks/{check['alertname']}.md"
    names = {rule["alert"] for rule in alert_rules()}
    assert names - fired == set(), "alerts never tested firing"
    assert names - quiet == set(), "alerts never tested quiet"
    assert (fired | quiet) <= names, "tests of alerts that no longer exist"


def test_every_alert_has_its_runbook_page() -> None:
    rules = alert_rules()
    pages = {path.stem for path in RUNBOOKS.glob("*.md")}
    assert pages == {rule["alert"] for rule in rules}, "a runbook without an alert, or back"
    for rule in rules:
        url = rule["annotations"]["runbook_url"]
        assert url == f"docs/runbooks/{rule['alert']}.md", rule["alert"]
        text = (ROOT / url).read_text()
        assert text.startswith(f"# {rule['alert']}\n"), url
        for section in ("## What it means", "## What to check", "## Commands"):
            assert section in text, f"{url}: no {section!r}"
        assert f"Severity: **{rule['labels']['severity']}**" in text, url
        commands = re.findall(r"```(\w+)\n(.*?)```", text, re.S)
        kinds = {kind for kind, _ in commands}
        assert kinds == {"promql", "sh"}, f"{url}: PromQL and shell commands, not {kinds}"
        assert any("gateway " in body or "/admin/" in body for _, body in commands), url


def test_every_runbook_query_is_valid_promql() -> None:
    """Each PromQL block of the runbooks, as a recording rule that promtool checks."""
    queries = []
    for page in sorted(RUNBOOKS.glob("*.md")):
        for block in re.findall(r"```promql\n(.*?)```", page.read_text(), re.S):
            queries += [line for line in block.splitlines() if line.strip()]
    rules = {
        "groups": [
            {
                "name": "runbooks",
                "rules": [{"record": f"runbook:q{i}", "expr": q} for i, q in enumerate(queries)],
            }
        ]
    }
    done = subprocess.run(
        [promtool(), "check", "rules", "/dev/stdin"],
        input=yaml.safe_dump(rules),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
