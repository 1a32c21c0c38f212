"""Features that watch requests go by (shadow traffic, capture, rollout counts) hook in
here, off the request path's decisions: they never change what the client gets."""

from __future__ import annotations

import logging
from typing import Protocol

from gateway.proxy.pipeline import Call

log = logging.getLogger("gateway.observers")


class RequestObserver(Protocol):
    def on_start(self, call: Call) -> None:
        """Before any upstream call. May set `call.outcome.keep_answer` to have the
        answer's text kept. Must be quick and must not raise."""
        ...

    def on_finish(self, call: Call) -> None:
        """After the answer has gone to the client (streams included) and telemetry is
        recorded. Must be quick: slow work goes to a task or a queue."""
        ...


def notify_start(observers: list[RequestObserver], call: Call) -> None:
    for observer in observers:
        try:
            observer.on_start(call)
        except Exception:  # an observer's bug must never fail a request
            log.exception("observer %s failed on start", type(observer).__name__)


def notify_finish(observers: list[RequestObserver], call: Call) -> None:
    for observer in observers:
        try:
            observer.on_finish(call)
        except Exception:
            log.exception("observer %s failed on finish", type(observer).__name__)
