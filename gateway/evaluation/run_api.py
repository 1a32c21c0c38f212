"""The admin routes of test runs (authors start them, viewers read them):

- `POST /admin/prompts/{name}/versions/{v}/test {dataset, revision?, concurrency?,
  stream?}`: the gateway runs every case of the dataset (its current revision unless
  `revision` is given) on version v, judges them, records the run and answers with it
  when it is over (201). A prompt, version, dataset or revision that does not exist is
  a 404 and no run;
- `GET /admin/prompts/{name}/runs?version=&dataset=&limit=`: run summaries, newest
  first;
- `GET /admin/prompts/{name}/runs/{run}`: one run with every case's outcome.

There is no route to post a result: only the gateway's own runs count."""

from __future__ import annotations

import time
from typing import Annotated, Any

import msgspec
import orjson
from aiohttp import web

from gateway.appkeys import DATASET_RUNS, DATASETS, PROMPTS, RUNTIME
from gateway.decoding import Body, actor, decode
from gateway.errors import Invalid, NotFound
from gateway.evaluation.runner import DEFAULT_CONCURRENCY, MAX_CONCURRENCY, RunPlan, run_dataset
from gateway.prompts.history import HistoryEntry
from gateway.proxy.ingress import read_json
from gateway.store.base import not_found, version_not_found
from gateway.store.dataset_runs import DatasetRun
from gateway.store.datasets import DatasetRevision, dataset_not_found, revision_not_found

BODY_LIMIT = 64 * 1024
RUNS_LISTED = 100


class RunBody(Body, frozen=True, forbid_unknown_fields=True):
    dataset: str
    revision: Annotated[int, msgspec.Meta(ge=1)] | None = None
    concurrency: Annotated[int, msgspec.Meta(ge=1, le=MAX_CONCURRENCY)] = DEFAULT_CONCURRENCY
    stream: bool = False


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


async def _dataset(request: web.Request, name: str, revision: int | None) -> DatasetRevision:
    datasets = request.config_dict[DATASETS]
    found = await datasets.get(name, revision)
    if found is None:
        if revision is None or await datasets.head(name) is None:
            raise dataset_not_found(name)
        raise revision_not_found(name, revision)
    if not found.cases:
        raise Invalid(f"Dataset '{name}' has no cases to run.", code="dataset_empty")
    return found


async def start_run(request: web.Request) -> web.Response:
    name, version = request.match_info["name"], request.match_info["version"]
    body = decode(await read_json(request, BODY_LIMIT), RunBody)
    by = actor(request, body.by)
    holder = request.config_dict[PROMPTS]
    state = await holder.store.get_prompt(name)
    if state is None:
        raise not_found(name)
    if version not in state.versions:
        raise version_not_found(name, version)
    dataset = await _dataset(request, body.dataset, body.revision)
    entry = holder.current.prompts.get(name)
    if entry is None or version not in entry.versions:  # pushed on another replica just now
        await holder.refresh()
    config = request.config_dict[RUNTIME].current.config.prompts.get(name)
    plan = RunPlan(
        prompt=name,
        version=version,
        version_hash=state.versions[version].hash,
        dataset=dataset,
        by=by,
        min_pass_rate=config.min_pass_rate if config is not None else 1.0,
        concurrency=body.concurrency,
        stream=body.stream,
    )
    run = await run_dataset(request.match_info.apps[0], plan)  # the gateway's own app
    await request.config_dict[DATASET_RUNS].add(run)
    await holder.store.add_history(name, _history_entry(run))
    return _json(msgspec.to_builtins(run), status=201)


def _history_entry(run: DatasetRun) -> HistoryEntry:
    return HistoryEntry(
        "test_run",
        time.time(),
        run.by,
        f"dataset {run.dataset} revision {run.dataset_revision}: "
        f"{run.passed}/{run.total} passed, {run.verdict}",
        version=run.version,
        detail={
            "run": run.id,
            "dataset": run.dataset,
            "revision": run.dataset_revision,
            "pass_rate": run.pass_rate,
            "passed": run.verdict == "pass",
        },
    )


async def list_runs(request: web.Request) -> web.Response:
    name, query = request.match_info["name"], request.query
    try:
        limit = max(1, min(int(query.get("limit", str(RUNS_LISTED))), 1000))
    except ValueError:
        raise Invalid("'limit' must be a number.", param="limit") from None
    if await request.config_dict[PROMPTS].store.get_prompt(name) is None:
        raise not_found(name)
    runs = [
        run.to_json()
        for run in await request.config_dict[DATASET_RUNS].summaries(name)
        if query.get("version") in (None, "", run.version)
        and query.get("dataset") in (None, "", run.dataset)
    ]
    return _json({"name": name, "runs": runs[:limit]})


async def show_run(request: web.Request) -> web.Response:
    name, run_id = request.match_info["name"], request.match_info["run"]
    run = await request.config_dict[DATASET_RUNS].get(name, run_id)
    if run is None:
        raise NotFound(f"Prompt '{name}' has no run '{run_id}'.", code="run_not_found")
    return _json(msgspec.to_builtins(run))


def add_run_routes(admin: web.Application) -> None:
    admin.router.add_post("/prompts/{name}/versions/{version}/test", start_run)
    admin.router.add_get("/prompts/{name}/runs", list_runs)
    admin.router.add_get("/prompts/{name}/runs/{run}", show_run)
