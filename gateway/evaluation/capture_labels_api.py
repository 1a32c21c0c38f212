"""The admin routes of labels on captured requests (reviewers put them on, viewers
read), and a captured request made a dataset case in one call (authors):

- `GET /admin/captures/{id}/labels`: `{request_id, labels: [{label, note, by, at}]}`;
- `POST /admin/captures/{id}/labels {label, note?}`: 201 with the request's labels (200
  when it had the label: its note, by and at are new);
- `DELETE /admin/captures/{id}/labels/{label}`: the labels left; 404 `label_not_found`;
- `POST /admin/captures/{id}/dataset-case {dataset, name?, expect?}`: the captured
  request as a case of `dataset` (made when there is none yet), `expect` its checks
  (a suite's: `contains`, `regex`, `json_schema`, …), with `from_request` naming the
  request; a new revision. 201 `{dataset, revision, case, dataset_created}`.

A label is lowercase letters, digits, `.`, `_`, `:` and `-` (at most 64); a note is
redacted by the capture rules, like everything else kept of a request."""

from __future__ import annotations

import re
from typing import Any

import msgspec
import orjson
from aiohttp import web

from gateway.appkeys import ANNOTATIONS, CAPTURE, DATASETS, RUNTIME
from gateway.decoding import Body, actor, decode
from gateway.errors import Conflict, Invalid, NotFound
from gateway.evaluation.capture import redact_text
from gateway.evaluation.dataset_api import parse_cases
from gateway.evaluation.suites import case_from_capture
from gateway.prompts.versions import PROMPT_NAME
from gateway.proxy.ingress import read_json
from gateway.store.captures import Record

BODY_LIMIT = 256 * 1024
NOTE_LIMIT = 2000
LABEL = re.compile(r"^[a-z0-9][a-z0-9._:-]{0,63}$")
SAVE_ATTEMPTS = 5  # another writer changed the dataset in between: read again


class LabelBody(Body, frozen=True, forbid_unknown_fields=True):
    label: str
    note: str = ""


class CaseBody(Body, frozen=True, forbid_unknown_fields=True):
    dataset: str
    name: str | None = None
    expect: dict[str, Any] = msgspec.field(default_factory=dict)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


async def _captured(request: web.Request, request_id: str) -> Record:
    record = await request.config_dict[CAPTURE].log.get(request_id)
    if record is None:
        raise NotFound(f"No captured request '{request_id}'.", code="capture_not_found")
    return record


async def _labels_answer(request: web.Request, request_id: str, status: int = 200) -> web.Response:
    found = await request.config_dict[ANNOTATIONS].labels.of_requests([request_id])
    labels = [label.to_json() for label in found.get(request_id, [])]
    return _json({"request_id": request_id, "labels": labels}, status)


async def show_labels(request: web.Request) -> web.Response:
    request_id = request.match_info["request_id"]
    await _captured(request, request_id)
    return await _labels_answer(request, request_id)


async def put_label(request: web.Request) -> web.Response:
    request_id = request.match_info["request_id"]
    body = decode(await read_json(request, BODY_LIMIT), LabelBody)
    by = actor(request, body.by)
    if not LABEL.match(body.label):
        raise Invalid(
            "A label is lowercase letters, digits, '.', '_', ':' and '-' (at most 64).",
            param="label",
            code="invalid_label",
        )
    if len(body.note) > NOTE_LIMIT:
        raise Invalid(f"A note is at most {NOTE_LIMIT} characters.", param="note")
    await _captured(request, request_id)
    redact = request.config_dict[RUNTIME].current.config.capture.redact
    labels = request.config_dict[ANNOTATIONS].labels
    new = await labels.put(request_id, body.label, redact_text(body.note, redact), by)
    return await _labels_answer(request, request_id, 201 if new else 200)


async def delete_label(request: web.Request) -> web.Response:
    request_id, label = request.match_info["request_id"], request.match_info["label"]
    actor(request)
    if not await request.config_dict[ANNOTATIONS].labels.remove(request_id, label):
        raise NotFound(
            f"Captured request '{request_id}' has no label '{label[:64]}'.",
            code="label_not_found",
        )
    return await _labels_answer(request, request_id)


async def dataset_case(request: web.Request) -> web.Response:
    request_id = request.match_info["request_id"]
    body = decode(await read_json(request, BODY_LIMIT), CaseBody)
    by = actor(request, body.by)
    if not PROMPT_NAME.match(body.dataset):
        raise Invalid(
            "A dataset name is letters, digits, '.', '_' and '-' (at most 100).",
            param="dataset",
            code="invalid_name",
        )
    case = case_from_capture(await _captured(request, request_id), body.name or f"req-{request_id}")
    case["checks"] = body.expect
    case["from_request"] = request_id
    datasets = request.config_dict[DATASETS]
    for attempt in range(SAVE_ATTEMPTS):
        current = await datasets.get(body.dataset)
        taken = [c["name"] for c in current.cases] if current is not None else []
        (made,) = parse_cases([case], len(taken) + 1, taken)
        try:
            if current is None:
                description = "cases made from captured requests"
                revision = await datasets.save(body.dataset, [made], by, 0, description)
            else:
                revision = await datasets.save(
                    body.dataset, [*current.cases, made], by, current.revision
                )
        except Conflict as exc:
            again = exc.code in ("concurrent_change", "dataset_exists")
            if again and attempt < SAVE_ATTEMPTS - 1:
                continue
            raise
        answer = {
            "dataset": body.dataset,
            "revision": revision.revision,
            "case": made,
            "dataset_created": current is None,
        }
        return _json(answer, 201)
    raise AssertionError("unreachable: the last attempt returns or raises")


def add_capture_label_routes(admin: web.Application) -> None:
    admin.router.add_get("/captures/{request_id}/labels", show_labels)
    admin.router.add_post("/captures/{request_id}/labels", put_label)
    admin.router.add_delete("/captures/{request_id}/labels/{label}", delete_label)
    admin.router.add_post("/captures/{request_id}/dataset-case", dataset_case)
