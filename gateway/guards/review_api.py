"""The review queue over HTTP.

Admin (behind the admin identities; reads need `viewer`, decisions `reviewer`):
- `GET /admin/reviews?state=pending&prompt=NAME&limit=100`: items, newest first;
- `GET /admin/reviews/{id}`: one item;
- `POST /admin/reviews/{id}/approve {note, edited_answer?}`, `POST …/reject {note}`:
  the decision, recorded under the authenticated name; 409 once decided.

Client: `GET /v1/reviews/{id}` with the client key that made the request (any other
key gets 404): `pending`, `approved` with the answer (the edited one, if edited) as a
chat completion, or `rejected`. A held answer shows nowhere else before approval."""

from __future__ import annotations

import copy
from typing import Any

import msgspec
import orjson
from aiohttp import web

from gateway.appkeys import REVIEWS, RUNTIME
from gateway.decoding import actor, decode
from gateway.errors import ApiError, Invalid
from gateway.proxy.ingress import authenticate, read_json
from gateway.store.reviews import LIST_LIMIT, STATES, ReviewItem, not_found

BODY_LIMIT = 1024 * 1024


class ApproveBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    note: str = ""
    edited_answer: str | None = None


class RejectBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    note: str = ""


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


async def list_reviews(request: web.Request) -> web.Response:
    query = request.query
    state = query.get("state") or None
    if state is not None and state not in STATES:
        raise Invalid(f"'state' must be one of {', '.join(STATES)}.", param="state")
    try:
        limit = max(0, min(int(query.get("limit", "100")), LIST_LIMIT))
    except ValueError:
        raise Invalid("'limit' must be an integer.", param="limit") from None
    prompt = query.get("prompt") or None
    items = await request.config_dict[REVIEWS].items.query(state, prompt, limit)
    return _json({"object": "list", "data": [i.to_json() for i in items]})


async def show_review(request: web.Request) -> web.Response:
    item_id = request.match_info["id"]
    item = await request.config_dict[REVIEWS].items.get(item_id)
    if item is None:
        raise not_found(item_id)
    return _json(item.to_json())


async def approve_review(request: web.Request) -> web.Response:
    body = decode(await _body(request), ApproveBody)
    item = await request.config_dict[REVIEWS].decide(
        request.match_info["id"], "approved", actor(request), body.note, body.edited_answer
    )
    return _json(item.to_json())


async def reject_review(request: web.Request) -> web.Response:
    body = decode(await _body(request), RejectBody)
    item = await request.config_dict[REVIEWS].decide(
        request.match_info["id"], "rejected", actor(request), body.note
    )
    return _json(item.to_json())


async def _body(request: web.Request) -> Any:
    return await read_json(request, BODY_LIMIT) if request.can_read_body else {}


def add_review_routes(admin: web.Application) -> None:
    admin.router.add_get("/reviews", list_reviews)
    admin.router.add_get("/reviews/{id}", show_review)
    admin.router.add_post("/reviews/{id}/approve", approve_review)
    admin.router.add_post("/reviews/{id}/reject", reject_review)


async def client_review(request: web.Request) -> web.Response:
    """`GET /v1/reviews/{id}`: the client's view of its own held request."""
    runtime = request.app[RUNTIME].current
    key = authenticate(request, runtime)
    item_id = request.match_info["id"]
    item = await request.app[REVIEWS].items.get(item_id)
    if item is None or item.key != (key.name if key is not None else ""):
        raise ApiError(404, f"No review '{item_id[:64]}'.", code="review_not_found")
    return _json(client_view(item))


def client_view(item: ReviewItem) -> dict[str, Any]:
    status = {"pending": "pending", "approved": "approved"}.get(item.state, "rejected")
    out: dict[str, Any] = {"id": item.id, "object": "review", "status": status}
    if status == "approved":
        out["completion"] = delivered(item)
    return out


def delivered(item: ReviewItem) -> dict[str, Any]:
    """The held completion as the client would have had it, with the edited text."""
    completion = copy.deepcopy(item.completion)
    if item.edited_answer is not None:
        choices = completion.get("choices") or [{"index": 0, "finish_reason": "stop"}]
        message = {"role": "assistant", "content": item.edited_answer}
        completion["choices"] = [{**choices[0], "message": message}]
    return completion
