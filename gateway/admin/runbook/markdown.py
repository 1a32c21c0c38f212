"""The little Markdown a runbook is made of: tables whose cells cannot break them,
fenced blocks, and the same spelling everywhere for weights, times and prices."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from gateway.prompts.versions import iso, version_number


def cell(value: Any) -> str:
    """Text safe in a table cell: one line, pipes escaped."""
    text = "" if value is None else str(value)
    return " ".join(text.split()).replace("|", "\\|") or "-"


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines


def fenced(language: str, lines: Iterable[str]) -> list[str]:
    return [f"```{language}", *lines, "```"]


def code(text: str) -> str:
    return f"`{text}`"


def weights_text(weights: Mapping[str, int] | None) -> str:
    if not weights:
        return "no live weights"
    ordered = sorted(weights.items(), key=lambda item: version_number(item[0]))
    return " ".join(f"{v}={w}" for v, w in ordered)


def when(at: float) -> str:
    return iso(at) if at else "-"


def price(per_mtok: float | None) -> str:
    return "no price" if per_mtok is None else f"${per_mtok:g}"


def by_number(versions: Iterable[str]) -> list[str]:
    return sorted(set(versions), key=version_number)


def detail_text(detail: Mapping[str, Any]) -> str:
    """A history entry's detail in one line: scalars as they are, lists and tables by
    their size (a run's per-case results are not for a runbook)."""
    parts = []
    for key, value in detail.items():
        if isinstance(value, dict | list | tuple):
            parts.append(f"{key}: {len(value)} items")
        elif isinstance(value, float):
            parts.append(f"{key}={value:.4g}")
        else:
            parts.append(f"{key}={value}")
    return ", ".join(parts) or "-"
