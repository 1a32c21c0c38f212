"""`PUT|DELETE /admin/prompts/{name}/labels/{label}`: names for versions that callers
use as `prompt:NAME@LABEL`. A protected label (`production`) needs the approver role;
a label points only at approved versions, except the draft labels (`dev`, `staging`)."""

from __future__ import annotations

from aiohttp import web

from gateway.admin.identity import require
from gateway.admin.prompts import ADMIN_BODY_LIMIT, json_answer, prompts_of, written
from gateway.appkeys import RUNTIME
from gateway.config.control import ChangeControlConfig, valid_label
from gateway.decoding import actor, decode
from gateway.errors import Invalid
from gateway.prompts.bodies import LabelBody
from gateway.proxy.ingress import read_json


def _label(request: web.Request) -> tuple[str, ChangeControlConfig]:
    label = request.match_info["label"]
    if not valid_label(label):
        raise Invalid(
            f"'{label[:40]}' is no label name: lower-case letters, digits, '_' and '-', "
            "starting with a letter, and never like a version (v1, v2, …).",
            code="invalid_label",
        )
    rules = request.config_dict[RUNTIME].current.config.control.change_control
    require(request, "approver" if label in rules.protected_labels else "operator")
    return label, rules


async def set_label(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    label, rules = _label(request)
    body = decode(await read_json(request, ADMIN_BODY_LIMIT), LabelBody)
    allow_draft = label in rules.draft_labels
    entry = await prompts_of(request).store.set_label(
        name, label, body.version, actor(request, body.by), allow_draft
    )
    await written(request)
    return json_answer(entry.to_json())


async def delete_label(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    label, _ = _label(request)
    entry = await prompts_of(request).store.set_label(name, label, None, actor(request), False)
    await written(request)
    return json_answer(entry.to_json())
