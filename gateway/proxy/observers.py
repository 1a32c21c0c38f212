"""Features that watch requests go by (shadow traffic, capture, rollout counts) hook in
here, off the request path's decisions: they never change what the client gets."""

from __future__ import annotations

import logging
from typing import Protocol

from gateway.proxy.call import Call
from gateway.telemetry.recorder import RequestRecord

log = logging.getLogger("gateway.observers")


class RequestObserver(Protocol):
    def on_start(self, call: Call) -> bool:
        """Before any upstream call; True to have the answer's text kept. Must be quick
        and must not raise."""
        ...

    def on_finish(self, call: Call, record: RequestRecord) -> None:
        """After the answer has gone to the client (streams included) and telemetry is
        recorded. Must be quick: slow work goes to a task or a queue."""
        ...


def notify_start(observers: list[RequestObserver], call: Call) -> bool:
    """Whether any observer wants the answer's text."""
    keep = False
    for observer in observers:
        try:
            keep = observer.on_start(call) or keep
        except Exception:  # an observer's bug must never fail a request
            log.exception("observer %s failed on start", type(observer).__name__)
    return keep


def notify_finish(observers: list[RequestObserver], call: Call, record: RequestRecord) -> None:
    for observer in observers:
        try:
            observer.on_finish(call, record)
        except Exception:
            log.exception("observer %s failed on finish", type(observer).__name__)
