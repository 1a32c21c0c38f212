"""Regression suites: a JSONL file of cases, each run through a pinned prompt version
and judged by its checks.

One case per line (blank lines and lines starting with `#` are skipped):

    {"name": "refund", "variables": {"product": "Acme"},
     "messages": [{"role": "user", "content": "Can I get a refund?"}],
     "params": {"temperature": 0},
     "checks": {"contains": ["refund"], "not_contains": "sorry", "regex": "\\\\d+ days",
                "equals": "…", "valid_json": true,
                "json_schema": {"type": "object", "required": ["answer"]},
                "max_latency_ms": 2000, "max_cost_usd": 0.001}}

`contains`, `not_contains` and `regex` take a string or a list. `json_schema` is a
JSON Schema (draft 2020-12, every keyword; an unknown keyword is an error when the case
is read: see gateway.evaluation.json_schema). Every case must also be answered (HTTP
200, complete stream). `expected` (the answer production gave, for a case made from a
captured request) is kept for reading, never checked.

The same cases make a dataset in the store (gateway.evaluation.dataset_api); the
gateway runs them (gateway.evaluation.test_runs) and judges each with `judge`."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import msgspec

from gateway.decoding import invalid
from gateway.evaluation.json_schema import BadSchema, check_schema, schema_errors
from gateway.telemetry.recorder import RequestRecord

CHECKS = (
    "contains",
    "not_contains",
    "regex",
    "equals",
    "valid_json",
    "json_schema",
    "max_latency_ms",
    "max_cost_usd",
)


class SuiteError(Exception):
    """A suite file that cannot be used: names the file and line."""


@dataclass(frozen=True)
class Case:
    name: str
    line: int  # in its suite file, or its place in a dataset (from 1)
    variables: Mapping[str, Any] = field(default_factory=dict)
    messages: tuple[Mapping[str, Any], ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)
    checks: Mapping[str, Any] = field(default_factory=dict)
    expected: Any = None
    from_request: str | None = None  # the captured request it was made from

    def body(self) -> dict[str, Any]:
        """The chat request the case makes (the model is the pinned prompt version)."""
        return {
            **self.params,
            "messages": list(self.messages),
            "prompt_variables": dict(self.variables),
        }

    def to_json(self) -> dict[str, Any]:
        """The case as a dataset keeps it: every field, the name filled in."""
        data: dict[str, Any] = {
            "name": self.name,
            "variables": dict(self.variables),
            "messages": list(self.messages),
            "params": dict(self.params),
            "checks": dict(self.checks),
        }
        if self.expected is not None:
            data["expected"] = self.expected
        if self.from_request is not None:
            data["from_request"] = self.from_request
        return data


def load_suite(path: Path) -> list[Case]:
    try:
        lines = (sys.stdin.read() if str(path) == "-" else path.read_text()).splitlines()
    except OSError as exc:
        raise SuiteError(f"cannot read {path}: {exc}") from None
    cases, names = [], set()
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"{path}:{number}"
        try:
            data = json.loads(line)
        except ValueError as exc:
            raise SuiteError(f"{where}: not JSON: {exc}") from None
        case = parse_case(data, where, number)
        if case.name in names:
            raise SuiteError(f"{where}: a second case named {case.name!r}")
        names.add(case.name)
        cases.append(case)
    if not cases:
        raise SuiteError(f"{path}: no cases")
    return cases


Strings = str | list[str]
Number = Annotated[float, msgspec.Meta(ge=0)]


class Checks(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The checks a case may have, as typed as a suite file states them."""

    contains: Strings | None = None
    not_contains: Strings | None = None
    regex: Strings | None = None
    equals: Any = None
    valid_json: Any = None
    json_schema: Any = None
    max_latency_ms: Number | None = None
    max_cost_usd: Number | None = None


class CaseLine(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One line of a suite file."""

    name: Annotated[str, msgspec.Meta(min_length=1)] | None = None
    variables: dict[str, Any] = msgspec.field(default_factory=dict)
    messages: list[Any] = msgspec.field(default_factory=list)
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    checks: dict[str, Any] = msgspec.field(default_factory=dict)
    expected: Any = None
    from_request: str | None = None


_KINDS = {"object": "an object", "array": "a list", "str": "a string"}
_TAKES = {"max_latency_ms": "a number", "max_cost_usd": "a number"}


def parse_case(data: Any, where: str, number: int, unnamed: str = "line") -> Case:
    """One case, checked: `SuiteError` naming `where` and the field otherwise. A case
    without a name is called `{unnamed} {number}`."""
    try:
        line = msgspec.convert(data, CaseLine, strict=True)
    except msgspec.ValidationError as exc:
        raise SuiteError(f"{where}: {_bad_field(exc)}") from None
    try:
        msgspec.convert(line.checks, Checks, strict=True)
    except msgspec.ValidationError as exc:
        raise SuiteError(f"{where}: {_bad_check(exc)}") from None
    for pattern in _strings(line.checks.get("regex", [])):
        try:
            re.compile(pattern)
        except re.error as exc:
            raise SuiteError(f"{where}: bad regex {pattern!r}: {exc}") from None
    if "json_schema" in line.checks:
        try:
            check_schema(line.checks["json_schema"])
        except BadSchema as exc:
            raise SuiteError(f"{where}: check 'json_schema': {exc}") from None
    name = line.name or f"{unnamed} {number}"
    return Case(
        name,
        number,
        line.variables,
        tuple(line.messages),
        line.params,
        line.checks,
        line.expected,
        line.from_request,
    )


def _bad_field(exc: msgspec.ValidationError) -> str:
    """msgspec's account of a bad field of a case, in a suite file's words."""
    field, message = _field(exc)
    if "unknown field" in message:
        return f"unknown fields {field}"
    if not field:
        return "a case is a JSON object"
    kind = message.split("`")[1].removesuffix(" | null") if "Expected `" in message else message
    return f"{field!r} must be {_KINDS.get(kind, kind)}"


def _bad_check(exc: msgspec.ValidationError) -> str:
    field, message = _field(exc)
    if "unknown field" in message:
        return f"unknown check {field!r} (known: {', '.join(CHECKS)})"
    return f"check {field!r} takes {_TAKES.get(field, 'a string or a list of strings')}"


def _field(exc: msgspec.ValidationError) -> tuple[str, str]:
    """The top-level field at fault (`checks` for `checks.regex[1]`), and the message."""
    error = invalid(exc)
    return (error.param or "").split(".")[0].split("[")[0], error.message


def _strings(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else [str(v) for v in value]


def judge(case: Case, answer: RequestRecord) -> list[str]:
    """What failed, in words; empty when the case passed."""
    if answer.status != 200 or answer.error:
        return [f"no answer: HTTP {answer.status}: {answer.error or 'error'}"]
    text = answer.answer or ""
    latency_ms = answer.latency_s * 1000
    checks = case.checks
    failures = []
    for needle in _strings(checks.get("contains", [])):
        if needle not in text:
            failures.append(f"contains {needle!r}: not found")
    for needle in _strings(checks.get("not_contains", [])):
        if needle in text:
            failures.append(f"not_contains {needle!r}: found")
    for pattern in _strings(checks.get("regex", [])):
        if re.search(pattern, text) is None:
            failures.append(f"regex {pattern!r}: no match")
    if "equals" in checks and text != checks["equals"]:
        failures.append(f"equals: got {_short(text)!r}")
    if checks.get("valid_json") or "json_schema" in checks:
        try:
            value = json.loads(text)
        except ValueError:
            failures.append("valid_json: the answer is not JSON")
        else:
            if "json_schema" in checks:
                errors = schema_errors(value, checks["json_schema"])
                failures += [f"json_schema: {e}" for e in errors]
    limit = checks.get("max_latency_ms")
    if limit is not None and latency_ms > float(limit):
        failures.append(f"max_latency_ms {limit}: took {latency_ms:.0f} ms")
    limit = checks.get("max_cost_usd")
    if limit is not None:
        if answer.cost_usd is None:
            failures.append(f"max_cost_usd {limit}: cost unknown (no price for {answer.model})")
        elif answer.cost_usd > float(limit):
            failures.append(f"max_cost_usd {limit}: cost ${answer.cost_usd:.6f}")
    return failures


def _short(text: str, size: int = 60) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"


def run_table(run: Mapping[str, Any]) -> str:
    """A run's JSON (as the gateway recorded it) as a plain-text table, one case a
    line, failures indented below, and the verdict."""
    cases = run.get("cases") or []
    width = max([4, *(len(c["name"]) for c in cases)])
    lines = [f"{'CASE':<{width}}  RESULT  {'LATENCY':>10}  {'COST':>11}  SERVED BY"]
    for c in cases:
        cost = "-" if c.get("cost_usd") is None else f"${c['cost_usd']:.6f}"
        served = f"{c['provider']}/{c['model']}" if c.get("model") else "-"
        lines.append(
            f"{c['name']:<{width}}  {'pass' if c['passed'] else 'FAIL':<6}  "
            f"{c['latency_ms']:>7.0f} ms  {cost:>11}  {served}"
        )
        lines += [f"{'':<{width}}    - {failure}" for failure in c["failures"]]
    lines.append(
        f"{run['passed']}/{run['total']} passed (pass rate {run['pass_rate']:.2f}, "
        f"needs {run['min_pass_rate']:.2f}): {run['verdict']}"
    )
    return "\n".join(lines)


def case_from_capture(record: Mapping[str, Any], name: str) -> dict[str, Any]:
    """A suite line from a captured request: its variables, the client's messages and
    parameters (not the stream settings), and production's answer as `expected`."""
    request = record.get("request") or {}
    params = {
        k: v
        for k, v in (request.get("params") or {}).items()
        if k not in ("stream", "stream_options", "prompt_variables")
    }
    case: dict[str, Any] = {"name": name}
    if request.get("variables"):
        case["variables"] = request["variables"]
    case["messages"] = request.get("messages") or []
    if params:
        case["params"] = params
    case["checks"] = {}
    if record.get("answer") is not None:
        case["expected"] = record["answer"]
    return case
