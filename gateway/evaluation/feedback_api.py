"""`GET /admin/feedback?prompt=&version=&value=&kind=&signal=&since=&limit=`: feedback
as it stands, newest first: the latest of each (request, client key) among the last
`FEEDBACK_EVENTS` given, with its comment (redacted by the capture rules when it was
given, and again by today's), kind, signal, key and time.

Each entry: `{request_id, key, prompt, version, route, provider, model, value, score,
kind, signal, comment, replaced, at}` (`at` ISO 8601 UTC; `replaced`: it took the
place of an earlier feedback by the same key)."""

from __future__ import annotations

import time
from typing import Any

import orjson
from aiohttp import web

from gateway.appkeys import ANNOTATIONS, RUNTIME
from gateway.errors import ApiError
from gateway.evaluation.api import parse_duration
from gateway.evaluation.capture_annotations import VALUES, feedback_json

MAX_FEEDBACK = 10_000


def bad_query(message: str, param: str) -> ApiError:
    return ApiError(400, message, code="invalid_query", param=param)


def since_of(query: Any) -> float | None:
    """`since` (a duration: `90s`, `30m`, `24h`, `7d`) as a unix time, None when absent."""
    if not query.get("since"):
        return None
    try:
        return time.time() - parse_duration(query["since"])
    except ValueError as exc:
        raise bad_query(f"Bad query: {exc}.", "since") from None


def limit_of(query: Any, default: int, most: int) -> int:
    try:
        return max(0, min(int(query.get("limit", default)), most))
    except ValueError:
        raise bad_query("'limit' must be a whole number.", "limit") from None


async def list_feedback(request: web.Request) -> web.Response:
    query = request.query
    since, limit = since_of(query), limit_of(query, 100, MAX_FEEDBACK)
    value = query.get("value") or None
    if value is not None and value not in VALUES:
        raise bad_query("'value' is positive or negative.", "value")
    wanted = {k: query.get(k) or None for k in ("prompt", "version", "kind", "signal")}
    entries = await request.config_dict[ANNOTATIONS].feedback.latest(since)
    redact = request.config_dict[RUNTIME].current.config.capture.redact
    found = []
    for entry in entries:
        fields = {"prompt": entry.prompt, "version": entry.version}
        fields.update(kind=entry.kind, signal=entry.signal or "")
        if any(w is not None and fields[k] != w for k, w in wanted.items()):
            continue
        if value is not None and entry.value != value:
            continue
        found.append(feedback_json(entry, redact))
        if len(found) >= limit:
            break
    body = orjson.dumps({"feedback": found, "count": len(found)})
    return web.Response(body=body, content_type="application/json")


def add_feedback_routes(admin: web.Application) -> None:
    admin.router.add_get("/feedback", list_feedback)
