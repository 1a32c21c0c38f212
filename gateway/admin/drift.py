"""`drift` in a prompt's admin JSON: for each version, null, or where it was approved,
where the running config sends it now and since when (SPEC §9)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.appkeys import PROMPTS, RUNTIME
from gateway.config.drift import check_prompt, drifted
from gateway.prompts.versions import PromptState, iso
from gateway.store.base import HISTORY_LIMIT
from gateway.store.drift_report import latest_drift


async def with_drift(request: web.Request, state: PromptState) -> dict[str, Any]:
    """The prompt's JSON with `drift` on every version, from the running config and
    the state just read. `since` is when history recorded this drift (a
    reload or a start writes it); null when none has yet, e.g. for a version that was
    given weight after the reload that moved its route."""
    models = request.config_dict[RUNTIME].current.config.models
    found = {c.version: c for c in drifted(check_prompt(state, models))}
    store = request.config_dict[PROMPTS].store
    history = await store.history(state.name, HISTORY_LIMIT) if found else []
    answer = state.to_json()
    for version in answer["versions"]:
        check = found.get(version.get("version"))
        if check is None:
            version["drift"] = None
            continue
        latest = latest_drift(history, check.version)
        recorded = latest is not None and latest.after == check.now_labels
        version["drift"] = {
            "approved": check.approved_labels,
            "now": check.now_labels,
            "since": iso(latest.at) if latest is not None and recorded else None,
        }
    return answer
