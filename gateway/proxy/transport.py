"""How an upstream request travels: over HTTP on the process's one pooled
`ClientSession`, or in-process for the mock provider. The pipeline sees one
`UpstreamResponse` shape either way, and every failure as an `UpstreamError`."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping
from typing import Protocol

import aiohttp

from gateway.errors import UpstreamError
from gateway.providers.base import UpstreamRequest


class UpstreamResponse(Protocol):
    status: int
    headers: Mapping[str, str]

    async def read(self) -> bytes: ...

    async def next_chunk(self) -> bytes:
        """The next body bytes as they arrive, b"" at the end; a cut connection raises
        `UpstreamError(stream_cut)`."""
        ...

    def release(self) -> None: ...


class Transport(Protocol):
    async def send(self, request: UpstreamRequest, connect_timeout_s: float) -> UpstreamResponse:
        """Until the response headers; raises `UpstreamError` (connect, server_error)."""
        ...


class Slots:
    """At most `limit` requests in flight to one provider. A free slot costs an integer
    check; when none is free, waiters are served first come, first served."""

    __slots__ = ("_free", "_waiters")

    def __init__(self, limit: int) -> None:
        self._free = limit
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a slot while being cancelled: pass it on
            else:
                self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot goes straight to the next waiter
                return
        self._free += 1


class HttpResponse:
    __slots__ = ("_release_slot", "_response", "headers", "status")

    def __init__(self, response: aiohttp.ClientResponse, release_slot: Slots) -> None:
        self._response = response
        self._release_slot = release_slot
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers

    async def read(self) -> bytes:
        try:
            return await self._response.read()
        except (aiohttp.ClientError, ConnectionError) as exc:
            raise UpstreamError(
                "stream_cut", f"provider connection broke: {type(exc).__name__}"
            ) from None

    async def next_chunk(self) -> bytes:
        try:
            return await self._response.content.readany()
        except (aiohttp.ClientError, ConnectionError) as exc:
            raise UpstreamError(
                "stream_cut", f"provider stream broke: {type(exc).__name__}"
            ) from None

    def release(self) -> None:
        if self._response is not None:
            # close(), not release(): an unfinished body must not go back to the pool.
            if self._response.content.at_eof():
                self._response.release()
            else:
                self._response.close()
            self._release_slot.release()
            self._response = None  # type: ignore[assignment]


class HttpTransport:
    """One provider's HTTP client: a share of the process's pooled session, with at
    most `max_connections` requests in flight."""

    def __init__(self, session: aiohttp.ClientSession, max_connections: int) -> None:
        self._session = session
        self._slots = Slots(max_connections)
        self._timeout = aiohttp.ClientTimeout(total=None)  # made again only on a change

    async def send(self, request: UpstreamRequest, connect_timeout_s: float) -> HttpResponse:
        timeout = self._timeout
        if timeout.connect != connect_timeout_s:
            timeout = self._timeout = aiohttp.ClientTimeout(
                total=None, sock_connect=connect_timeout_s, connect=connect_timeout_s
            )
        await self._slots.acquire()
        try:
            response = await self._session.post(
                request.url,
                data=request.body,
                headers=request.headers,
                timeout=timeout,
                allow_redirects=False,
            )
        except BaseException as exc:
            self._slots.release()
            if isinstance(exc, aiohttp.ClientConnectorError):
                raise UpstreamError(
                    "connect", f"cannot connect to provider: {exc.strerror}"
                ) from None
            if isinstance(exc, (aiohttp.ConnectionTimeoutError, TimeoutError)):
                raise UpstreamError("connect", "provider connect timed out") from None
            if isinstance(exc, (aiohttp.ClientError, ConnectionError)):
                raise UpstreamError(
                    "server_error", f"provider closed the connection: {type(exc).__name__}"
                ) from None
            raise
        return HttpResponse(response, self._slots)
