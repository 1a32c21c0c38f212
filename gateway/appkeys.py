"""Typed keys for what the app shares with its handlers (no module-level singletons)."""

from __future__ import annotations

from aiohttp import web

from gateway.proxy.observers import RequestObserver
from gateway.proxy.pipeline import Call
from gateway.proxy.runtime import RuntimeHolder
from gateway.reload import Reloader
from gateway.store.follower import PromptsHolder
from gateway.telemetry.metrics import Metrics
from gateway.telemetry.recorder import Outcome, Telemetry

RUNTIME = web.AppKey("runtime", RuntimeHolder)
METRICS = web.AppKey("metrics", Metrics)
PROMPTS = web.AppKey("prompts", PromptsHolder)
RELOADER = web.AppKey("reloader", Reloader)
TELEMETRY = web.AppKey("telemetry", Telemetry)
OUTCOME = web.RequestKey("outcome", Outcome)
CALL = web.RequestKey("call", Call)
# Features that watch requests (shadow, capture, rollout counts); see gateway.proxy.observers.
OBSERVERS = web.AppKey("observers", list[RequestObserver])


class Lifecycle:
    """Process state the health endpoints report."""

    def __init__(self) -> None:
        self.draining = False


LIFECYCLE = web.AppKey("lifecycle", Lifecycle)
