"""A relayed stream's timeout: an idle gap between reads, within a total time, at the
cost of a clock read per read instead of a new timer."""

from __future__ import annotations

import asyncio
import math
from types import TracebackType

_EARLY_S = 0.001  # a timer may fire up to a tick before its time


class IdleTimeout:
    """Like `asyncio.timeout_at`, for a loop of reads: raises `TimeoutError` once the
    current wait has lasted `idle_s`, or at `until` (event-loop time) whatever happens.

    asyncio's `reschedule()` makes a new timer each time, and doing that twice per
    relayed chunk was a large part of a chunk's cost. Here the one timer, when it fires
    before anything is due, sets itself again for the time left."""

    __slots__ = (
        "_cancelling",
        "_expired",
        "_handle",
        "_idle_s",
        "_loop",
        "_since",
        "_task",
        "_until",
    )

    def __init__(self, idle_s: float, until: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._idle_s = idle_s
        self._until = until
        self._since = self._loop.time()  # when the current wait began; inf: none
        self._task: asyncio.Task[object] | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._expired = False
        self._cancelling = 0

    def waiting(self) -> None:
        """A wait for the provider begins now: the idle gap counts from here."""
        self._since = self._loop.time()

    def not_waiting(self) -> None:
        """Until the next `waiting()` only `until` applies: a client slow to read is no
        stalled provider."""
        self._since = math.inf

    @property
    def expired(self) -> bool:
        return self._expired

    def _due(self) -> float:
        return min(self._since + self._idle_s, self._until)

    async def __aenter__(self) -> IdleTimeout:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("IdleTimeout is used inside a task")
        self._task = task
        self._cancelling = task.cancelling()
        self._handle = self._loop.call_at(self._due(), self._check)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._expired:
            assert self._task is not None
            # Our cancel is taken back whatever ended the block; it was ours, not
            # someone else's, when no other is pending (as asyncio.timeout decides it).
            if self._task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
                raise TimeoutError from exc

    def _check(self) -> None:
        due = self._due()
        if self._loop.time() >= due - _EARLY_S:
            self._expired = True
            self._handle = None
            assert self._task is not None
            self._task.cancel()
        else:
            self._handle = self._loop.call_at(due, self._check)
