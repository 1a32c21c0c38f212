"""The runbook's sections about the prompt itself: what it is for, what it needs from
callers, where it goes and what that costs, who approved it, how it was tested, and
what changed lately."""

from __future__ import annotations

from gateway.admin.runbook.facts import RunbookFacts
from gateway.admin.runbook.markdown import (
    by_number,
    code,
    detail_text,
    price,
    table,
    weights_text,
    when,
)
from gateway.prompts.versions import template_variables

LAST_CHANGES = 10
RUNS_SHOWN = 3


def purpose(facts: RunbookFacts) -> list[str]:
    docs, name = facts.state.docs, facts.name
    description = docs.get("description") or (
        f"_No description recorded: set `description` in `[prompts.{name}]` or "
        f"`PATCH /admin/prompts/{name}`._"
    )
    owner = docs.get("owner") or "_no owner recorded_"
    return ["## Purpose and owner", "", description, "", f"**Owner:** {owner}"]


def variables(facts: RunbookFacts) -> list[str]:
    versions = facts.in_use()
    users: dict[str, list[str]] = {}
    for version in versions:
        for variable in template_variables(version.content):
            users.setdefault(variable, []).append(version.id)
    lines = ["## Variables", ""]
    if not users:
        return [*lines, "None: the templates of the versions in use take no `{{variables}}`."]
    lines += [
        "Callers send these in `prompt_variables`; a missing one is a 400 `missing_variable`.",
        "",
    ]
    every = {v.id for v in versions}
    rows = []
    for variable, ids in users.items():
        missing = by_number(every - set(ids))
        rows.append(
            (code(variable), ", ".join(ids), "all" if not missing else "not " + ", ".join(missing))
        )
    return lines + table(("variable", "used by", "versions in use"), rows)


def route_and_targets(facts: RunbookFacts) -> list[str]:
    config = facts.config
    lines = ["## Route, targets and prices", ""]
    for alias in facts.routes():
        route = config.models.get(alias)
        if route is None:
            lines.append(f"- Route {code(alias)}: **not in the config any more**")
            continue
        per_try = (
            f"{route.per_try_timeout_s:g} s" if route.per_try_timeout_s else "share of deadline"
        )
        lines.append(
            f"- Route {code(alias)}: {route.strategy}, {route.retries_per_target} retr"
            f"{'y' if route.retries_per_target == 1 else 'ies'} per target, per-try timeout "
            f"{per_try}, request deadline {config.server.request_timeout_s:g} s"
        )
    rows = []
    for version in facts.in_use():
        pinned = "pinned" if version.content.targets else f"route {version.content.model}"
        for i, target in enumerate(facts.targets_of(version)):
            provider = config.providers.get(target.provider)
            prices = config.pricing.get(target.model)
            rows.append(
                (
                    version.id,
                    f"{i + 1} ({pinned})",
                    target.provider,
                    provider.type if provider else "unknown provider",
                    target.model,
                    price(prices.input_per_mtok if prices else None),
                    price(prices.output_per_mtok if prices else None),
                    _timeouts(provider.total_timeout_s, provider.first_token_timeout_s)
                    if provider
                    else "-",
                )
            )
    header = ("version", "order", "provider", "type", "model", "input /Mtok", "output /Mtok")
    lines += ["", *table((*header, "timeouts (total, first token)"), rows)]
    return lines


def _timeouts(total_s: float, first_token_s: float) -> str:
    return f"{total_s:g} s, {first_token_s:g} s"


def routing_and_labels(facts: RunbookFacts) -> list[str]:
    state = facts.state
    lines = ["## Live routing and labels", ""]
    lines.append(f"**Weights:** {weights_text(facts.live_weights)}")
    if state.labels:
        labels = ", ".join(f"{code(label)} → {v}" for label, v in sorted(state.labels.items()))
        lines.append(f"**Labels:** {labels} (callers use `prompt:{facts.name}@LABEL`)")
    else:
        lines.append("**Labels:** none")
    lines += ["", *_versions_table(facts)]
    return lines


def _versions_table(facts: RunbookFacts) -> list[str]:
    weights, labels = facts.live_weights, facts.state.labels
    rows = []
    for version in facts.in_use():
        named = [label for label, v in sorted(labels.items()) if v == version.id]
        rows.append(
            (
                version.id,
                version.status,
                f"{weights.get(version.id, 0)}%",
                ", ".join(named),
                version.hash[:12],
                f"{version.created_by or '-'} at {when(version.created_at)}",
                version.note,
            )
        )
    header = ("version", "status", "weight", "labels", "hash", "pushed", "change note")
    return table(header, rows)


def approvals(facts: RunbookFacts) -> list[str]:
    lines = ["## Approvals", ""]
    relevant = facts.approval_relevant()
    if not relevant:
        return [*lines, "No version is live or labelled."]
    for version in relevant:
        lines.append(f"- **{version.id}** ({version.status})")
        for approval in version.approvals:
            note = f": {approval.note}" if approval.note else ""
            lines.append(f"  - approved by {approval.by} at {when(approval.at)}{note}")
        if not version.approvals:
            lines.append("  - no approvals")
        approved_on = ", ".join(t.label for t in version.approved_targets) or "-"
        now = ", ".join(t.label for t in facts.targets_of(version)) or "-"
        lines.append(f"  - approved targets: {approved_on}")
        if version.approved_targets and approved_on != now:
            lines.append(f"  - **drift:** the config now sends it to {now}")
    return lines


def tests_and_replays(facts: RunbookFacts) -> list[str]:
    lines = ["## Test and replay status", ""]
    for kind, title in (("test_run", "Test runs"), ("replay", "Replays")):
        entries = facts.latest(kind, RUNS_SHOWN)
        if not entries:
            lines.append(f"- {title}: none recorded")
            continue
        lines.append(f"- {title} (latest first):")
        for entry in entries:
            what = f" {entry.version}" if entry.version else ""
            reason = f" — {entry.reason}" if entry.reason else ""
            lines.append(
                f"  - {when(entry.at)}{what} by {entry.by}{reason} ({detail_text(entry.detail)})"
            )
    require = facts.config.prompts.get(facts.name)
    if require is not None and require.require_suite:
        lines.append(
            f"- Approval gate: a passing run of dataset {code(require.require_suite)} "
            f"(min pass rate {require.min_pass_rate:g})"
        )
    return lines


def shadow_and_rollout(facts: RunbookFacts) -> list[str]:
    lines = ["## Shadow and rollout", ""]
    routing = facts.state.routing
    if routing and routing.shadow.versions:
        shadow = routing.shadow
        lines.append(
            f"- Shadow: {', '.join(shadow.versions)} at sample rate {shadow.sample_rate:g} "
            "(mirrored; answers never reach callers)"
        )
    else:
        lines.append("- Shadow: none")
    for alias in facts.routes():
        route = facts.config.models.get(alias)
        if route is not None and route.shadow.targets:
            labels = ", ".join(t.label for t in route.shadow.targets)
            lines.append(
                f"- Route {code(alias)} mirrors to {labels} at {route.shadow.sample_rate:g}"
            )
    rollout = facts.rollout
    if rollout is None:
        return [*lines, "- Rollout: none recorded"]
    lines.append(
        f"- Rollout of **{rollout.version}**: {rollout.state}, step {rollout.step}% "
        f"({rollout.step_index + 1} of {len(rollout.steps)}: {_steps(rollout.steps)}), "
        f"on breach {rollout.on_breach}"
    )
    lines.append(f"  - weights: {weights_text(rollout.weights)}")
    lines.append(f"  - baseline: {weights_text(rollout.baseline)}")
    lines.append(f"  - started by {rollout.started_by or '-'} at {when(rollout.started_at)}")
    if rollout.events:
        last = rollout.events[-1]
        lines.append(f"  - last event: {last.event} at {when(last.at)}: {last.reason or '-'}")
    return lines


def _steps(steps: tuple[int, ...]) -> str:
    return " → ".join(f"{s}%" for s in steps)


def text_section(facts: RunbookFacts, field: str, title: str) -> list[str]:
    text = facts.state.docs.get(field, "").strip()
    return [f"## {title}", "", text or "None recorded."]


def last_changes(facts: RunbookFacts) -> list[str]:
    lines = ["## Last changes", ""]
    entries = list(facts.history[:LAST_CHANGES])
    if not entries:
        return [*lines, "None recorded."]
    rows = [(when(e.at), e.kind, e.version, e.by, e.reason, code(e.id)) for e in entries]
    return lines + table(("time (UTC)", "kind", "version", "by", "reason", "entry"), rows)
