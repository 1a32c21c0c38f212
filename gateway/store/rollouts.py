"""A gradual rollout as stored (it outlives any one replica): its guards, its state
and its events, the `RolloutStore` protocol (state and the driver's lease) and the
embedded store's implementation (the Redis one is in gateway.store.rollout_redis).

Every write is a compare-and-set on `revision`: the driver, admins on other replicas
and a second driver that thinks it holds the lease can never overwrite each other's
decisions; the loser reads again and decides again."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, Literal, Protocol

import msgspec

State = Literal["running", "paused", "completed", "rolled_back", "aborted"]
ACTIVE: tuple[str, ...] = ("running", "paused")
EVENTS_KEPT = 500  # newest events kept per rollout
Count = Annotated[int, msgspec.Meta(ge=0)]
Limit = Annotated[float, msgspec.Meta(ge=0)]


class Guards(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A rollout's limits (gateway.rollout.guards evaluates them); in an admin body,
    missing keys keep their defaults."""

    min_requests: Count = 50  # in both canary and baseline before any decision
    max_error_rate_increase: Limit = 0.02  # canary error ratio - baseline's
    max_p95_latency_ratio: Limit = 1.5  # canary p95 / baseline p95
    max_p95_ttft_ratio: Limit = 1.5
    max_cost_ratio: Limit = 1.3  # cost per priced request
    max_negative_feedback_increase: Limit = 0.1  # negative share of feedback
    min_feedback: Count = 10  # feedback items in both before the feedback guard counts
    # p95s below this count as this: a few ms of noise on a fast model is no breach.
    latency_floor_s: Limit = 0.05

    def to_json(self) -> dict[str, Any]:
        return msgspec.structs.asdict(self)


@dataclass(frozen=True)
class RolloutEvent:
    """`event`: start, promote, hold, pause, resume, rollback, complete or abort."""

    at: float
    event: str
    step: int  # the canary's percent when it happened
    by: str = ""  # the replica that decided, or the admin
    reason: str = ""
    weights: Mapping[str, int] | None = None  # the routing it asked for, if any
    numbers: Mapping[str, Any] | None = None  # the verdict behind a decision

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "event": self.event,
            "step": self.step,
            "by": self.by,
            "reason": self.reason,
            "weights": dict(self.weights) if self.weights is not None else None,
            "numbers": self.numbers,
        }


@dataclass(frozen=True)
class Rollout:
    prompt: str
    version: str  # the canary
    steps: tuple[int, ...]
    interval_s: float
    on_breach: Literal["rollback", "pause"]
    guards: Guards
    baseline: Mapping[str, int]  # the routing weights when it started
    state: State = "running"
    step_index: int = 0
    step_started_at: float = 0.0  # unix time: the guards' window begins here
    next_check_at: float = 0.0
    weights: Mapping[str, int] = field(default_factory=dict)  # what the routing should be
    pending: bool = True  # `weights` not yet written to the routing
    revision: int = 0
    started_at: float = 0.0
    started_by: str = ""
    events: tuple[RolloutEvent, ...] = ()

    @property
    def step(self) -> int:
        return self.steps[self.step_index]

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    @property
    def baseline_versions(self) -> list[str]:
        return [v for v, w in self.baseline.items() if w > 0 and v != self.version]

    def with_event(self, event: RolloutEvent, **changes: Any) -> Rollout:
        events = (*self.events, event)[-EVENTS_KEPT:]
        return replace(self, events=events, revision=self.revision + 1, **changes)

    def to_json(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "version": self.version,
            "state": self.state,
            "step": self.step,
            "step_index": self.step_index,
            "steps": list(self.steps),
            "weights": dict(self.weights),
            "baseline": dict(self.baseline),
            "interval_s": self.interval_s,
            "on_breach": self.on_breach,
            "guards": self.guards.to_json(),
            "step_started_at": self.step_started_at,
            "next_check_at": self.next_check_at,
            "pending": self.pending,
            "revision": self.revision,
            "started_at": self.started_at,
            "started_by": self.started_by,
            "events": [e.to_json() for e in self.events],
        }


_rollout = msgspec.json.Decoder(Rollout)


def decode_rollout(raw: bytes | str) -> Rollout:
    """A rollout as stored (`Rollout.to_json`)."""
    return _rollout.decode(raw)


class RolloutStore(Protocol):
    """Rollout state and the driver's lease."""

    kind: str

    async def load(self, prompt: str) -> Rollout | None: ...

    async def save(self, rollout: Rollout, expected_revision: int) -> bool:
        """Write if the stored revision is still `expected_revision` (0: none stored);
        False if someone else wrote first."""
        ...

    async def active(self) -> list[str]:
        """Prompts whose rollout may need a driver (may include finished ones)."""
        ...

    async def forget(self, prompt: str) -> None:
        """Drop a finished rollout from `active` (its state stays readable)."""
        ...

    async def lease(self, prompt: str, owner: str, ttl_s: float) -> bool:
        """Take the prompt's driver lease, or renew it if `owner` holds it."""
        ...

    async def release(self, prompt: str, owner: str) -> None: ...

    async def lease_holder(self, prompt: str) -> str | None: ...


class MemoryRolloutStore:
    """Embedded store: one process, so the one in-process driver always holds it."""

    kind = "embedded"

    def __init__(self) -> None:
        self._rollouts: dict[str, Rollout] = {}
        self._active: set[str] = set()
        self._leases: dict[str, tuple[str, float]] = {}

    async def load(self, prompt: str) -> Rollout | None:
        return self._rollouts.get(prompt)

    async def save(self, rollout: Rollout, expected_revision: int) -> bool:
        current = self._rollouts.get(rollout.prompt)
        if (current.revision if current else 0) != expected_revision:
            return False
        self._rollouts[rollout.prompt] = rollout
        self._active.add(rollout.prompt)
        return True

    async def active(self) -> list[str]:
        return sorted(self._active)

    async def forget(self, prompt: str) -> None:
        self._active.discard(prompt)

    async def lease(self, prompt: str, owner: str, ttl_s: float) -> bool:
        holder = self._leases.get(prompt)
        now = time.monotonic()
        if holder is None or holder[0] == owner or holder[1] < now:
            self._leases[prompt] = (owner, now + ttl_s)
            return True
        return False

    async def release(self, prompt: str, owner: str) -> None:
        if self._leases.get(prompt, ("", 0.0))[0] == owner:
            del self._leases[prompt]

    async def lease_holder(self, prompt: str) -> str | None:
        holder = self._leases.get(prompt)
        return holder[0] if holder and holder[1] >= time.monotonic() else None
