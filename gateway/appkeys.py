"""Typed keys for what the app shares with its handlers (no module-level singletons)."""

from __future__ import annotations

from aiohttp import web

from gateway.metrics import Metrics
from gateway.runtime import RuntimeHolder
from gateway.snapshot import PromptsHolder
from gateway.telemetry import Outcome, Telemetry

RUNTIME = web.AppKey("runtime", RuntimeHolder)
METRICS = web.AppKey("metrics", Metrics)
PROMPTS = web.AppKey("prompts", PromptsHolder)
TELEMETRY = web.AppKey("telemetry", Telemetry)
OUTCOME = web.RequestKey("outcome", Outcome)
