"""Typed keys for what the app shares with its handlers (no module-level singletons)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:  # the keys name their types for the checker; at run time this is a leaf
    from gateway.proxy.ingress import Ingress
    from gateway.proxy.observers import RequestObserver
    from gateway.proxy.runtime import RuntimeHolder
    from gateway.reload import Reloader
    from gateway.shadow.runner import ShadowRunner
    from gateway.store.snapshot import PromptsHolder
    from gateway.telemetry.metrics import Metrics
    from gateway.telemetry.recorder import Telemetry

RUNTIME: web.AppKey[RuntimeHolder] = web.AppKey("runtime")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
PROMPTS: web.AppKey[PromptsHolder] = web.AppKey("prompts")
RELOADER: web.AppKey[Reloader] = web.AppKey("reloader")
TELEMETRY: web.AppKey[Telemetry] = web.AppKey("telemetry")
# Features that watch requests (shadow, capture, rollout counts); see gateway.proxy.observers.
OBSERVERS: web.AppKey[list[RequestObserver]] = web.AppKey("observers")
SHADOW: web.AppKey[ShadowRunner] = web.AppKey("shadow")
INGRESS: web.RequestKey[Ingress] = web.RequestKey("ingress")  # every /v1/ request


class Lifecycle:
    """Process state the health endpoints report."""

    def __init__(self) -> None:
        self.draining = False


LIFECYCLE = web.AppKey("lifecycle", Lifecycle)
