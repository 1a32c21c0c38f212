"""One call through the engine: what was asked, where it may go, under which policy.

A `Call` is made once the request is planned and is only read after that (`keep_answer`
and `watchers` are the exception: the observers' `on_start` sets them before the first
attempt). A primary request,
a shadow copy, and the test runs and replays to come are all calls; they differ by
their `Policy`."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway.config.routes import Target
from gateway.providers.base import UpstreamRequest
from gateway.proxy.routing import RoutePlan
from gateway.proxy.runtime import Runtime

if TYPE_CHECKING:  # observers see calls; a call names who watches it
    from gateway.limits.limiter import Ticket
    from gateway.proxy.observers import RequestObserver
    from gateway.telemetry.tracing import CallTrace  # loaded only when tracing is on

SHADOW_HEADER = "X-Gateway-Shadow"


@dataclass(frozen=True, slots=True)
class Policy:
    """How the engine treats a kind of call."""

    role: str  # the `role` label of its metrics and access-log line
    retries: bool  # retry a target as the route says (else one attempt per target)
    # Count toward the targets' health: circuit breakers (a closed circuit is skipped),
    # the route's retry budget, and the provider metrics. A copy of live traffic must not
    # open a circuit that serves the live traffic.
    health: bool
    headers: Mapping[str, str] = field(default_factory=dict)  # added to every upstream request


PRIMARY = Policy("primary", retries=True, health=True)
SHADOW = Policy("shadow", retries=False, health=False, headers={SHADOW_HEADER: "1"})
# The gateway's own runs of a pinned version: retried as production would be, apart
# from live traffic's health, and never captured or counted where live traffic is.
TEST = Policy("test", retries=True, health=False, headers={"X-Gateway-Test": "1"})
REPLAY = Policy("replay", retries=True, health=False, headers={"X-Gateway-Replay": "1"})


@dataclass(slots=True)  # not frozen: made per request, and frozen init is slow
class Call:
    request_id: str
    started: float  # perf_counter() when the request arrived
    path: str
    runtime: Runtime  # read once: the same config from the first attempt to the record
    plan: RoutePlan
    client_body: Mapping[str, Any]  # as the client sent it
    body: Mapping[str, Any]  # as it goes upstream: the prompt's part rendered in
    deadline: float  # event-loop time
    policy: Policy = PRIMARY
    stream: bool = False
    include_usage: bool = False  # the client asked for the usage chunk of a stream
    key: str = ""  # the client key's name
    variables: Mapping[str, Any] = field(default_factory=dict)  # prompt variables
    prompt_messages: Sequence[Any] = ()  # the prompt version's messages, rendered
    prompt_params: Mapping[str, Any] = field(default_factory=dict)  # the version's params
    no_capture: bool = False  # the client said X-Gateway-No-Capture: 1
    primary_request_id: str = ""  # a shadow copy: the request it mirrors
    # The W3C trace context sent upstream: the client's as it came; with tracing on,
    # the current attempt's (set by its span before each attempt).
    trace: dict[str, str] | None = None
    span: CallTrace | None = None  # tracing on: the call's spans
    keep_answer: bool = False  # an observer wants the answer's text
    watchers: list[RequestObserver] = field(default_factory=list)  # on_finish for these
    user: str = ""  # the end user: X-Gateway-User, else the body's `user`
    team: str = ""  # the client key's team
    ticket: Ticket | None = None  # a limited key's: settled with the usage at the end

    def stamp(self, request: UpstreamRequest) -> UpstreamRequest:
        """Every attempt sends the request id, the client's trace context and the
        policy's headers (into the adapter's headers, made for this attempt)."""
        headers = request.headers
        headers["X-Request-Id"] = self.request_id
        if self.trace is not None:
            headers.update(self.trace)
        if self.policy.headers:
            headers.update(self.policy.headers)
        return request

    def trace_id(self) -> str:
        """For the record: the trace this call is part of, if any."""
        if self.span is not None:
            return self.span.trace_id
        return "" if self.trace is None else trace_id_of(self.trace)

    def expired(self) -> bool:
        # A timer may fire a hair before its time (clock resolution): allow a millisecond.
        return asyncio.get_running_loop().time() >= self.deadline - 0.001

    def gateway_headers(self, target: Target, attempts: int) -> dict[str, str]:
        headers = {
            "X-Request-Id": self.request_id,
            "X-Gateway-Route": self.plan.route.name,
            "X-Gateway-Provider": target.provider,
            "X-Gateway-Model": target.model,
            "X-Gateway-Attempts": str(attempts),
        }
        if self.plan.version:
            headers["X-Gateway-Prompt-Version"] = self.plan.version
        if self.ticket is not None:  # a limited key's x-ratelimit-*
            headers.update(self.ticket.headers)
        return headers


def trace_context(given: Mapping[str, str]) -> dict[str, str] | None:
    """The client's W3C trace context, to pass on as it came; None without one."""
    parent = given.get("traceparent")
    if parent is None:  # tracestate means nothing without it
        return None
    found = {"traceparent": parent}
    state = given.get("tracestate")
    if state is not None:
        found["tracestate"] = state
    return found


def trace_id_of(context: Mapping[str, str]) -> str:
    """The trace id of a W3C trace context; empty when its traceparent is malformed."""
    parent = context["traceparent"]  # version-traceid-spanid-flags
    return parent[3:35] if len(parent) == 55 and parent[2] == "-" else ""
