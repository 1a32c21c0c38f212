"""A guard's checks on one answer's text, cheapest first; the webhook last, as it is a
call out. Each check run is one `Verdict`, counted in
`gateway_guard_results_total{guard,prompt,version,result}`."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
import orjson

from gateway.config.guards import GuardConfig, Webhook
from gateway.evaluation.json_schema import schema_errors

Result = Literal["pass", "fail", "error"]  # error: the webhook could not say


@dataclass(frozen=True, slots=True)
class Verdict:
    guard: GuardConfig
    result: Result
    reason: str = ""

    @property
    def passed(self) -> bool:
        if self.result == "error":  # only a webhook errs: its on_error decides
            return self.guard.webhook is not None and self.guard.webhook.on_error == "pass"
        return self.result == "pass"

    def to_json(self) -> dict[str, str]:
        out = {"guard": self.guard.name, "result": self.result}
        if self.reason:
            out["reason"] = self.reason
        return out


@dataclass(frozen=True, slots=True)
class Asked:
    """What the webhook is told besides the answer."""

    route: str
    prompt: str
    version: str


async def check(
    guard: GuardConfig, text: str, asked: Asked, session: aiohttp.ClientSession
) -> Verdict:
    reason = local_failure(guard, text)
    if reason:
        return Verdict(guard, "fail", reason)
    if guard.webhook is not None:
        return await _ask_webhook(guard, guard.webhook, text, asked, session)
    return Verdict(guard, "pass")


async def first_failure(
    guards: Sequence[GuardConfig],
    text: str,
    asked: Asked,
    session: aiohttp.ClientSession,
    seen: list[Verdict],
) -> Verdict | None:
    """Each guard in order until one fails (each verdict appended to `seen`)."""
    for guard in guards:
        verdict = await check(guard, text, asked, session)
        seen.append(verdict)
        if not verdict.passed:
            return verdict
    return None


def local_failure(guard: GuardConfig, text: str) -> str:
    """Why `text` fails the guard's own checks; "" when it passes them."""
    if guard.max_chars and len(text) > guard.max_chars:
        return f"{len(text)} characters, more than {guard.max_chars}"
    for pattern in guard.regex_deny:
        if re.search(pattern, text):
            return f"matches denied pattern {pattern!r}"
    for pattern in guard.regex_require:
        if not re.search(pattern, text):
            return f"does not match required pattern {pattern!r}"
    if guard.json_schema is not None:
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            return "not JSON"
        errors = schema_errors(value, guard.json_schema)
        if errors:
            return "schema: " + "; ".join(errors[:3])
    return ""


async def _ask_webhook(
    guard: GuardConfig, hook: Webhook, text: str, asked: Asked, session: aiohttp.ClientSession
) -> Verdict:
    """POST the answer; `{"pass": bool, "reason"?}` back. No URL in any reason: it may
    carry a token."""
    payload = {
        "answer": text,
        "guard": guard.name,
        "route": asked.route,
        "prompt": asked.prompt,
        "version": asked.version,
    }
    try:
        async with asyncio.timeout(hook.timeout_s):
            async with session.post(hook.url.reveal(), data=orjson.dumps(payload)) as response:
                raw = await response.read()
                status = response.status
    except TimeoutError:
        return Verdict(guard, "error", f"webhook: no answer within {hook.timeout_s:g}s")
    except aiohttp.ClientError as exc:
        return Verdict(guard, "error", f"webhook: {type(exc).__name__}")
    if status >= 300:
        return Verdict(guard, "error", f"webhook: status {status}")
    said = _said(raw)
    if said is None:
        return Verdict(guard, "error", 'webhook: the answer is no {"pass": true|false}')
    passed, reason = said
    return Verdict(guard, "pass" if passed else "fail", "" if passed else reason or "webhook")


def _said(raw: bytes) -> tuple[bool, str] | None:
    try:
        data: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict) or type(data.get("pass")) is not bool:
        return None
    reason = data.get("reason")
    return data["pass"], reason[:500] if isinstance(reason, str) else ""
