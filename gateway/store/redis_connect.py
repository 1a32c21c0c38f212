"""The Redis client for `[redis]`: plain, TLS and unix URLs, Sentinel and Cluster.

Every connection gets short socket and connect timeouts and no retry on a timeout:
a frozen Redis must make a call fail fast, never hang the caller."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, ReadOnlyError, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gateway.config.loader import RedisConfig
from gateway.store.errors import StoreUnavailable

SENTINEL_SCHEME = "redis+sentinel://"
SENTINEL_PORT = 26379
HEALTH_CHECK_INTERVAL_S = 10  # PING a pooled connection idle for longer before using it

RedisClient = Redis | RedisCluster
Closer = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class SentinelTarget:
    hosts: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None


def parse_sentinel_url(url: str) -> SentinelTarget:
    """`redis+sentinel://[user:password@]host1:26379,host2:26379/SERVICE[/DB]`.
    Errors never repeat the URL: it may hold a password."""
    if not url.startswith(SENTINEL_SCHEME):
        raise ValueError("a Sentinel URL starts with redis+sentinel://")
    rest = url[len(SENTINEL_SCHEME) :].partition("?")[0]
    netloc, _, path = rest.partition("/")
    userinfo, _, host_list = netloc.rpartition("@")
    username = password = None
    if userinfo:
        user, has_password, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if has_password else None
    hosts = tuple(_host_port(item) for item in host_list.split(",") if item)
    parts = [part for part in path.split("/") if part]
    if not hosts or not parts or len(parts) > 2:
        raise ValueError("expected redis+sentinel://host:26379[,host:26379...]/SERVICE[/DB]")
    if len(parts) == 2 and not parts[1].isdigit():
        raise ValueError("the Sentinel URL's database must be a number")
    db = int(parts[1]) if len(parts) == 2 else 0
    return SentinelTarget(hosts, unquote(parts[0]), db, username, password)


def _host_port(item: str) -> tuple[str, int]:
    if item.startswith("["):  # [::1]:26379
        host, _, port = item[1:].partition("]")
        port = port.removeprefix(":")
    else:
        host, _, port = item.rpartition(":") if ":" in item else (item, "", "")
    if not host or (port and not port.isdigit()):
        raise ValueError("a Sentinel host is host[:port]")
    return host, int(port) if port else SENTINEL_PORT


def connect(cfg: RedisConfig) -> tuple[RedisClient, list[Closer]]:
    """The client, and what else must be closed with it (the Sentinel connections)."""
    options: dict[str, Any] = {
        "socket_timeout": cfg.socket_timeout_s,
        "socket_connect_timeout": cfg.connect_timeout_s,
        "health_check_interval": HEALTH_CHECK_INTERVAL_S,
        # One quick retry for a pooled connection Redis closed (a restart); none on a
        # timeout (this is what `retry_on_timeout=False` meant before redis-py 6).
        "retry": Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
    }
    if cfg.url.startswith(SENTINEL_SCHEME):
        target = parse_sentinel_url(cfg.url)
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            list(target.hosts),
            sentinel_kwargs={
                "socket_timeout": cfg.socket_timeout_s,
                "socket_connect_timeout": cfg.connect_timeout_s,
            },
            **options,
        )
        client = sentinel.master_for(
            target.service, db=target.db, username=target.username, password=target.password
        )
        return client, [sentinel.aclose]
    if cfg.cluster:
        return RedisCluster.from_url(cfg.url, **options), []
    return Redis.from_url(cfg.url, **options), []


def unavailable_reason(exc: BaseException) -> str:
    """Short and free of secrets: never the URL, never Redis's own message."""
    if isinstance(exc, RedisTimeoutError | TimeoutError):
        return "Redis did not answer in time"
    if isinstance(exc, AuthenticationError):
        return "Redis refused the credentials"
    if isinstance(exc, ReadOnlyError):
        return "Redis is read-only (a replica?)"
    if isinstance(exc, RedisConnectionError | OSError):
        return "cannot connect to Redis"
    return f"Redis error ({type(exc).__name__})"


@contextlib.contextmanager
def unavailable_on_error() -> Iterator[None]:
    """For callers that answer a client: Redis down is `StoreUnavailable` at once,
    never a hang or a 500."""
    try:
        yield
    except (RedisError, OSError) as exc:
        raise StoreUnavailable(unavailable_reason(exc)) from exc
