"""The admin routes of capture, and what the prompt routes ask of evaluation:

- `GET /admin/captures?prompt=&route=&label=&feedback=&since=24h&limit=100`: captured
  requests, newest first (`since`: a duration like `90s`, `30m`, `24h`, `7d`, or
  seconds), each with its labels and feedback (gateway.evaluation.capture_annotations);
- `GET /admin/captures/{request_id}`: one captured request;
- `check_approvable`: the `require_suite` gate on approval (gateway.evaluation.suite_gate);
- `annotate_prompt`: each version's latest test run in the prompt's JSON, as `test_run`.

Datasets and test runs have their own routes (gateway.evaluation.dataset_api)."""

from __future__ import annotations

import re
import time
from typing import Any

import orjson
from aiohttp import web

from gateway.appkeys import CAPTURE, DATASET_RUNS, DATASETS, PROMPTS, RUNTIME
from gateway.errors import ApiError, Conflict
from gateway.evaluation.capture_annotations import annotate, capture_filter
from gateway.evaluation.suite_gate import gate_refusal

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
    keep = await capture_filter(request, query, since)
    captures = await request.config_dict[CAPTURE].log.query(
        query.get("prompt") or None, since, limit, query.get("route") or None, keep
    )
    captures = await annotate(request, captures)
    return _json({"captures": captures, "count": len(captures)})


async def show_capture(request: web.Request) -> web.Response:
    request_id = request.match_info["request_id"]
    record = await request.config_dict[CAPTURE].log.get(request_id)
    if record is None:
        raise ApiError(404, f"No captured request '{request_id}'.", code="capture_not_found")
    (record,) = await annotate(request, [record])
    return _json(record)


async def check_approvable(request: web.Request, name: str, version: str) -> None:
    """409 `suite_required` unless the prompt requires no dataset run (`require_suite`),
    the version is approved already, or the gateway's latest run of that dataset, at
    its current revision, on this version passed at `min_pass_rate`."""
    prompt = request.config_dict[RUNTIME].current.config.prompts.get(name)
    if prompt is None or not prompt.require_suite:
        return
    state = await request.config_dict[PROMPTS].store.get_prompt(name)
    if state is None or version not in state.versions:
        return  # the store's own 404 follows
    if state.versions[version].status == "approved":
        return
    head = await request.config_dict[DATASETS].head(prompt.require_suite)
    runs = await request.config_dict[DATASET_RUNS].summaries(name)
    refusal = gate_refusal(
        runs,
        name,
        version,
        state.versions[version].hash,
        prompt.require_suite,
        head.revision if head is not None else None,
        prompt.min_pass_rate,
    )
    if refusal is not None:
        raise Conflict(refusal, code="suite_required")


async def annotate_prompt(request: web.Request, prompt: dict[str, Any]) -> dict[str, Any]:
    """A prompt's JSON with `test_run` on each version: the summary of its latest run
    (of any dataset), or None."""
    runs = await request.config_dict[DATASET_RUNS].summaries(prompt["name"])
    latest: dict[str, dict[str, Any]] = {}
    for run in runs:  # newest first
        latest.setdefault(run.version, run.to_json())
    for v in prompt.get("versions") or []:
        v["test_run"] = latest.get(v["version"])
    return prompt


def add_evaluation_routes(admin: web.Application) -> None:
    admin.router.add_get("/captures", list_captures)
    admin.router.add_get("/captures/{request_id}", show_capture)
