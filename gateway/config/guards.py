"""`[guards.NAME]`: checks on an answer and what a failure does; `[review]`: how long a
review item waits and who is told of a decision. Types and their validation, like
gateway.config.loader's. Routes and prompts name their guards with `guards = [...]`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from gateway.config.source import Secret, Table, plain

OnFail = Literal["retry", "fallback", "block", "flag", "hold"]
ON_FAIL: tuple[str, ...] = ("retry", "fallback", "block", "flag", "hold")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class Webhook:
    """POSTed `{"answer", "guard", "route", "prompt", "version"}`; answers `{"pass": bool,
    "reason"?}`. `on_error`: what a timeout or a bad answer counts as."""

    url: Secret  # from config only; may carry a token, so never shown
    timeout_s: float = 2.0
    on_error: Literal["pass", "fail"] = "fail"


@dataclass(frozen=True)
class GuardConfig:
    name: str
    on_fail: OnFail = "block"
    retries: int = 1  # on_fail = "retry": further attempts on the same target
    json_schema: Any = None  # a draft 2020-12 schema the answer (as JSON) must match
    regex_deny: tuple[str, ...] = ()  # checked as compiled at load (re caches them)
    regex_require: tuple[str, ...] = ()
    max_chars: int = 0  # 0: no limit
    webhook: Webhook | None = None


@dataclass(frozen=True)
class ReviewConfig:
    timeout_s: float = 0.0  # 0: items wait until somebody decides
    on_timeout: Literal["reject", "release"] = "reject"
    callback_url: Secret = field(default_factory=lambda: Secret(""))
    callback_timeout_s: float = 5.0
    sweep_interval_s: float = 1.0  # how often a replica looks for items past their time


def guards_section(t: Table) -> dict[str, GuardConfig]:
    guards: dict[str, GuardConfig] = {}
    for name in t.data:
        t.seen.add(name)
        g = t.table(name)
        if not _NAME.match(name):
            raise g.loader.error(g.path, "a guard name is letters, digits, '.', '_' and '-'")
        on_fail = g.text("on_fail", "block")
        if on_fail not in ON_FAIL:
            raise g.loader.error(g.key("on_fail"), f"must be one of {', '.join(ON_FAIL)}")
        guard = GuardConfig(
            name=name,
            on_fail=on_fail,  # type: ignore[arg-type]
            retries=g.integer("retries", 1, minimum=1),
            json_schema=_schema(g),
            regex_deny=_patterns(g, "regex_deny"),
            regex_require=_patterns(g, "regex_require"),
            max_chars=g.integer("max_chars", 0),
            webhook=_webhook(g),
        )
        checks = (guard.json_schema, guard.regex_deny, guard.regex_require, guard.max_chars)
        if guard.json_schema is None and not any(checks[1:]) and guard.webhook is None:
            raise g.loader.error(
                g.path,
                "a guard needs a check: json_schema, regex_deny, regex_require, max_chars "
                "or webhook",
            )
        g.done()
        guards[name] = guard
    return guards


def _schema(g: Table) -> Any:
    raw = g.raw("json_schema", None)
    if raw is None:
        return None
    schema = plain(raw)
    if not isinstance(schema, (dict, bool)):
        raise g.loader.error(g.key("json_schema"), "must be a table (a JSON Schema)")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise g.loader.error(g.key("json_schema"), f"not a 2020-12 schema: {exc.message}") from None
    return schema


def _patterns(g: Table, name: str) -> tuple[str, ...]:
    found = []
    for i, raw in enumerate(g.array(name, [])):
        if not isinstance(raw, str):
            raise g.loader.error(f"{g.key(name)}[{i}]", "must be a string (a regular expression)")
        try:
            re.compile(raw)
        except re.error as exc:
            raise g.loader.error(f"{g.key(name)}[{i}]", f"bad regular expression: {exc}") from None
        found.append(raw)
    return tuple(found)


def _webhook(g: Table) -> Webhook | None:
    if g.raw("webhook", None) is None:
        return None
    w = g.table("webhook")
    url = w.text("url")
    if not url.startswith(("http://", "https://")):
        raise w.loader.error(w.key("url"), "must be an http:// or https:// URL")
    on_error = w.text("on_error", "fail")
    if on_error not in ("pass", "fail"):
        raise w.loader.error(w.key("on_error"), "must be 'pass' or 'fail'")
    hook = Webhook(Secret(url), w.number("timeout_s", 2.0, minimum=0.001), on_error)  # type: ignore[arg-type]
    w.done()
    return hook


def review_section(t: Table) -> ReviewConfig:
    d = ReviewConfig()
    on_timeout = t.text("on_timeout", d.on_timeout)
    if on_timeout not in ("reject", "release"):
        raise t.loader.error(t.key("on_timeout"), "must be 'reject' or 'release'")
    callback = t.text("callback_url", "")
    if callback and not callback.startswith(("http://", "https://")):
        raise t.loader.error(t.key("callback_url"), "must be an http:// or https:// URL")
    cfg = ReviewConfig(
        timeout_s=t.number("timeout_s", d.timeout_s),
        on_timeout=on_timeout,  # type: ignore[arg-type]
        callback_url=Secret(callback),
        callback_timeout_s=t.number("callback_timeout_s", d.callback_timeout_s, minimum=0.001),
        sweep_interval_s=t.number("sweep_interval_s", d.sweep_interval_s, minimum=0.05),
    )
    t.done()
    return cfg


def guard_names(t: Table, guards: Mapping[str, GuardConfig]) -> tuple[str, ...]:
    """`guards = ["NAME", ...]` on a route or a prompt: each one defined."""
    names = []
    for i, raw in enumerate(t.array("guards", [])):
        if not isinstance(raw, str) or raw not in guards:
            raise t.loader.error(f"{t.key('guards')}[{i}]", f"unknown guard {raw!r}")
        names.append(raw)
    return tuple(names)
