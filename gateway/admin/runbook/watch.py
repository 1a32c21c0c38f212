"""The dashboard panels and alert rules shipped in deploy/ (Grafana's dashboard JSON,
Prometheus's rules), read so that a runbook names the ones that exist, by what they
are about: a prompt, a route, a target, or the whole gateway."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson

Scope = Literal["prompt", "route", "target", "gateway"]
DASHBOARD = Path("grafana/dashboards/gateway.json")
ALERTS = Path("prometheus/alerts.yml")
_ALERT = re.compile(r"^\s*-\s*alert:\s*(\S+)\s*$", re.M)
_SEVERITY = re.compile(r"^\s*severity:\s*(\S+)\s*$", re.M)
_TARGET_LABELS = re.compile(r"\bby \((provider, model|provider, model, \w+)")


@dataclass(frozen=True)
class Panel:
    row: str
    title: str
    scope: Scope


@dataclass(frozen=True)
class AlertRule:
    name: str
    severity: str
    scope: Scope


@dataclass(frozen=True)
class Watch:
    dashboard: str  # its title, "" when the file was not found
    panels: tuple[Panel, ...] = ()
    alerts: tuple[AlertRule, ...] = ()
    source: str = ""  # where they were read from

    def panels_of(self, scope: Scope) -> list[Panel]:
        return [p for p in self.panels if p.scope == scope]

    def alerts_of(self, scope: Scope) -> list[AlertRule]:
        return [a for a in self.alerts if a.scope == scope]


NOTHING_SHIPPED = Watch("")


def panels(dashboard: Mapping[str, Any]) -> list[Panel]:
    """Every panel with a query, under the row it sits in (collapsed rows too)."""
    found, row = [], ""
    for panel in _flatten(dashboard.get("panels") or []):
        if panel.get("type") == "row":
            row = str(panel.get("title") or "")
            continue
        exprs = " ".join(str(t.get("expr") or "") for t in panel.get("targets") or [])
        scope = _panel_scope(exprs)
        if exprs and scope is not None:
            found.append(Panel(row, str(panel.get("title") or ""), scope))
    return found


def _flatten(items: Iterable[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    for item in items:
        yield item
        yield from _flatten(item.get("panels") or [])


def _panel_scope(exprs: str) -> Scope | None:
    """From the dashboard variables a panel's queries use."""
    if "$prompt" in exprs:
        return "prompt"
    if "$route" in exprs:
        return "route"
    if _TARGET_LABELS.search(exprs):
        return "target"
    return None  # process-level panels: not for a prompt's runbook


def alert_rules(text: str) -> list[AlertRule]:
    """The `- alert: NAME` rules of a Prometheus rules file, each scoped by the labels
    its expression keeps (read without a YAML parser: the names are all it needs)."""
    marks = list(_ALERT.finditer(text))
    rules = []
    for i, mark in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        block = text[mark.end() : end]
        severity = _SEVERITY.search(block)
        rules.append(
            AlertRule(mark.group(1), severity.group(1) if severity else "", _alert_scope(block))
        )
    return rules


def _alert_scope(block: str) -> Scope:
    expr = block.split("labels:", 1)[0]
    if re.search(r"\bprompt\b", expr):
        return "prompt"
    if re.search(r"\broute\b", expr):
        return "route"
    if re.search(r"\bprovider\b", expr):
        return "target"
    return "gateway"


def deploy_dirs(config_path: str) -> list[Path]:
    """Where deploy/ may be: beside the config file's folder (a checkout, the image's
    /app), the working directory, the source tree this package runs from."""
    source = Path(__file__).resolve().parents[3]  # gateway/admin/runbook/watch.py
    beside = Path(config_path).resolve().parent.parent
    return [beside / "deploy", Path.cwd() / "deploy", source / "deploy"]


def load_watch(candidates: Iterable[Path]) -> Watch:
    """The shipped dashboard and rules from the first folder that has the dashboard;
    `NOTHING_SHIPPED` when none has (an install without deploy/)."""
    for folder in candidates:
        board = folder / DASHBOARD
        if not board.is_file():
            continue
        try:
            dashboard = orjson.loads(board.read_bytes())
            rules = (folder / ALERTS).read_text() if (folder / ALERTS).is_file() else ""
        except (OSError, orjson.JSONDecodeError):
            continue
        return Watch(
            str(dashboard.get("title") or "gateway"),
            tuple(panels(dashboard)),
            tuple(alert_rules(rules)),
            str(folder),
        )
    return NOTHING_SHIPPED
