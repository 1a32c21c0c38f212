"""The runbook's sections for the person on call: the queries, panels and alerts to
watch, and the exact commands that put the routing back."""

from __future__ import annotations

import shlex

import orjson

from gateway.admin.runbook.facts import RunbookFacts
from gateway.admin.runbook.markdown import code, fenced, weights_text, when
from gateway.admin.runbook.watch import Scope
from gateway.errors import DomainError
from gateway.prompts.history import rollback_target
from gateway.prompts.versions import Routing

WINDOW = "5m"


def queries(prompt: str) -> list[tuple[str, str]]:
    """(what, PromQL) for one prompt's primary traffic, by version (SPEC §7 names)."""
    sel = f'prompt="{prompt}",role="primary"'
    requests = f"rate(gateway_requests_total{{{sel}}}[{WINDOW}])"
    errors = f'rate(gateway_requests_total{{{sel},status=~"5.."}}[{WINDOW}])'

    def p95(metric: str) -> str:
        return (
            "histogram_quantile(0.95, sum by (version, le) "
            f"(rate({metric}_bucket{{{sel}}}[{WINDOW}])))"
        )

    return [
        ("Request rate (requests/s)", f"sum by (version) ({requests})"),
        ("Error ratio (5xx)", f"sum by (version) ({errors}) / sum by (version) ({requests})"),
        ("p95 latency (s)", p95("gateway_request_duration_seconds")),
        ("p95 time to first token (s, streaming)", p95("gateway_time_to_first_token_seconds")),
        (
            "Cost rate (USD/hour)",
            f"sum by (version) (rate(gateway_cost_usd_total{{{sel}}}[{WINDOW}])) * 3600",
        ),
        ("Live weights (%)", f'max by (version) (gateway_prompt_weight{{prompt="{prompt}"}})'),
        (
            "Shadow requests by outcome",
            f'sum by (version, outcome) (rate(gateway_shadow_requests_total{{prompt="{prompt}"}}'
            f"[{WINDOW}]))",
        ),
    ]


def metrics(facts: RunbookFacts) -> list[str]:
    lines = ["## Metrics to watch", ""]
    for what, query in queries(facts.name):
        lines += [f"{what}:", "", *fenced("promql", [query]), ""]
    return lines[:-1]


def dashboard_and_alerts(facts: RunbookFacts) -> list[str]:
    watch = facts.watch
    lines = ["## Dashboard panels and alerts", ""]
    if not watch.dashboard:
        return [*lines, "The shipped dashboard and alert rules (deploy/) were not found."]
    routes = ", ".join(code(r) for r in facts.routes()) or "-"
    lines.append(
        f"Dashboard **{watch.dashboard}**: set *Prompt* to {code(facts.name)} and *Route* to "
        f"{routes}."
    )
    panel_scopes: tuple[tuple[Scope, str], ...] = (
        ("prompt", "Prompt panels"),
        ("route", "Route panels"),
        ("target", "Target panels (its providers and models)"),
    )
    for scope, title in panel_scopes:
        rows: dict[str, list[str]] = {}
        for panel in watch.panels_of(scope):
            rows.setdefault(panel.row or "-", []).append(panel.title)
        if rows:
            lines += ["", f"{title}:"]
            lines += [f"- {row}: {'; '.join(titles)}" for row, titles in rows.items()]
    lines += ["", "Alert rules:"]
    alert_scopes: tuple[tuple[Scope, str], ...] = (
        ("prompt", "per prompt version"),
        ("route", "per route"),
        ("target", "per target"),
        ("gateway", "gateway-wide"),
    )
    for scope, about in alert_scopes:
        for rule in watch.alerts_of(scope):
            severity = f", {rule.severity}" if rule.severity else ""
            lines.append(f"- {code(rule.name)} ({about}{severity})")
    if not watch.alerts:
        lines.append("- none found")
    return lines


def rollback(facts: RunbookFacts) -> list[str]:
    name = facts.name
    lines = [
        "## Rollback",
        "",
        f"With `GATEWAY_URL={facts.admin_url}` and `GATEWAY_ADMIN_TOKEN` (operator role) set:",
        "",
    ]
    commands: list[str] = []
    undo = _undo(facts)
    if undo is None:
        commands.append("# nothing to undo: no earlier routing is recorded")
    else:
        commands += [f"# undo the last routing change: back to {undo}", _cli(name)]
        commands += [_curl(name, {}), ""]
    entries = facts.routing_entries()
    if len(entries) >= 2:
        earlier = entries[1]
        after = earlier.routing_after or Routing({})
        commands.append(
            f"# back to the routing before the current one ({earlier.kind} at "
            f"{when(earlier.at)}): {_routing(after)}"
        )
        commands += [_cli(name, "--to", earlier.id), _curl(name, {"to": earlier.id}), ""]
    commands += _rollout_commands(facts)
    lines += fenced("sh", commands[:-1] if commands and commands[-1] == "" else commands)
    lines += [
        "",
        f"Any entry of `gateway prompts history {name}` works with `--to`: the routing "
        "as it was right after it.",
    ]
    return lines


def _rollout_commands(facts: RunbookFacts) -> list[str]:
    rollout, name = facts.rollout, facts.name
    if rollout is None:
        return []
    if rollout.active:
        return [
            f"# the rollout of {rollout.version} is {rollout.state}: abort it, which restores "
            f"its baseline {weights_text(rollout.baseline)}",
            f"gateway rollout abort {shlex.quote(name)}",
            f'curl -sS -X DELETE -H "Authorization: Bearer $GATEWAY_ADMIN_TOKEN" '
            f'"$GATEWAY_URL/admin/prompts/{name}/rollout"',
        ]
    return [
        f"# back to before the rollout of {rollout.version} ({rollout.state}): "
        f"{weights_text(rollout.baseline)}",
        _cli(name, "--to", "before_rollout"),
        _curl(name, {"to": "before_rollout"}),
    ]


def _undo(facts: RunbookFacts) -> str | None:
    """What a plain rollback would restore, as the gateway will compute it."""
    try:
        routing, _, _ = rollback_target(facts.name, facts.history, None)
    except DomainError:
        return None
    return _routing(routing)


def _routing(routing: Routing) -> str:
    text = weights_text({v: w for v, w in routing.weights.items() if w > 0})
    if routing.shadow.versions and routing.shadow.sample_rate > 0:
        text += f", shadow {','.join(routing.shadow.versions)} at {routing.shadow.sample_rate:g}"
    return text


def _cli(name: str, *args: str) -> str:
    return " ".join(["gateway", "prompts", "rollback", shlex.quote(name), *args])


def _curl(name: str, body: dict[str, str]) -> str:
    data = shlex.quote(orjson.dumps(body).decode())
    return (
        f'curl -sS -X POST -H "Authorization: Bearer $GATEWAY_ADMIN_TOKEN" '
        f"-H 'Content-Type: application/json' -d {data} "
        f'"$GATEWAY_URL/admin/prompts/{name}/rollback"'
    )
