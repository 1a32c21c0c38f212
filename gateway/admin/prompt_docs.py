"""`GET /admin/prompts/{name}/diff` and `…/runbook`: what changed between two versions,
and the prompt's runbook generated from its live state (gateway.admin.runbook)."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from gateway.admin.prompts import json_answer, prompts_of
from gateway.admin.runbook.document import render_runbook
from gateway.admin.runbook.facts import RunbookFacts
from gateway.admin.runbook.watch import deploy_dirs, load_watch
from gateway.appkeys import ROLLOUTS, RUNTIME
from gateway.config.prompts import resolved_targets
from gateway.errors import Invalid
from gateway.prompts.diff import Side, version_diff
from gateway.prompts.versions import PromptState
from gateway.store.base import not_found, version_not_found

HISTORY_READ = 200  # enough for the last changes and the routing entries before them


def add_docs_routes(admin: web.Application) -> None:
    admin.router.add_get("/prompts/{name}/diff", diff)
    admin.router.add_get("/prompts/{name}/runbook", runbook)


async def _state(request: web.Request) -> PromptState:
    name = request.match_info["name"]
    state = await prompts_of(request).store.get_prompt(name)
    if state is None:
        raise not_found(name)
    return state


def _side(request: web.Request, state: PromptState, param: str) -> Side:
    """The version named by query `param`: a version id, or a label pointing at one."""
    given = request.query.get(param, "")
    if not given:
        raise Invalid(f"'{param}' is required: a version (v1, v2, …) or a label.", param=param)
    version_id = state.labels.get(given, given)
    version = state.versions.get(version_id)
    if version is None:
        raise version_not_found(state.name, given)
    models = request.config_dict[RUNTIME].current.config.models
    return Side(version, resolved_targets(version.content, models))


async def diff(request: web.Request) -> web.Response:
    state = await _state(request)
    older, newer = _side(request, state, "from"), _side(request, state, "to")
    return json_answer(version_diff(state.name, older, newer))


async def runbook(request: web.Request) -> web.Response:
    state = await _state(request)
    config = request.config_dict[RUNTIME].current.config
    facts = RunbookFacts(
        state=state,
        config=config,
        history=await prompts_of(request).store.history(state.name, HISTORY_READ),
        rollout=await request.config_dict[ROLLOUTS].store.load(state.name),
        watch=await asyncio.to_thread(load_watch, deploy_dirs(config.path)),
        admin_url=str(request.url.origin()),
        generated_at=time.time(),
    )
    return web.Response(text=render_runbook(facts), content_type="text/markdown", charset="utf-8")
