"""Slow and hostile clients: cut off by timeouts, refused cleanly, and nothing leaks
(tasks, file descriptors) after floods and abrupt resets."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import CLIENT_TOKEN, Gateway, Upstream, basic_config

GatewayFactory = Callable[[str], Awaitable[Gateway]]

CONFIG = """
[server]
body_timeout_s = 0.3
[providers.mock]
type = "mock"
[models.chat]
targets = [{ provider = "mock", model = "demo" }]
[models.long]
targets = [{ provider = "mock", model = "words=20000" }]
[models.slow-stream]
targets = [{ provider = "mock", model = "chunk_delay=50+words=40" }]
[[keys]]
name = "k"
sha256 = "{key_sha256}"
"""


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def settle(condition: Callable[[], bool], within_s: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not condition():
        assert loop.time() < deadline, "did not settle in time"
        await asyncio.sleep(0.05)


async def chat_ok(gw: Gateway) -> bool:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            gw.url("/v1/chat/completions"),
            headers={"Authorization": f"Bearer {CLIENT_TOKEN}"},
            json={"model": "chat", "messages": [{"role": "user", "content": "x"}]},
        ) as r,
    ):
        return r.status == 200


async def raw(gw: Gateway) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    assert gw.server.port is not None
    return await asyncio.open_connection("127.0.0.1", gw.server.port)


async def test_a_body_that_trickles_in_gets_408(gateway_factory: GatewayFactory) -> None:
    gw = await gateway_factory(CONFIG)
    reader, writer = await raw(gw)
    writer.write(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: Bearer " + CLIENT_TOKEN.encode() + b"\r\n"
        b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"mod'
    )
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(4096), timeout=10)
    assert answer.startswith(b"HTTP/1.1 408")
    assert b'"code":"request_timeout"' in answer
    writer.close()


async def test_huge_headers_and_deep_json_are_refused_cleanly(
    gateway_factory: GatewayFactory,
) -> None:
    gw = await gateway_factory(CONFIG)
    headers = {"Authorization": f"Bearer {CLIENT_TOKEN}", "X-Big": "x" * 20_000}
    async with aiohttp.ClientSession() as session:
        async with session.post(gw.url("/v1/chat/completions"), headers=headers, json={}) as r:
            assert r.status == 400
        deep = b"[" * 5000 + b"]" * 5000
        async with session.post(
            gw.url("/v1/chat/completions"),
            data=deep,
            headers={"Authorization": f"Bearer {CLIENT_TOKEN}"},
        ) as r:
            assert r.status == 400
            assert (await r.json())["error"]["code"] == "invalid_json"
        # Still serving.
        async with session.post(
            gw.url("/v1/chat/completions"),
            headers={"Authorization": f"Bearer {CLIENT_TOKEN}"},
            json={"model": "chat", "messages": [{"role": "user", "content": "x"}]},
        ) as r:
            assert r.status == 200


@pytest.mark.parametrize("depth", [129, 254, 255, 1000])
async def test_json_nested_too_deep_is_a_400_before_any_upstream_call(
    gateway_factory: GatewayFactory,
    upstream: Upstream,
    capfd: pytest.CaptureFixture[str],
    depth: int,
) -> None:
    gw = await gateway_factory(basic_config(upstream.base_url))
    nested = b'{"a":' * (depth - 2) + b"1" + b"}" * (depth - 2)
    body = b'{"model":"chat","messages":[{"role":"user","content":"x","extra":' + nested + b"}]}"
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            gw.url("/v1/chat/completions"),
            data=body,
            headers={"Authorization": f"Bearer {CLIENT_TOKEN}"},
        ) as r,
    ):
        assert r.status == 400
        error = (await r.json())["error"]
    assert error["code"] == "invalid_json" and "128 levels" in error["message"]
    assert upstream.stats.total == 0
    assert "Traceback" not in "".join(capfd.readouterr())


async def test_json_nested_as_deep_as_allowed_is_served(
    gateway_factory: GatewayFactory, upstream: Upstream
) -> None:
    gw = await gateway_factory(basic_config(upstream.base_url))
    nested = b'{"a":' * 125 + b"1" + b"}" * 125  # with the body and a message: 128 levels
    body = b'{"model":"chat","messages":[{"role":"user","content":"x","extra":' + nested + b"}]}"
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            gw.url("/v1/chat/completions"),
            data=body,
            headers={"Authorization": f"Bearer {CLIENT_TOKEN}"},
        ) as r,
    ):
        assert r.status == 200
    assert upstream.stats.total == 1


async def test_malformed_http_is_one_debug_line_and_no_traceback(
    gateway_factory: GatewayFactory,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    gw = await gateway_factory(CONFIG)
    caplog.set_level(logging.DEBUG, logger="aiohttp.server")
    malformed = [
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"\x00\x01garbage\r\n\r\n",
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
        b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
    ]
    for request in malformed:
        reader, writer = await raw(gw)
        writer.write(request)
        assert (await reader.read(100)).startswith(b"HTTP/1.0 400")
        writer.close()
    server = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert len(server) == len(malformed)
    assert all(r.levelno == logging.DEBUG and not r.exc_info for r in server)
    assert all("\n" not in r.getMessage() for r in server)
    assert "Traceback" not in "".join(capfd.readouterr())
    assert await chat_ok(gw)


async def test_a_reader_too_slow_for_the_deadline_is_logged_as_the_deadline(
    gateway_factory: GatewayFactory, capfd: pytest.CaptureFixture[str]
) -> None:
    """A client that stops reading a long stream: at the deadline the stream ends, the
    connection is closed when the client cannot even take the error event, and the
    record says `deadline` (504), not that the client went away."""
    gw = await gateway_factory(CONFIG.replace("body_timeout_s = 0.3", "request_timeout_s = 1"))
    assert gw.server.port is not None
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a window that fills fast
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", gw.server.port))
    _, writer = await asyncio.open_connection(sock=sock)
    body = b'{"model": "long", "stream": true, "messages": [{"role": "user", "content": "x"}]}'
    writer.write(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {CLIENT_TOKEN}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    await writer.drain()  # and then never read

    seen: list[str] = []

    def logged() -> bool:
        out = capfd.readouterr().out
        seen.extend(line for line in out.splitlines() if '"route":"long"' in line)
        return bool(seen)

    await settle(logged)
    writer.close()
    line = seen[0]
    assert '"status":504' in line and '"error":"deadline"' in line
    assert "client_disconnected" not in line


async def test_floods_and_abrupt_resets_leak_no_tasks_or_descriptors(
    gateway_factory: GatewayFactory,
) -> None:
    gw = await gateway_factory(CONFIG)
    assert await chat_ok(gw)  # warms up pools and lazy imports first
    await asyncio.sleep(0)
    tasks_before, fds_before = len(asyncio.all_tasks()), open_fds()

    # 200 connections from one client at once: half send nothing, half a partial request;
    # then every one is reset (RST, not FIN).
    conns = [await raw(gw) for _ in range(200)]
    for i, (_, writer) in enumerate(conns):
        if i % 2:
            writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
    # 50 streams cut by a reset half-way.
    body = b'{"model":"slow-stream","stream":true,"messages":[{"role":"user","content":"x"}]}'
    streams = []
    for _ in range(50):
        reader, writer = await raw(gw)
        writer.write(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            b"Authorization: Bearer " + CLIENT_TOKEN.encode() + b"\r\n"
            b"Content-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        streams.append((reader, writer))
    for reader, _ in streams:
        assert (await asyncio.wait_for(reader.readuntil(b"data: "), 10)).startswith(b"HTTP/1.1 200")
    for _, writer in [*conns, *streams]:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    await settle(lambda: len(asyncio.all_tasks()) <= tasks_before + 2)
    await settle(lambda: open_fds() <= fds_before + 2)
    assert await chat_ok(gw)


@pytest.mark.timeout(60)
async def test_slow_headers_are_cut_off(tmp_path: Path) -> None:
    """A connection that never finishes its headers is closed (slowloris)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = tmp_path / "gateway.toml"
    path.write_text(
        f"[server]\nport = {port}\nkeepalive_timeout_s = 0.5\n"
        f'allow_unauthenticated = true\n[providers.mock]\ntype = "mock"\n'
        f'[models.chat]\ntargets = [{{ provider = "mock", model = "demo" }}]\n'
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "serve",
        "--config",
        str(path),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while True:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                break
            except OSError:
                assert loop.time() < deadline
                await asyncio.sleep(0.05)
        writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")  # and nothing more
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), timeout=10) == b""  # closed by the server
        writer.close()
    finally:
        process.terminate()
        await process.wait()
