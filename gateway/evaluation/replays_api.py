"""The admin routes of replays the gateway runs and keeps:

- `POST /admin/prompts/{name}/replays {candidate, baseline?, since?, limit?, route?,
  fail_on?, concurrency?}`: replays the prompt's captured requests (newest first, at
  most `limit`, captured within `since`) through the candidate, answers 201 with the
  kept result when done, and writes a `replay` entry to the prompt's history. No
  captured request in the window: 409 `no_captures`, nothing kept;
- `GET /admin/prompts/{name}/replays`: the kept results, newest first, without their
  per-request parts;
- `GET /admin/prompts/{name}/replays/{replay}`: one result, whole."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

from gateway.appkeys import CAPTURE, PROMPTS, REPLAYS
from gateway.decoding import actor, decode
from gateway.errors import Conflict, Invalid, NotFound
from gateway.evaluation.api import parse_duration
from gateway.evaluation.replay_runner import ReplayAsk, run_replay, summary
from gateway.prompts.history import HistoryEntry
from gateway.proxy.ingress import read_json

BODY_LIMIT = 64 * 1024


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _resolve(request: web.Request, name: str, version: str) -> str:
    """`version` (a vN, or a label) as the version the gateway would pin; 404 otherwise."""
    entry = request.config_dict[PROMPTS].current.prompts.get(name)
    if entry is None:
        raise NotFound(f"Unknown prompt '{name}'.", code="prompt_not_found")
    resolved = entry.labels.get(version, version)
    if resolved not in entry.versions:
        raise NotFound(f"Prompt '{name}' has no version '{version}'.", code="version_not_found")
    return resolved


async def start_replay(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    ask = decode(await read_json(request, BODY_LIMIT), ReplayAsk)
    by = actor(request, ask.by)
    candidate = _resolve(request, name, ask.candidate)
    baseline = _resolve(request, name, ask.baseline) if ask.baseline else None
    try:
        since = time.time() - parse_duration(ask.since)
    except ValueError as exc:
        raise Invalid(str(exc), param="since") from None
    captures = await request.config_dict[CAPTURE].log.query(name, since, ask.limit, ask.route)
    captures = [c for c in captures if _chat_request(c)]
    if not captures:
        raise Conflict(
            f"No captured requests of prompt '{name}' in the last {ask.since}"
            + (f" on route '{ask.route}'" if ask.route else "")
            + ": nothing to replay (is [capture] on for it?).",
            code="no_captures",
        )
    root = request.match_info.apps[0]  # the gateway's own app: its pipeline and telemetry
    result = await run_replay(root, name, ask, (candidate, baseline), captures, by)
    await request.config_dict[REPLAYS].add(name, result)
    verdict = result["verdict"]
    await request.config_dict[PROMPTS].store.add_history(
        name,
        HistoryEntry(
            "replay",
            time.time(),
            by,
            f"replay against {baseline or 'production'}: {verdict['result']}",
            version=candidate,
            detail={
                "replay": result["id"],
                "verdict": verdict["result"],
                "failed": verdict["failed"],
                "baseline": baseline,
                "requests": result["counts"]["requests"],
                "candidate_errors": result["counts"]["candidate_errors"],
            },
        ),
    )
    return _json(result, 201)


async def list_replays(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    kept = await request.config_dict[REPLAYS].recent(name)
    return _json({"replays": [summary(r) for r in kept], "count": len(kept)})


async def show_replay(request: web.Request) -> web.Response:
    name, replay_id = request.match_info["name"], request.match_info["replay"]
    result = await request.config_dict[REPLAYS].get(name, replay_id)
    if result is None:
        raise NotFound(f"Prompt '{name}' has no replay '{replay_id}'.", code="replay_not_found")
    return _json(result)


def add_replay_routes(admin: web.Application) -> None:
    admin.router.add_post("/prompts/{name}/replays", start_replay)
    admin.router.add_get("/prompts/{name}/replays", list_replays)
    admin.router.add_get("/prompts/{name}/replays/{replay}", show_replay)


def _chat_request(capture: Mapping[str, Any]) -> bool:
    """A replay sends chat bodies: a legacy completion's capture (a `prompt` param) is
    not one, and neither is a capture without its request."""
    request = capture.get("request")
    return isinstance(request, dict) and "prompt" not in (request.get("params") or {})
