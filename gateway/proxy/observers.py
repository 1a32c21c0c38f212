"""Features that watch requests go by (shadow traffic, capture, rollout counts) hook in
here, off the request path's decisions: they never change what the client gets."""

from __future__ import annotations

import logging
from typing import Protocol

from gateway.proxy.call import Call
from gateway.telemetry.recorder import RequestRecord

log = logging.getLogger("gateway.observers")


# What an observer wants of a call, as its `on_start` says.
IGNORE = 0  # nothing: its on_finish is not called for this one
WATCH = 1  # its on_finish
WATCH_ANSWER = 2  # its on_finish, with the answer's text kept


class RequestObserver(Protocol):
    def on_start(self, call: Call) -> int:
        """Before any upstream call: IGNORE, WATCH or WATCH_ANSWER. Must be quick and
        must not raise."""
        ...

    def on_finish(self, call: Call, record: RequestRecord) -> None:
        """After the answer has gone to the client (streams included) and telemetry is
        recorded, for a call it watches. Must be quick: slow work goes to a task or a
        queue."""
        ...


def notify_start(observers: list[RequestObserver], call: Call) -> None:
    """Asks each observer what it wants of the call; the call keeps the answer."""
    for observer in observers:
        try:
            wants = observer.on_start(call)
        except Exception:  # an observer's bug must never fail a request
            log.exception("observer %s failed on start", type(observer).__name__)
            continue
        if wants:
            call.watchers.append(observer)
            if wants == WATCH_ANSWER:
                call.keep_answer = True


def notify_finish(call: Call, record: RequestRecord) -> None:
    for observer in call.watchers:
        try:
            observer.on_finish(call, record)
        except Exception:
            log.exception("observer %s failed on finish", type(observer).__name__)
