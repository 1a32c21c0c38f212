"""Request capture, for replay and regression suites: a request observer that keeps,
for a sample of chat requests on the routes and prompts `[capture]` names, what was
asked (prompt variables, the client's messages and parameters, the prompt's rendered
part), what was answered (the full text, streams included), and how (version, target,
latency, time to first token, tokens, cost, status).

The decision is made before the upstream call (so the answer's text is kept), the
record is put on a queue when the request is done, and a task writes records in
batches, off the request path: redacted first (every `capture.redact` pattern replaced
by `[REDACTED]` in every string of the request and the answer), then to the store's
capture log (gateway.store.captures). Never captured: headers, keys (neither the
client's token nor its name), shadow copies, requests that say
`X-Gateway-No-Capture: 1`."""

from __future__ import annotations

import functools
import logging
import random
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from gateway.config.loader import CaptureConfig
from gateway.proxy.call import Call
from gateway.proxy.observers import IGNORE, WATCH_ANSWER
from gateway.proxy.runtime import RuntimeHolder
from gateway.store.batch_writer import BatchWriter
from gateway.store.captures import CaptureLog, Record
from gateway.telemetry.recorder import RequestRecord

log = logging.getLogger("gateway.capture")
REDACTED = "[REDACTED]"
CHAT_PATH = "/v1/chat/completions"
# Requests planned as chat calls: a Responses or Messages request's client part is kept
# in chat form; a legacy completion's `prompt` is kept among its params.
CAPTURED_PATHS = (CHAT_PATH, "/v1/responses", "/v1/messages", "/v1/completions")
_NOT_PARAMS = ("model", "messages", "prompt_variables")  # kept apart


@functools.lru_cache(maxsize=16)
def _patterns(redact: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(p) for p in redact)


def redact_text(text: str, redact: tuple[str, ...]) -> str:
    for pattern in _patterns(redact):
        text = pattern.sub(REDACTED, text)
    return text


def redact_value(value: Any, redact: tuple[str, ...]) -> Any:
    """Every string inside `value` (JSON-like), redacted."""
    if not redact:
        return value
    if isinstance(value, str):
        return redact_text(value, redact)
    if isinstance(value, Mapping):
        return {k: redact_value(v, redact) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(v, redact) for v in value]
    return value


def wanted(cfg: CaptureConfig, call: Call, draw: Callable[[], float] = random.random) -> bool:
    """Whether to capture this request: on, a primary chat request, not opted out, on a
    listed route or prompt (none listed: all), and in the sample."""
    if not cfg.enabled or call.no_capture or call.policy.role != "primary":
        return False
    if call.path not in CAPTURED_PATHS:
        return False
    if cfg.routes or cfg.prompts:
        listed = call.plan.route.name in cfg.routes or (
            bool(call.plan.prompt) and call.plan.prompt in cfg.prompts
        )
        if not listed:
            return False
    return cfg.sample_rate >= 1 or draw() < cfg.sample_rate


class Capture:
    """The capture observer and its batch writer (see the module's docstring)."""

    def __init__(self, runtime: RuntimeHolder, log_: CaptureLog) -> None:
        self._runtime = runtime
        self.log = log_
        self.writer: BatchWriter[Record] = BatchWriter(
            "capture", self._write, self._batch_settings, max_queued=10_000
        )

    def _batch_settings(self) -> tuple[int, float]:
        cfg = self._runtime.current.config.capture
        return cfg.batch_size, cfg.flush_interval_s

    def on_start(self, call: Call) -> int:
        return WATCH_ANSWER if wanted(call.runtime.config.capture, call) else IGNORE

    def on_finish(self, call: Call, record: RequestRecord) -> None:
        if not self.writer.put(self.record(call, record)) and self.writer.dropped % 1000 == 1:
            log.warning("capture queue full: %d records dropped so far", self.writer.dropped)

    def record(self, call: Call, r: RequestRecord) -> Record:
        """The record, not yet redacted (that happens in the writer)."""
        usage = r.usage
        return {
            "request_id": r.request_id,
            "ts": time.time(),
            "route": r.route,
            "user": r.user or None,  # the end user; never the key (not even its name)
            "prompt": r.prompt,
            "version": r.version,
            "provider": r.provider,
            "model": r.model,
            "stream": r.stream,
            "status": r.status,
            "error": r.error or None,
            "latency_ms": round(r.latency_s * 1000, 3),
            "ttft_ms": None if r.ttft_s is None else round(r.ttft_s * 1000, 3),
            "attempts": r.attempts,
            "usage": None
            if usage is None
            else {
                "input_tokens": usage.input_tokens,
                "output_tokens": usage.output_tokens,
                "cached_input_tokens": usage.cached_input_tokens,
            },
            "cost_usd": r.cost_usd,
            "request": self._request(call),
            "answer": r.answer,
            "guards": r.guards,
            "held": r.held,  # admin-only, like every capture; the client has not seen it
        }

    @staticmethod
    def _request(call: Call) -> dict[str, Any]:
        """The client's part and the prompt's part apart, so a replay can send the
        same client request through another version of the prompt."""
        body = call.client_body
        return {
            "model": body.get("model"),
            "variables": dict(call.variables),
            "messages": list(body.get("messages") or []),
            "params": {k: v for k, v in body.items() if k not in _NOT_PARAMS},
            "prompt_messages": list(call.prompt_messages),
            "prompt_params": dict(call.prompt_params),
        }

    async def _write(self, batch: list[Record]) -> None:
        redact = self._runtime.current.config.capture.redact
        for record in batch:
            record["request"] = redact_value(record["request"], redact)
            if isinstance(record["answer"], str):
                record["answer"] = redact_text(record["answer"], redact)
            if record["error"]:
                record["error"] = redact_text(record["error"], redact)
        await self.log.append(batch)

    async def flush(self) -> None:
        """Until every request captured so far is in the log (tests, shutdown)."""
        await self.writer.flush()
