"""The HTTP pieces of the fake upstreams: errors in each wire format, JSON answers,
and a connection dropped or waited on."""

from __future__ import annotations

import asyncio
from typing import Any, Final, Literal

import orjson
from aiohttp import web

from gateway.errors import error_body

Wire = Literal["openai", "anthropic"]

_ANTHROPIC_ERROR_TYPES: Final = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}
SSE_HEADERS: Final = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}


class BadRequest(Exception):
    pass


def error(wire: Wire, status: int, message: str, retry_after: str | None = None) -> web.Response:
    if wire == "anthropic":
        type_ = _ANTHROPIC_ERROR_TYPES.get(status, "api_error")
        body = orjson.dumps({"type": "error", "error": {"type": type_, "message": message}})
    else:
        if status == 429:
            type_ = "rate_limit_error"
        elif status < 500:
            type_ = "invalid_request_error"
        else:
            type_ = "api_error"
        body = error_body(message, type_)
    headers = {"Retry-After": retry_after} if retry_after else None
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


def json_answer(data: Any) -> web.Response:
    return web.Response(body=orjson.dumps(data), content_type="application/json")


def drop_connection(request: web.Request) -> None:
    # The response is then written to a closed transport, which aiohttp treats as a client
    # disconnect: the client sees a broken connection (an incomplete chunked body).
    if request.transport is not None:
        request.transport.close()


async def wait_disconnect(request: web.Request) -> None:
    # aiohttp has no disconnect callback for a handler that is not cancelled: poll.
    while request.transport is not None and not request.transport.is_closing():  # noqa: ASYNC110
        await asyncio.sleep(0.05)
