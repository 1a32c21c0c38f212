"""The console's fixtures: headless Chromium (Debian's, driven by Playwright), started
once for the console's tests, and for each test a fresh gateway running as a real
server in front of a fake upstream, and a fresh browser context (its own session
storage). All of it runs on one event loop shared by the console's tests, the one
the browser's driver is connected to (see `pytestmark` in each module)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest_asyncio
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, async_playwright

from gateway.app import create_app
from gateway.config.loader import load_config
from gateway.providers.mock_server import MOCK_STATS, MockServerOptions, create_mock_app
from tests.conftest import Gateway, Upstream, key_sha256
from tests.console.support import CHROMIUM, Console, console_config

LOOP = "session"


@pytest_asyncio.fixture(scope="session", loop_scope=LOOP)
async def browser() -> AsyncIterator[Browser]:
    # A missing browser is a failure, never a skip: `make services` installs it.
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: `apt-get install chromium`"
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, chromium_sandbox=False
        )
        yield launched
        await launched.close()


@pytest_asyncio.fixture(loop_scope=LOOP)
async def upstream() -> AsyncIterator[Upstream]:
    app = create_mock_app(MockServerOptions())
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield Upstream(server, app[MOCK_STATS])
    await server.close()


@pytest_asyncio.fixture(loop_scope=LOOP)
async def gateway(
    upstream: Upstream, write_config: Callable[[str], Path]
) -> AsyncIterator[Gateway]:
    text = console_config(upstream.base_url).replace("{key_sha256}", key_sha256())
    app = create_app(load_config(write_config(text)))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield Gateway(server, app)
    await server.close()


@pytest_asyncio.fixture(loop_scope=LOOP)
async def console(browser: Browser, gateway: Gateway) -> AsyncIterator[Console]:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield Console(gateway, page)
    await context.close()
    assert not errors, f"uncaught errors in the page: {errors}"
