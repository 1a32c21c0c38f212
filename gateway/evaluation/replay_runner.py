"""A replay, run by the gateway itself: captured requests of a prompt sent through a
candidate version (and a baseline version, if asked; else the reference is what
production answered, from the capture) with the gateway's own pinned calls under the
`REPLAY` policy (role "replay" in every metric; never captured, never counted in
rollout statistics or feedback), at most `concurrency` at once, then compared and
judged. The result is plain JSON, ready to keep."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import msgspec
from aiohttp import web

from gateway.appkeys import RUNTIME
from gateway.decoding import Body
from gateway.evaluation.capture import redact_text
from gateway.evaluation.replay import Pair, Sample, compare, replay_body
from gateway.evaluation.replay_verdict import FailOn, judge
from gateway.prompts.versions import iso
from gateway.proxy.call import REPLAY
from gateway.proxy.own_calls import call_pinned

MAX_LIMIT = 1000  # captured requests per replay
MAX_CONCURRENCY = 32
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class ReplayAsk(Body, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`POST /admin/prompts/{name}/replays`."""

    candidate: Name
    baseline: Name | None = None
    since: Annotated[str, msgspec.Meta(max_length=40)] = "24h"
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_LIMIT)] = 200
    route: Name | None = None
    fail_on: FailOn = msgspec.field(default_factory=FailOn)
    concurrency: Annotated[int, msgspec.Meta(ge=1, le=MAX_CONCURRENCY)] = 8


def new_replay_id() -> str:
    """Sortable by time within a prompt, unique without coordination."""
    return f"rp{int(time.time() * 1000):x}{secrets.token_hex(3)}"


async def replay_pairs(
    app: web.Application,
    prompt: str,
    candidate: str,
    baseline: str | None,
    captures: Sequence[Mapping[str, Any]],
    concurrency: int,
    replay_id: str = "",
) -> list[Pair]:
    """Each capture answered by the candidate (and the baseline), in capture order."""
    gate = asyncio.Semaphore(concurrency)

    async def answer(version: str, body: Mapping[str, Any]) -> Sample:
        async with gate:
            record = await call_pinned(app, prompt, version, body, REPLAY, run_id=replay_id)
            return Sample.from_record(record)

    async def one(capture: Mapping[str, Any]) -> Pair:
        body = replay_body(capture)
        if baseline is None:
            reference = Sample.from_capture(capture)
            candidate_sample = await answer(candidate, body)
        else:
            reference, candidate_sample = await asyncio.gather(
                answer(baseline, body), answer(candidate, body)
            )
        request = capture.get("request") or {}
        return Pair(str(capture.get("request_id")), request, reference, candidate_sample)

    return list(await asyncio.gather(*(one(c) for c in captures)))


async def run_replay(
    app: web.Application,
    prompt: str,
    ask: ReplayAsk,
    versions: tuple[str, str | None],
    captures: Sequence[Mapping[str, Any]],
    by: str,
) -> dict[str, Any]:
    """The whole result: what was asked, the numbers, the differing cases, the verdict."""
    candidate, baseline = versions
    started = time.time()
    replay_id = new_replay_id()
    pairs = await replay_pairs(
        app, prompt, candidate, baseline, captures, ask.concurrency, replay_id
    )
    compared = compare(pairs)
    numbers = compared["numbers"]
    redact = app[RUNTIME].current.config.capture.redact
    for case in compared["differences"]:  # kept like a capture: redacted
        for side in ("reference", "candidate"):
            if isinstance(case[side], str):
                case[side] = redact_text(case[side], redact)
    stamps = [float(c.get("ts") or 0.0) for c in captures]
    return {
        "id": replay_id,
        "prompt": prompt,
        "candidate": candidate,
        "baseline": baseline,
        "route": ask.route,
        "window": {
            "since": ask.since,
            "limit": ask.limit,
            "first_capture_at": iso(min(stamps)) if stamps else None,
            "last_capture_at": iso(max(stamps)) if stamps else None,
        },
        "counts": {
            "requests": len(pairs),
            "compared": numbers["agreement"]["compared"],
            "reference_errors": numbers["reference"]["errors"],
            "candidate_errors": numbers["candidate"]["errors"],
        },
        "numbers": numbers,
        "differences": compared["differences"],
        "samples": compared["samples"],
        "fail_on": ask.fail_on.to_json(),
        "verdict": judge(ask.fail_on, numbers),
        "by": by,
        "started_at": iso(started),
        "finished_at": iso(time.time()),
    }


def summary(result: Mapping[str, Any]) -> dict[str, Any]:
    """A kept result without its per-request parts, for listings."""
    return {k: v for k, v in result.items() if k not in ("numbers", "differences", "samples")}
