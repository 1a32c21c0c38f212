"""`GET /admin/spend?by=key|team|user&since=&limit=`: the top spenders summed per UTC
day across replicas; `GET /admin/limits`: this replica's view of every limit's window."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import orjson
from aiohttp import web

from gateway.appkeys import LIMITER, PROMPTS
from gateway.errors import ApiError
from gateway.store.spend import BYS, By, days_since, top

_DAYS = re.compile(r"^([0-9]{1,3})d$")


def parse_since(text: str, today: dt.date) -> dt.date:
    """`2026-12-01`, `7d` (the last seven days, today included) or `today`/empty."""
    if not text or text == "today":
        return today
    match = _DAYS.match(text)
    if match is not None and int(match.group(1)) >= 1:
        return today - dt.timedelta(days=int(match.group(1)) - 1)
    try:
        return dt.date.fromisoformat(text[:10])
    except ValueError:
        raise ApiError(
            400,
            "'since' is a date (2026-12-01) or a number of days (7d).",
            param="since",
            code="invalid_value",
        ) from None


async def show_spend(request: web.Request) -> web.Response:
    query = request.query
    by = query.get("by", "key")
    if by not in BYS:
        raise ApiError(400, "'by' is key, team or user.", param="by", code="invalid_value")
    limit_text = query.get("limit", "20")
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= 1000:
        raise ApiError(400, "'limit' is 1 to 1000.", param="limit", code="invalid_value")
    today = dt.datetime.now(dt.UTC).date()
    since = parse_since(query.get("since", ""), today)
    days = days_since(since, today)
    by_: By = by  # checked above
    totals = await request.config_dict[PROMPTS].store.metering().spend.totals(by_, days)
    body = {
        "by": by,
        "since": since.isoformat(),
        "until": today.isoformat(),
        "data": top(totals, by, int(limit_text)),
    }
    return _json(body)


async def show_limits(request: web.Request) -> web.Response:
    limiter = request.config_dict[LIMITER]
    meters = [
        {
            "meter": m.name,
            "window": m.window,
            "limit": m.limit,
            "used": m.used,
            "granted": m.granted,
            "used_total": m.used_total + m.unreported,
            "granted_total": m.granted_total,
            "exhausted": m.exhausted,
        }
        for m in limiter.meters.values()
    ]
    return _json({"store_ok": limiter.store_ok, "meters": meters})


def _json(body: Any) -> web.Response:
    return web.Response(body=orjson.dumps(body), content_type="application/json")


def add_spend_routes(admin: web.Application) -> None:
    admin.router.add_get("/spend", show_spend)
    admin.router.add_get("/limits", show_limits)
