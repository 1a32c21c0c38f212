"""The middleware every request passes: its request id, the in-flight gauge, errors in
OpenAI's shape (never a traceback), and a record for the `/v1/` requests that fail
before they are planned (a planned call records itself: see `proxy.pipeline`)."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from gateway.appkeys import INGRESS, METRICS, RUNTIME, TELEMETRY
from gateway.errors import ApiError, DomainError, api_error, error_body
from gateway.proxy.call import trace_context, trace_id_of
from gateway.proxy.ingress import Ingress
from gateway.telemetry.recorder import RequestRecord

log = logging.getLogger("gateway.api")
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_error(error: ApiError) -> web.Response:
    return web.Response(
        status=error.status,
        body=error.body(),
        content_type="application/json",
        headers=error.headers,
    )


@web.middleware
async def gateway_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    app = request.app
    telemetry = app[TELEMETRY]
    given = request.headers.get("X-Request-Id", "")
    request_id = given if given and _SANE_REQUEST_ID.match(given) else telemetry.new_request_id()
    answered: web.StreamResponse
    if not request.path.startswith("/v1/"):
        # Health, metrics and admin: shaped errors, but no request metrics of their own.
        try:
            answered = await handler(request)
        except ConnectionResetError:
            raise
        except Exception as exc:  # CancelledError is no Exception: it goes on up
            answered = error_answer(request, exc)
        if not answered.prepared:
            answered.headers["X-Request-Id"] = request_id
        return answered
    ingress = request[INGRESS] = Ingress(request_id, time.perf_counter())
    tracing = telemetry.tracing
    if tracing is not None:  # tracing on: the request's server span
        route = request.match_info.route.resource
        name = route.canonical if route is not None else request.path
        ingress.span = tracing.server(request.method, name, request.path, request.headers)
    metrics = app[METRICS]
    metrics.in_flight += 1
    status, error = 0, ""
    try:
        answered = await handler(request)
        status = answered.status
    except ConnectionResetError:
        status, error = 499, "client_disconnected"
        raise
    except Exception as exc:
        answered = error_answer(request, exc)
        answered.headers["X-Request-Id"] = request_id
        status = answered.status
    except asyncio.CancelledError:
        status, error = 499, "client_disconnected"  # the client went away
        raise
    finally:
        metrics.in_flight -= 1
        if not ingress.planned:  # refused before it was planned
            _record_unplanned(request, ingress, status, error)
        if ingress.span is not None:
            ingress.span.end(status)
    if not ingress.planned and not answered.prepared:  # a call's answers carry it already
        answered.headers["X-Request-Id"] = request_id
    return answered


def _record_unplanned(request: web.Request, ingress: Ingress, status: int, error: str) -> None:
    record = RequestRecord(
        ingress.request_id,
        request.path,
        key=ingress.key,
        status=status,
        error=error,
        latency_s=ingress.age_s(),
        method=request.method,
        trace_id=_trace_id(request, ingress),
    )
    request.app[TELEMETRY].record(record, request.app[RUNTIME].current.config)


def _trace_id(request: web.Request, ingress: Ingress) -> str:
    if ingress.span is not None:
        return ingress.span.trace_id
    given = trace_context(request.headers)
    return "" if given is None else trace_id_of(given)


def error_answer(request: web.Request, exc: Exception) -> web.Response:
    """An error the handler raised, in OpenAI's shape and never with a traceback."""
    if isinstance(exc, ApiError):
        return json_error(exc)
    if isinstance(exc, DomainError):  # the store's or a feature's: mapped here, once
        return json_error(api_error(exc))
    if isinstance(exc, web.HTTPException):
        message = "Unknown path." if exc.status == 404 else exc.reason
        code = "unknown_url" if exc.status == 404 else None
        return json_error(
            ApiError(exc.status, f"{message} ({request.method} {request.path})", code=code)
        )
    log.exception("unexpected error serving %s %s", request.method, request.path)
    return web.Response(
        status=500,
        content_type="application/json",
        body=error_body("The gateway failed to serve this request.", "api_error", "internal_error"),
    )
