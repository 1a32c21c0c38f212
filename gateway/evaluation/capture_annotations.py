"""What the captures API adds to each captured request: its labels and its feedback
(`?label=` and `?feedback=` filter by them).

A capture in `GET /admin/captures` and `GET /admin/captures/{id}` carries
`labels: [{label, note, by, at}]` (by name) and `feedback: [{key, value, score, kind,
signal, comment, at, …}]` (one per client key, the latest; comments redacted)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from gateway.appkeys import ANNOTATIONS, RUNTIME
from gateway.errors import ApiError
from gateway.evaluation.capture import redact_text
from gateway.prompts.versions import iso
from gateway.store.captures import Keep, Record
from gateway.store.feedback import FeedbackEntry

VALUES = ("positive", "negative")
FEEDBACK_FILTERS = (*VALUES, "any", "none")


def feedback_json(entry: FeedbackEntry, redact: tuple[str, ...]) -> dict[str, Any]:
    return {
        **entry.to_json(),
        "prompt": entry.prompt or None,
        "version": entry.version or None,
        "comment": redact_text(entry.comment, redact),
        "at": iso(entry.at),
    }


async def annotate(request: web.Request, records: list[Record]) -> list[Record]:
    """Each record with its `labels` and `feedback`."""
    annotations = request.config_dict[ANNOTATIONS]
    redact = request.config_dict[RUNTIME].current.config.capture.redact
    ids = [r["request_id"] for r in records]
    labels = await annotations.labels.of_requests(ids)
    feedback = await annotations.feedback.of_requests(ids)
    for record in records:
        rid = record["request_id"]
        record["labels"] = [label.to_json() for label in labels.get(rid, [])]
        record["feedback"] = [feedback_json(e, redact) for e in feedback.get(rid, [])]
    return records


async def capture_filter(
    request: web.Request, query: Mapping[str, str], since: float | None
) -> Keep | None:
    """The records `?label=NAME` and `?feedback=positive|negative|any|none` keep (by
    the latest feedback of each key, among the last 10,000 feedback); None for all."""
    label, feedback = query.get("label") or None, query.get("feedback") or None
    if feedback is not None and feedback not in FEEDBACK_FILTERS:
        raise ApiError(
            400,
            f"'feedback' is one of {', '.join(FEEDBACK_FILTERS)}.",
            code="invalid_query",
            param="feedback",
        )
    if label is None and feedback is None:
        return None
    annotations = request.config_dict[ANNOTATIONS]
    labelled = await annotations.labels.requests_with(label) if label is not None else None
    values: dict[str, set[str]] = {}
    if feedback is not None:
        for entry in await annotations.feedback.latest(since):
            values.setdefault(entry.request_id, set()).add(entry.value)

    def keep(record: Record) -> bool:
        rid = record["request_id"]
        if labelled is not None and rid not in labelled:
            return False
        if feedback is None:
            return True
        if feedback == "none":
            return rid not in values
        return rid in values and (feedback == "any" or feedback in values[rid])

    return keep
