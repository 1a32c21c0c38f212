"""Following the Redis store: pub/sub notices, the change counter and a periodic
full resync, whichever comes first."""

from __future__ import annotations

import asyncio
import contextlib

from redis.asyncio.client import PubSub

from gateway.config.loader import RedisConfig
from gateway.store.base import OnChange
from gateway.store.redis_connect import RedisClient
from gateway.store.redis_keys import Keys


def _raise_if_cancelled() -> None:
    """redis-py's reads with a timeout can swallow a cancellation that lands as the
    timeout expires (seen with pub/sub on Python 3.11): honour it here instead of
    polling on forever."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def follow_changes(
    client: RedisClient, keys: Keys, cfg: RedisConfig, on_change: OnChange
) -> None:
    """Call `on_change` on connecting (a full reload), on each pub/sub notice, when
    the epoch moved (a notice can be lost on reconnect), and every resync
    interval. A Redis error ends it: the caller calls it again after a pause."""
    loop = asyncio.get_running_loop()
    pubsub = None if cfg.cluster else client.pubsub()
    try:
        if pubsub is not None:
            await pubsub.subscribe(keys.changes)
        epoch = await client.get(keys.epoch)
        await on_change()
        synced_at = loop.time()
        while True:
            noticed = await _next_notice(pubsub, cfg.poll_interval_s)
            _raise_if_cancelled()
            current = await client.get(keys.epoch)
            due = loop.time() - synced_at >= cfg.resync_interval_s
            if noticed or current != epoch or due:
                epoch, synced_at = current, loop.time()
                await on_change()
    finally:
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]


async def _next_notice(pubsub: PubSub | None, wait: float) -> bool:
    """Wait up to one poll interval for notices; True if any came."""
    if pubsub is None:
        await asyncio.sleep(wait)
        return False
    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=wait)
    if message is None:
        return False
    while await pubsub.get_message(ignore_subscribe_messages=True, timeout=0):
        pass  # one reload covers every notice already queued
    return True
