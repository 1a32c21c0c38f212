"""The admin routes of datasets (viewers read, authors write):

- `GET /admin/datasets`: every dataset's current revision (name, revision, case count,
  who changed it last and when);
- `POST /admin/datasets {name, description?, cases?}`: a new dataset, revision 1;
- `GET /admin/datasets/{name}[?revision=N]`: a revision with its cases (the current
  one unless N is given); `GET …/cases` the same;
- `POST /admin/datasets/{name}/cases {cases: [...]}` or `{from_request: ID, name?,
  checks?}`: cases added, a new revision; `from_request` makes the case from a
  captured request (its variables, messages and parameters; production's answer as
  `expected`);
- `PUT /admin/datasets/{name}/cases {cases: [...]}`: every case replaced, a new
  revision, unless the cases are the same as now (`changed: false`).

A case is a suite file's line (gateway.evaluation.suites), checked the same way; a bad
one is a 400 naming the case and the field. Test runs are in gateway.evaluation.run_api."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec
import orjson
from aiohttp import web

from gateway.appkeys import CAPTURE, DATASETS
from gateway.decoding import Body, actor, decode
from gateway.errors import Conflict, Invalid, NotFound
from gateway.evaluation import run_api
from gateway.evaluation.runner import MAX_CASES
from gateway.evaluation.suites import SuiteError, case_from_capture, parse_case
from gateway.prompts.versions import PROMPT_NAME
from gateway.proxy.ingress import read_json
from gateway.store.datasets import (
    Case,
    DatasetHead,
    DatasetRevision,
    dataset_not_found,
    revision_not_found,
)

BODY_LIMIT = 16 * 1024 * 1024  # up to MAX_CASES cases
SAVE_ATTEMPTS = 5  # another writer changed the dataset in between: read again


class NewDataset(Body, frozen=True, forbid_unknown_fields=True):
    name: str
    description: str = ""
    cases: list[Any] = msgspec.field(default_factory=list)


class NewCases(Body, frozen=True, forbid_unknown_fields=True):
    """`cases`, or one case made `from_request` (a captured request's id)."""

    cases: list[Any] | None = None
    from_request: str | None = None
    name: str | None = None
    checks: dict[str, Any] = msgspec.field(default_factory=dict)


class AllCases(Body, frozen=True, forbid_unknown_fields=True):
    cases: list[Any]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def parse_cases(raw: Sequence[Any], first: int = 1, taken: Sequence[str] = ()) -> list[Case]:
    """The cases as a dataset keeps them, checked; `first` numbers unnamed ones and
    `taken` are the names already in the dataset."""
    cases, names = [], set(taken)
    for i, data in enumerate(raw):
        named = data.get("name") if isinstance(data, dict) else None
        where = f"cases[{i}]" + (f" ({named!r})" if isinstance(named, str) else "")
        try:
            case = parse_case(data, where, first + i, unnamed="case")
        except SuiteError as exc:
            raise Invalid(str(exc), param=f"cases[{i}]", code="invalid_case") from None
        if case.name in names:
            raise Invalid(
                f"{where}: the dataset has a case named {case.name!r} already.",
                param=f"cases[{i}].name",
                code="duplicate_case",
            )
        names.add(case.name)
        cases.append(case.to_json())
    if len(cases) + len(taken) > MAX_CASES:
        raise Invalid(f"A dataset holds at most {MAX_CASES} cases.", code="too_many_cases")
    return cases


def _answer(revision: DatasetRevision, head: DatasetHead, **extra: Any) -> dict[str, Any]:
    return {
        **revision.to_json(),
        "current_revision": head.revision,
        "created_at": head.to_json()["created_at"],
        "created_by": head.created_by,
        **extra,
    }


async def list_datasets(request: web.Request) -> web.Response:
    heads = await request.config_dict[DATASETS].heads()
    return _json({"datasets": [h.to_json() for h in heads]})


async def create_dataset(request: web.Request) -> web.Response:
    body = decode(await read_json(request, BODY_LIMIT), NewDataset)
    if not PROMPT_NAME.match(body.name):
        raise Invalid(
            "A dataset name is letters, digits, '.', '_' and '-' (at most 100).",
            param="name",
            code="invalid_name",
        )
    by = actor(request, body.by)
    datasets = request.config_dict[DATASETS]
    revision = await datasets.save(body.name, parse_cases(body.cases), by, 0, body.description)
    head = await datasets.head(body.name)
    assert head is not None  # just written
    return _json(_answer(revision, head, changed=True), status=201)


async def show_dataset(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    wanted = request.query.get("revision")
    if wanted is not None and not wanted.isdigit():
        raise Invalid("'revision' must be a number.", param="revision")
    datasets = request.config_dict[DATASETS]
    head = await datasets.head(name)
    if head is None:
        raise dataset_not_found(name)
    revision = await datasets.get(name, int(wanted) if wanted else head.revision)
    if revision is None:
        raise revision_not_found(name, int(wanted or 0))
    return _json(_answer(revision, head))


Change = Callable[[DatasetRevision], Awaitable[list[Case] | None]]


async def _revise(request: web.Request, name: str, by: str, change: Change) -> web.Response:
    """Apply `change` to the current revision (None from it: nothing to change) and
    save it as the next one, reading again when another writer came first."""
    datasets = request.config_dict[DATASETS]
    for attempt in range(SAVE_ATTEMPTS):
        current = await datasets.get(name)
        if current is None:
            raise dataset_not_found(name)
        cases = await change(current)
        revision = current
        if cases is not None:
            try:
                revision = await datasets.save(name, cases, by, current.revision)
            except Conflict as exc:
                if exc.code == "concurrent_change" and attempt < SAVE_ATTEMPTS - 1:
                    continue
                raise
        head = await datasets.head(name)
        assert head is not None
        return _json(_answer(revision, head, changed=cases is not None))
    raise AssertionError("unreachable: the last attempt returns or raises")


async def add_cases(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    body = decode(await read_json(request, BODY_LIMIT), NewCases)
    by = actor(request, body.by)
    if (body.cases is None) == (body.from_request is None):
        raise Invalid("Give `cases`, or `from_request` with `checks`.", code="invalid_body")
    raw = body.cases if body.cases is not None else [await _captured_case(request, body)]

    async def change(current: DatasetRevision) -> list[Case]:
        taken = [c["name"] for c in current.cases]
        added = parse_cases(raw, len(current.cases) + 1, taken)
        return [*current.cases, *added]

    return await _revise(request, name, by, change)


async def _captured_case(request: web.Request, body: NewCases) -> dict[str, Any]:
    assert body.from_request is not None
    record = await request.config_dict[CAPTURE].log.get(body.from_request)
    if record is None:
        raise NotFound(
            f"No captured request '{body.from_request}' (captured requests are kept "
            "while capture is on, within its retention).",
            code="capture_not_found",
        )
    case = case_from_capture(record, body.name or f"req-{body.from_request}")
    case["checks"] = body.checks
    case["from_request"] = body.from_request
    return case


async def replace_cases(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    body = decode(await read_json(request, BODY_LIMIT), AllCases)
    by = actor(request, body.by)
    cases = parse_cases(body.cases)

    async def change(current: DatasetRevision) -> list[Case] | None:
        return None if list(current.cases) == cases else cases

    return await _revise(request, name, by, change)


def add_dataset_routes(admin: web.Application) -> None:
    """Datasets, and the test runs made of them (gateway.evaluation.run_api)."""
    admin.router.add_get("/datasets", list_datasets)
    admin.router.add_post("/datasets", create_dataset)
    admin.router.add_get("/datasets/{name}", show_dataset)
    admin.router.add_get("/datasets/{name}/cases", show_dataset)
    admin.router.add_post("/datasets/{name}/cases", add_cases)
    admin.router.add_put("/datasets/{name}/cases", replace_cases)
    run_api.add_run_routes(admin)
