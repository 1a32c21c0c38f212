"""Config sections of the features around the request path: shadow traffic, capture
and gradual rollouts. Types and their validation, like gateway.config.loader's."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from gateway.config.source import Table


@dataclass(frozen=True)
class ShadowConfig:
    max_concurrency: int = 8  # worker tasks running shadow requests
    queue_size: int = 256  # waiting shadow requests; more are dropped
    timeout_s: float = 30.0  # one shadow request, start to end


@dataclass(frozen=True)
class CaptureConfig:
    """Request capture for replay and suites (see gateway.evaluation.capture)."""

    enabled: bool = False
    sample_rate: float = 1.0
    routes: tuple[str, ...] = ()  # with `prompts`: capture what matches either; both empty: all
    prompts: tuple[str, ...] = ()
    redact: tuple[str, ...] = ()  # regexes replaced by [REDACTED] before anything is stored
    max_records: int = 10_000  # Redis stream length (approximate) or in-memory ring
    file: str = ""  # embedded store: rotating JSONL here; empty: in memory
    max_file_bytes: int = 64 * 1024 * 1024
    max_files: int = 5  # the file and its rotated copies .1 .. .N-1
    batch_size: int = 100
    flush_interval_s: float = 1.0


@dataclass(frozen=True)
class RolloutConfig:
    """Gradual rollouts (see gateway.rollout.controller). Read at start: same on every replica."""

    lease_s: float = 10.0  # a dead driver's rollout is taken over after this
    check_interval_s: float = 1.0  # how often the driver looks (renewing its lease)
    flush_interval_s: float = 1.0  # per-version counts sent to the store
    bucket_s: float = 10.0  # time bucket of those counts
    stats_ttl_s: float = 3600.0  # how long the counts are kept


def shadow_section(t: Table) -> ShadowConfig:
    d = ShadowConfig()
    cfg = ShadowConfig(
        max_concurrency=t.integer("max_concurrency", d.max_concurrency, minimum=1),
        queue_size=t.integer("queue_size", d.queue_size, minimum=1),
        timeout_s=t.number("timeout_s", d.timeout_s, minimum=0.001),
    )
    t.done()
    return cfg


def rollout_section(t: Table) -> RolloutConfig:
    d = RolloutConfig()
    cfg = RolloutConfig(
        lease_s=t.number("lease_s", d.lease_s, minimum=0.1),
        check_interval_s=t.number("check_interval_s", d.check_interval_s, minimum=0.01),
        flush_interval_s=t.number("flush_interval_s", d.flush_interval_s, minimum=0.01),
        bucket_s=t.number("bucket_s", d.bucket_s, minimum=0.01),
        stats_ttl_s=t.number("stats_ttl_s", d.stats_ttl_s, minimum=1),
    )
    if cfg.check_interval_s * 2 >= cfg.lease_s:
        raise t.loader.error(t.key("check_interval_s"), "must be less than half of lease_s")
    t.done()
    return cfg


def capture_section(t: Table, file: Path, route_names: set[str]) -> CaptureConfig:
    d = CaptureConfig()
    lists: dict[str, tuple[str, ...]] = {}
    for name in ("routes", "prompts", "redact"):
        items = t.array(name, [])
        for i, item in enumerate(items):
            if not isinstance(item, str):
                raise t.loader.error(f"{t.key(name)}[{i}]", "must be a string")
            if name == "routes" and item not in route_names:
                raise t.loader.error(f"{t.key(name)}[{i}]", f"unknown route {item!r}")
            if name == "redact":
                try:
                    re.compile(item)
                except re.error as exc:
                    raise t.loader.error(f"{t.key(name)}[{i}]", f"bad regex: {exc}") from None
        lists[name] = tuple(items)
    path = t.text("file", d.file)
    cfg = CaptureConfig(
        enabled=t.flag("enabled", d.enabled),
        sample_rate=t.number("sample_rate", d.sample_rate),
        routes=lists["routes"],
        prompts=lists["prompts"],
        redact=lists["redact"],
        max_records=t.integer("max_records", d.max_records, minimum=1),
        # Relative to the config file's directory, like every path in it.
        file=str(file.parent / path) if path else "",
        max_file_bytes=t.integer("max_file_bytes", d.max_file_bytes, minimum=1024),
        max_files=t.integer("max_files", d.max_files, minimum=1),
        batch_size=t.integer("batch_size", d.batch_size, minimum=1),
        flush_interval_s=t.number("flush_interval_s", d.flush_interval_s, minimum=0.001),
    )
    if cfg.sample_rate > 1:
        raise t.loader.error(t.key("sample_rate"), "must be from 0 to 1")
    t.done()
    return cfg
