"""Typed keys for what the app shares with its handlers (no module-level singletons):
every `web.AppKey` of the gateway's app, in one place.

Any layer may read a key, so the key types are imported for the type checker only:
at run time this module imports nothing of the gateway's."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:  # the keys name their types for the checker; at run time this is a leaf
    from collections.abc import Awaitable, Callable

    from gateway.config.control import AdminIdentity
    from gateway.evaluation.capture import Capture
    from gateway.evaluation.feedback import FeedbackStats
    from gateway.guards.queue import ReviewQueue
    from gateway.proxy.call import Call
    from gateway.proxy.ingress import Ingress
    from gateway.proxy.observers import RequestObserver
    from gateway.proxy.runtime import RuntimeHolder
    from gateway.reload import Reloader
    from gateway.rollout.controller import RolloutController
    from gateway.shadow.report import ShadowLog
    from gateway.shadow.runner import ShadowRunner
    from gateway.store.annotations import Annotations
    from gateway.store.dataset_runs import DatasetRuns
    from gateway.store.datasets import Datasets
    from gateway.store.follower import PromptsHolder
    from gateway.store.replays import ReplayStore
    from gateway.store.responses import ResponseStore
    from gateway.telemetry.metrics import Metrics
    from gateway.telemetry.recorder import Telemetry

RUNTIME: web.AppKey[RuntimeHolder] = web.AppKey("runtime")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
PROMPTS: web.AppKey[PromptsHolder] = web.AppKey("prompts")
RELOADER: web.AppKey[Reloader] = web.AppKey("reloader")
TELEMETRY: web.AppKey[Telemetry] = web.AppKey("telemetry")
# Features that watch requests (shadow, capture, rollout counts); see gateway.proxy.observers.
OBSERVERS: web.AppKey[list[RequestObserver]] = web.AppKey("observers")
INGRESS: web.RequestKey[Ingress] = web.RequestKey("ingress")  # every /v1/ request
ADMIN: web.RequestKey[AdminIdentity] = web.RequestKey("admin")  # every /admin/ request

# The features' own parts, set by their cleanup contexts in gateway.app.
CAPTURE: web.AppKey[Capture] = web.AppKey("capture")
FEEDBACK: web.AppKey[FeedbackStats] = web.AppKey("feedback")
ANNOTATIONS: web.AppKey[Annotations] = web.AppKey("annotations")  # feedback, capture labels
REPLAYS: web.AppKey[ReplayStore] = web.AppKey("replays")
DATASETS: web.AppKey[Datasets] = web.AppKey("datasets")
DATASET_RUNS: web.AppKey[DatasetRuns] = web.AppKey("dataset_runs")
ROLLOUTS: web.AppKey[RolloutController] = web.AppKey("rollouts")
SHADOW: web.AppKey[ShadowRunner] = web.AppKey("shadow")
SHADOW_LOG: web.AppKey[ShadowLog] = web.AppKey("shadow_log")
RESPONSES: web.AppKey[ResponseStore] = web.AppKey("responses")  # for previous_response_id
# Output guards (gateway.guards): how a chat completion is served once any guard is
# configured, and the review queue of flagged and held answers.
GUARDED: web.AppKey[Callable[[web.Request, Call], Awaitable[web.StreamResponse]]] = web.AppKey(
    "guarded"
)
REVIEWS: web.AppKey[ReviewQueue] = web.AppKey("reviews")


class Lifecycle:
    """Process state the health endpoints report."""

    def __init__(self) -> None:
        self.draining = False


LIFECYCLE = web.AppKey("lifecycle", Lifecycle)
