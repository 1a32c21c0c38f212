"""What changed between two versions of a prompt, as a unified diff of a canonical text
of each: the route, the targets it goes to, its params and one block per message, each
message line by line, so a one-word edit is a one-line hunk."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.prompts.versions import PromptVersion, TargetPin

SECTIONS = ("model", "targets", "params", "messages")


@dataclass(frozen=True)
class Side:
    """A version with the targets it goes to under the current config."""

    version: PromptVersion
    targets: tuple[TargetPin, ...]

    @property
    def pinned(self) -> bool:
        return bool(self.version.content.targets)


def canonical_text(side: Side) -> list[str]:
    """Lines that change only where the version does: keys sorted, messages numbered."""
    content = side.version.content
    where = "pinned" if side.pinned else f"route {content.model}"
    lines = [f"model: {content.model}", f"targets ({where}):"]
    lines += [f"  - {t.label}" for t in side.targets] or ["  (none)"]
    lines.append("params:" if content.params else "params: {}")
    for key in sorted(content.params):
        value = orjson.dumps(content.params[key], option=orjson.OPT_SORT_KEYS).decode()
        lines.append(f"  {key}: {value}")
    for i, message in enumerate(content.messages):
        lines.append(f"messages[{i}] {message.get('role', '?')}:")
        text = message.get("content")
        body = text if isinstance(text, str) else orjson.dumps(text).decode()
        lines += [f"  {line}" for line in body.splitlines()] or ["  "]
        extra = {k: v for k, v in message.items() if k not in ("role", "content")}
        if extra:  # a message field beyond role and content (a name, say)
            lines.append(f"  # {orjson.dumps(extra, option=orjson.OPT_SORT_KEYS).decode()}")
    return lines


def changed_sections(a: Side, b: Side) -> list[str]:
    def parts(side: Side) -> Mapping[str, Any]:
        content = side.version.content
        return {
            "model": content.model,
            "targets": side.targets,
            "params": orjson.dumps(dict(content.params), option=orjson.OPT_SORT_KEYS),
            "messages": orjson.dumps(list(content.messages), option=orjson.OPT_SORT_KEYS),
        }

    pa, pb = parts(a), parts(b)
    return [section for section in SECTIONS if pa[section] != pb[section]]


def unified_diff(name: str, a: Side, b: Side, context: int = 3) -> str:
    lines: Sequence[str] = list(
        difflib.unified_diff(
            canonical_text(a),
            canonical_text(b),
            f"{name}@{a.version.id}",
            f"{name}@{b.version.id}",
            n=context,
            lineterm="",
        )
    )
    return "\n".join(lines) + "\n" if lines else ""


def version_diff(name: str, a: Side, b: Side) -> dict[str, Any]:
    """The admin answer: `{name, from, to, diff, changed}`."""
    return {
        "name": name,
        "from": a.version.id,
        "to": b.version.id,
        "diff": unified_diff(name, a, b),
        "changed": changed_sections(a, b),
        "notes": {a.version.id: a.version.note, b.version.id: b.version.note},
    }
