"""One process serving the app until a signal, then draining in three steps:

1. SIGTERM: `/readyz` answers 503 at once while everything else is still served, for
   `server.drain_delay_s`, so that load balancers take the replica out before it stops
   accepting (a refused connection is an error to them; a 503 on a probe is not);
2. the listener closes: no new connections;
3. requests and streams in flight finish, for up to `server.drain_timeout_s`.

SIGINT (Ctrl-C) skips the first step: nobody routes to a terminal."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from aiohttp import web

from gateway.appkeys import LIFECYCLE
from gateway.config.loader import ServerConfig

log = logging.getLogger("gateway")


def serve_app(
    app: web.Application,
    loop: asyncio.AbstractEventLoop,
    host: str,
    port: int,
    server: ServerConfig,
    reuse_port: bool,
) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(_serve(app, host, port, server, reuse_port))
    finally:
        _cancel_the_rest(loop)
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        asyncio.set_event_loop(None)


async def _serve(
    app: web.Application, host: str, port: int, server: ServerConfig, reuse_port: bool
) -> None:
    runner = web.AppRunner(
        app,
        access_log=None,
        handler_cancellation=True,
        shutdown_timeout=server.drain_timeout_s,
        keepalive_timeout=server.keepalive_timeout_s,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, backlog=4096, reuse_port=reuse_port or None)
        await site.start()
        received = await _first_signal()
        app[LIFECYCLE].draining = True  # /readyz answers 503 from now on
        if received == signal.SIGTERM and server.drain_delay_s > 0:
            log.info("draining: /readyz answers 503; still serving for %gs", server.drain_delay_s)
            await asyncio.sleep(server.drain_delay_s)
        log.info("draining: no new connections; in-flight work has %gs", server.drain_timeout_s)
    finally:
        await runner.cleanup()  # stops the listener, waits for in-flight work, then cleanup


async def _first_signal() -> signal.Signals:
    loop = asyncio.get_running_loop()
    received: asyncio.Future[signal.Signals] = loop.create_future()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, _settle, received, signum)
    try:
        return await received
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


def _settle(future: asyncio.Future[signal.Signals], signum: signal.Signals) -> None:
    if not future.done():
        future.set_result(signum)


def _cancel_the_rest(loop: asyncio.AbstractEventLoop) -> None:
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        with contextlib.suppress(Exception):
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
