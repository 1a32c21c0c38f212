"""The admin routes of capture and regression-suite results:

- `GET /admin/captures?prompt=&route=&since=24h&limit=100`: captured requests, newest
  first (`since`: a duration like `90s`, `30m`, `24h`, `7d`, or seconds);
- `GET /admin/captures/{request_id}`: one captured request;
- `POST /admin/prompts/{name}/versions/{v}/suite-results`: record a suite run on a
  version (shown in the version's JSON as `suite`); with the prompt's
  `require_passing_suite`, approval needs the version's latest run to have passed."""

from __future__ import annotations

import re
import time
from typing import Any

import orjson
from aiohttp import web

from gateway.appkeys import CAPTURE, PROMPTS, RUNTIME, SUITE_RESULTS
from gateway.errors import ApiError, Conflict

BODY_LIMIT = 1024 * 1024
MAX_CAPTURES = 10_000  # per admin query
_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """`90s`, `30m`, `24h`, `7d` or a number of seconds; ValueError otherwise."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"not a duration: {text!r} (like 90s, 30m, 24h, 7d)")
    return float(match.group(1)) * _UNITS[match.group(2)]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


async def list_captures(request: web.Request) -> web.Response:
    query = request.query
    try:
        since = time.time() - parse_duration(query["since"]) if query.get("since") else None
        limit = int(query.get("limit", "100"))
    except ValueError as exc:
        raise ApiError(400, f"Bad query: {exc}.", code="invalid_query") from None
    limit = max(0, min(limit, MAX_CAPTURES))
    captures = await request.config_dict[CAPTURE].log.query(
        query.get("prompt") or None, since, limit, query.get("route") or None
    )
    return _json({"captures": captures, "count": len(captures)})


async def show_capture(request: web.Request) -> web.Response:
    request_id = request.match_info["request_id"]
    record = await request.config_dict[CAPTURE].log.get(request_id)
    if record is None:
        raise ApiError(404, f"No captured request '{request_id}'.", code="capture_not_found")
    return _json(record)


async def check_approvable(request: web.Request, name: str, version: str) -> None:
    """409 unless the prompt requires no dataset run (`require_suite`), the version is
    approved already, or the gateway's latest run of that dataset, at its current
    revision, on this version passed at `min_pass_rate`."""
    prompt = request.config_dict[RUNTIME].current.config.prompts.get(name)
    if prompt is None or not prompt.require_suite:
        return
    state = await request.config_dict[PROMPTS].store.get_prompt(name)
    if state is None or version not in state.versions:
        return  # the store's own 404 follows
    if state.versions[version].status == "approved":
        return
    raise Conflict(
        f"Prompt '{name}' requires a passing run of dataset '{prompt.require_suite}' "
        f"before approval; {version} has none. Run `gateway prompts test "
        f"{name}@{version} --dataset {prompt.require_suite}`.",
        code="suite_required",
    )


async def annotate_prompt(request: web.Request, prompt: dict[str, Any]) -> dict[str, Any]:
    return await request.config_dict[SUITE_RESULTS].annotate(prompt)


def add_evaluation_routes(admin: web.Application) -> None:
    admin.router.add_get("/captures", list_captures)
    admin.router.add_get("/captures/{request_id}", show_capture)
