"""Wiring only: build the aiohttp application from a config."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
from collections.abc import AsyncIterator, Callable

import aiohttp
from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from gateway import __version__
from gateway.admin.api import create_admin_app
from gateway.appkeys import (
    ANNOTATIONS,
    CAPTURE,
    CLIENT_KEYS,
    DATASET_RUNS,
    DATASETS,
    FEEDBACK,
    GUARDED,
    LIFECYCLE,
    LIMITER,
    METRICS,
    OBSERVERS,
    PROMPTS,
    RELOADER,
    REPLAYS,
    RESPONSES,
    REVIEWS,
    ROLLOUTS,
    RUNTIME,
    SHADOW,
    SHADOW_LOG,
    SPEND_WRITER,
    TELEMETRY,
    Lifecycle,
)
from gateway.config.loader import CaptureConfig, GatewayConfig, TracingConfig
from gateway.console.page import add_console_routes
from gateway.evaluation.capture import Capture
from gateway.evaluation.feedback import FeedbackStats, RequestIndex, post_feedback
from gateway.guards.queue import ReviewQueue
from gateway.guards.review_api import client_review
from gateway.guards.serve import serve_guarded
from gateway.limits.limiter import Limiter
from gateway.limits.metrics import LimitMetrics
from gateway.limits.spend_writer import SpendWriter
from gateway.proxy.api import add_routes
from gateway.proxy.middleware import gateway_middleware
from gateway.proxy.runtime import RuntimeHolder, UpstreamParts, build_runtime
from gateway.reload import Reloader, watch_file
from gateway.rollout.controller import FeedbackSource, NoFeedback, RolloutController
from gateway.rollout.version_stats import VersionStats
from gateway.shadow.runner import ShadowRunner
from gateway.store.base import Store, seed_prompts
from gateway.store.drift_report import DriftReport
from gateway.store.follower import PromptsHolder
from gateway.store.key_follower import KeyFollower
from gateway.store.memory import MemoryStore
from gateway.store.redis import RedisStore
from gateway.store.snapshot import PromptsSnapshot
from gateway.telemetry.logs import AccessLogWriter, quiet_client_mistakes
from gateway.telemetry.metrics import Metrics
from gateway.telemetry.recorder import Telemetry


def create_app(config: GatewayConfig, *, watch_interval_s: float = 1.0) -> web.Application:
    """`watch_interval_s`: how often the config file is checked for changes."""
    # Body size is enforced per request from the live config (see api.read_json).
    app = web.Application(middlewares=[gateway_middleware], client_max_size=2**31)
    disable_created_metrics()  # type: ignore[no-untyped-call]  # `_created` doubles series
    quiet_client_mistakes()
    metrics = Metrics()
    app[METRICS] = metrics
    access_log = AccessLogWriter()
    app[TELEMETRY] = Telemetry(metrics, access_log)
    app.cleanup_ctx.append(_metrics_flusher(metrics))  # first in, so last out
    app.cleanup_ctx.append(_access_log(access_log))
    if config.tracing.enabled:  # after the access log: flushed once the requests are over
        app.cleanup_ctx.append(_tracing(config.tracing))
    app.cleanup_ctx.append(_runtime(config))
    app.cleanup_ctx.append(_prompts(config, metrics, watch_interval_s))
    app.cleanup_ctx.append(_client_keys)  # the store's keys, in every request's key ring
    app.cleanup_ctx.append(_responses)  # kept answers for previous_response_id
    app.cleanup_ctx.append(_evaluation)  # capture, feedback index, datasets and runs
    app.cleanup_ctx.append(_limits)  # limits and budgets of keys and teams, spend
    app.cleanup_ctx.append(_rollout)  # version stats and the rollout driver
    app.cleanup_ctx.append(_reviews)  # the review queue and its timeout sweeper
    app[GUARDED] = serve_guarded
    app[LIFECYCLE] = Lifecycle()
    app[OBSERVERS] = []
    shadow = ShadowRunner(config.shadow, app[TELEMETRY], metrics)
    app[SHADOW], app[SHADOW_LOG] = shadow, shadow.log
    app[OBSERVERS].append(shadow)
    app.cleanup_ctx.append(_shadow(shadow))  # after _prompts: it reads the snapshot
    app.on_shutdown.append(_draining)
    app.router.add_post("/v1/feedback", post_feedback)  # before add_routes' /v1/* catch-all
    app.router.add_get("/v1/reviews/{id}", client_review)
    add_routes(app)
    app.add_subapp("/admin/", create_admin_app())
    add_console_routes(app)  # /console: the page, behind the admin API
    if config.metrics.enabled:
        app.router.add_get("/metrics", _metrics_page)
    return app


def _runtime(config: GatewayConfig) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        # The process's one pooled client session, shared by every HTTP provider.
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=60),
            # Cookies a provider sets (load balancers do) must not follow one client's
            # request into another's: the gateway keeps none.
            cookie_jar=aiohttp.DummyCookieJar(),
            headers={"User-Agent": f"llm-gateway/{__version__}"},
            timeout=aiohttp.ClientTimeout(total=None),
        )
        app[RUNTIME] = RuntimeHolder(build_runtime(config, UpstreamParts(session, app[METRICS])))
        yield
        await session.close()

    return ctx


def _metrics_flusher(metrics: Metrics) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        flusher = asyncio.create_task(metrics.run())
        yield
        flusher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flusher
        metrics.flush()  # with workers, what this one counted stays in its files

    return ctx


def _access_log(writer: AccessLogWriter) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        writer.start()
        flusher = asyncio.create_task(writer.run())
        yield
        flusher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flusher
        writer.stop()

    return ctx


def _tracing(config: TracingConfig) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        # Imported here: with tracing off, OpenTelemetry is never loaded.
        from gateway.telemetry.tracing import Tracing

        telemetry = app[TELEMETRY]
        tracing = telemetry.tracing = Tracing(config)
        yield
        telemetry.tracing = None
        await asyncio.to_thread(tracing.shutdown)  # exports what is left

    return ctx


def open_store(config: GatewayConfig) -> Store:
    """Redis when `[redis] url` is set (shared by every replica), else in-process."""
    return RedisStore.from_config(config.redis) if config.redis.url else MemoryStore()


def _prompts(
    config: GatewayConfig, metrics: Metrics, config_watch_interval_s: float
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        store = open_store(config)
        runtime = app[RUNTIME]

        async def seed() -> None:  # the config as it is now: at boot and after a data loss
            config = runtime.current.config
            await seed_prompts(store, config.prompts, config.models)

        holder = PromptsHolder(store, metrics, seed=seed)
        holder.current = PromptsSnapshot.from_config(config.prompts)
        drift = DriftReport(store, metrics, lambda: runtime.current.config.models)
        holder.on_swap = drift.snapshot_changed
        app[PROMPTS] = holder
        with contextlib.suppress(Exception):  # store down at boot: serve the config's prompts
            await holder.refresh()
        await drift.at_boot(config, holder.current)
        follower = asyncio.create_task(holder.follow())
        reloader = Reloader(app[RUNTIME], holder, metrics, drift)
        app[RELOADER] = reloader
        watcher = asyncio.create_task(watch_file(reloader, config_watch_interval_s))
        _on_sighup(lambda: asyncio.create_task(reloader.reload("SIGHUP")))
        yield
        _on_sighup(None)
        for task in (follower, watcher):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await store.close()

    return ctx


async def _client_keys(app: web.Application) -> AsyncIterator[None]:
    """After `_prompts`: the store's client keys in memory, followed as they change."""
    keys = KeyFollower(app[PROMPTS].store.client_keys(), app[RUNTIME].current.parts.key_snapshot)
    app[CLIENT_KEYS] = keys
    with contextlib.suppress(Exception):  # store down at boot: the config's keys serve
        await keys.refresh()
    follower = asyncio.create_task(keys.follow())
    yield
    follower.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await follower


async def _evaluation(app: web.Application) -> AsyncIterator[None]:
    """After `_prompts`: capture, the request index for feedback, datasets and their
    runs, on the store's back ends, and the lifetimes of their batch writers."""
    runtime, holder = app[RUNTIME], app[PROMPTS]

    def settings() -> CaptureConfig:
        return runtime.current.config.capture

    records = holder.store.records()
    capture = Capture(runtime, holder.store.capture_log(settings))
    index = RequestIndex(runtime, records)
    app[CAPTURE] = capture
    app[ANNOTATIONS] = holder.store.annotations()
    app[FEEDBACK] = FeedbackStats(index, app[ANNOTATIONS].feedback, app[METRICS])
    app[REPLAYS] = holder.store.replays()
    app[DATASETS] = holder.store.datasets()
    app[DATASET_RUNS] = holder.store.dataset_runs()
    app[OBSERVERS].extend([index, capture])
    capture.writer.start()
    index.writer.start()
    yield
    await capture.writer.stop()
    await index.writer.stop()


async def _limits(app: web.Application) -> AsyncIterator[None]:
    """After `_prompts`: the limiter on the store's leases, its sync loop, and the
    spend writer."""
    runtime, metering = app[RUNTIME], app[PROMPTS].store.metering()
    limiter = Limiter(
        metering.leases, LimitMetrics(app[METRICS].registry), lambda: runtime.current.config
    )
    app[LIMITER] = limiter
    writer = app[SPEND_WRITER] = SpendWriter(app[TELEMETRY].spend, metering.spend)
    tasks = [asyncio.create_task(limiter.run()), asyncio.create_task(writer.run())]
    yield
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    with contextlib.suppress(Exception):  # what is left, if the store takes it
        await limiter.sync()
        await writer.flush()


async def _responses(app: web.Application) -> AsyncIterator[None]:
    """After `_prompts`: the store's back end for kept `/v1/responses` answers."""
    runtime = app[RUNTIME]
    app[RESPONSES] = app[PROMPTS].store.responses(lambda: runtime.current.config.responses)
    yield


async def _rollout(app: web.Application) -> AsyncIterator[None]:
    """After `_prompts` and `_evaluation`: the version-stats observer and its flusher,
    and the rollout driver."""
    holder = app[PROMPTS]
    cfg = app[RUNTIME].current.config.rollout  # read at start
    stats = VersionStats(
        holder.store.version_stats(), cfg.bucket_s, cfg.stats_ttl_s, cfg.flush_interval_s
    )
    real = app.get(FEEDBACK)  # None when feedback is not wired: its guard is skipped
    feedback: FeedbackSource = real if real is not None else NoFeedback()
    rollouts = holder.store.rollouts()
    controller = RolloutController(holder, rollouts, stats, feedback, app[METRICS], cfg)
    app[ROLLOUTS] = controller
    app[OBSERVERS].append(stats)
    flusher = asyncio.create_task(stats.flush_forever())
    driver = asyncio.create_task(controller.drive_forever())
    yield
    controller.stop()
    stats.stop()
    for task in (driver, flusher):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await controller.release_all()
    await stats.close()


async def _reviews(app: web.Application) -> AsyncIterator[None]:
    """After `_prompts`: the review queue on the store's back end; every replica sweeps
    for items past their time (the store decides each once)."""
    store = app[PROMPTS].store
    queue = ReviewQueue(store, store.reviews(), app[RUNTIME], app[METRICS])
    app[REVIEWS] = queue
    sweeper = asyncio.create_task(queue.sweep_forever())
    yield
    sweeper.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sweeper
    await queue.drain()


def _shadow(runner: ShadowRunner) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        runner.start(app[PROMPTS])
        yield
        await runner.stop()

    return ctx


def _on_sighup(callback: Callable[[], object] | None) -> None:
    """SIGHUP reloads the config (only where signals can be handled: Unix, main thread)."""
    if not hasattr(signal, "SIGHUP") or threading.current_thread() is not threading.main_thread():
        return
    loop = asyncio.get_running_loop()
    if callback is None:
        loop.remove_signal_handler(signal.SIGHUP)
    else:
        loop.add_signal_handler(signal.SIGHUP, callback)


async def _draining(app: web.Application) -> None:
    app[LIFECYCLE].draining = True  # /readyz answers 503 from now on


async def _metrics_page(request: web.Request) -> web.Response:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Several workers: every worker's files, summed, whichever worker is asked (the
        # others flush theirs every second).
        request.app[METRICS].flush()
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        ProcessCollector(registry=registry)  # the worker that answers
        PlatformCollector(registry=registry)
        page = generate_latest(registry)
    else:
        page = generate_latest(request.app[METRICS].registry)
    return web.Response(body=page, headers={"Content-Type": CONTENT_TYPE_LATEST})
