"""Typed keys for what the app shares with its handlers (no module-level singletons)."""

from __future__ import annotations

from aiohttp import web

from gateway.metrics import Metrics
from gateway.observers import RequestObserver
from gateway.pipeline import Call
from gateway.reload import Reloader
from gateway.runtime import RuntimeHolder
from gateway.snapshot import PromptsHolder
from gateway.telemetry import Outcome, Telemetry

RUNTIME = web.AppKey("runtime", RuntimeHolder)
METRICS = web.AppKey("metrics", Metrics)
PROMPTS = web.AppKey("prompts", PromptsHolder)
RELOADER = web.AppKey("reloader", Reloader)
TELEMETRY = web.AppKey("telemetry", Telemetry)
OUTCOME = web.RequestKey("outcome", Outcome)
CALL = web.RequestKey("call", Call)
# Features that watch requests (shadow, capture, rollout counts); see gateway.observers.
OBSERVERS = web.AppKey("observers", list[RequestObserver])


class Lifecycle:
    """Process state the health endpoints report."""

    def __init__(self) -> None:
        self.draining = False


LIFECYCLE = web.AppKey("lifecycle", Lifecycle)
