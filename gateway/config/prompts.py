"""`[prompts.NAME]`: prompts kept in the config file, their documentation and the
gates a version must pass. Types and their validation, like gateway.config.loader's."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.config.guards import GuardConfig, guard_names
from gateway.config.routes import ProviderConfig, RouteConfig, Target
from gateway.config.source import Table, plain
from gateway.prompts.versions import PROMPT_NAME, PromptContent, TargetPin

ROLES = ("system", "user", "assistant", "developer")


@dataclass(frozen=True)
class PromptDocs:
    """What a prompt is for and who answers for it, shown in its runbook."""

    description: str = ""
    owner: str = ""
    known_issues: str = ""
    runbook_notes: str = ""

    def to_json(self) -> dict[str, str]:
        return {
            "description": self.description,
            "owner": self.owner,
            "known_issues": self.known_issues,
            "runbook_notes": self.runbook_notes,
        }


@dataclass(frozen=True)
class PromptConfig:
    name: str
    model: str
    messages: tuple[Mapping[str, Any], ...]
    params: Mapping[str, Any]
    targets: tuple[Target, ...] = ()  # pinned: no route edit changes them
    note: str = ""  # the version's change message
    docs: PromptDocs = PromptDocs()
    require_suite: str = ""  # a dataset: approval needs a passing run of it
    min_pass_rate: float = 1.0
    guards: tuple[str, ...] = ()  # [guards.NAME] checked on every answer of the prompt
    fallback_version: str = ""  # a guard's `fallback` once no target is left: vN, pinned

    def content(self) -> PromptContent:
        pins = tuple(TargetPin(t.provider, t.model) for t in self.targets)
        return PromptContent(self.model, tuple(self.messages), dict(self.params), pins)


def prompts_section(
    t: Table,
    routes: Mapping[str, RouteConfig],
    providers: Mapping[str, ProviderConfig],
    guards: Mapping[str, GuardConfig] | None = None,
) -> dict[str, PromptConfig]:
    prompts: dict[str, PromptConfig] = {}
    for name in t.data:
        t.seen.add(name)
        p = t.table(name)
        if not PROMPT_NAME.match(name):
            raise p.loader.error(p.path, "a prompt name is letters, digits, '.', '_' and '-'")
        model = p.text("model")
        if model not in routes:
            raise p.loader.error(p.key("model"), f"unknown route {model!r}")
        params = plain(p.raw("params", {}))
        if not isinstance(params, dict):
            raise p.loader.error(p.key("params"), "must be a table")
        if "require_passing_suite" in p.data:
            raise p.loader.error(
                p.key("require_passing_suite"),
                'replaced by require_suite = "DATASET": approval needs a passing run the '
                "gateway made of that dataset",
            )
        prompts[name] = PromptConfig(
            name=name,
            model=model,
            messages=_messages(p),
            params=params,
            targets=_pinned(p, providers),
            note=p.text("note", ""),
            docs=PromptDocs(
                description=p.text("description", ""),
                owner=p.text("owner", ""),
                known_issues=p.text("known_issues", ""),
                runbook_notes=p.text("runbook_notes", ""),
            ),
            require_suite=p.text("require_suite", ""),
            min_pass_rate=p.number("min_pass_rate", 1.0),
            guards=guard_names(p, guards or {}),
            fallback_version=p.text("fallback_version", ""),
        )
        if prompts[name].min_pass_rate > 1:
            raise p.loader.error(p.key("min_pass_rate"), "must be at most 1 (a share of cases)")
        p.done()
    return prompts


def _messages(p: Table) -> tuple[dict[str, Any], ...]:
    messages = []
    for i, raw in enumerate(p.array("messages")):
        m = Table(p.loader, raw, f"{p.key('messages')}[{i}]")
        role = m.text("role")
        if role not in ROLES:
            raise m.loader.error(m.key("role"), "must be system, developer, user or assistant")
        messages.append({"role": role, "content": m.text("content")})
        m.done()
    return tuple(messages)


def _pinned(p: Table, providers: Mapping[str, ProviderConfig]) -> tuple[Target, ...]:
    targets = []
    for i, raw in enumerate(p.array("targets", [])):
        x = Table(p.loader, raw, f"{p.key('targets')}[{i}]")
        provider = x.text("provider")
        if provider not in providers:
            raise x.loader.error(x.key("provider"), f"unknown provider {provider!r}")
        targets.append(Target(provider, x.text("model")))
        x.done()
    return tuple(targets)


def resolved_targets(
    content: PromptContent, models: Mapping[str, RouteConfig]
) -> tuple[TargetPin, ...]:
    """Where a version goes under this config: its pinned targets, else its route's."""
    if content.targets:
        return content.targets
    route = models.get(content.model)
    return tuple(TargetPin(t.provider, t.model) for t in route.targets) if route else ()
