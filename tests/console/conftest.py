"""The console's fixtures: headless Chromium (Debian's, driven by Playwright) and a
page on a gateway that runs as a real server in front of a fake upstream."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from playwright.async_api import Browser, async_playwright

from tests.conftest import Gateway, Upstream
from tests.console.support import CHROMIUM, Console, console_config

GatewayFactory = Callable[[str], Awaitable[Gateway]]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    # A missing browser is a failure, never a skip: `make services` installs it.
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: `apt-get install chromium`"
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, chromium_sandbox=False
        )
        yield launched
        await launched.close()


@pytest.fixture
async def gateway(gateway_factory: GatewayFactory, upstream: Upstream) -> Gateway:
    return await gateway_factory(console_config(upstream.base_url))


@pytest.fixture
async def console(browser: Browser, gateway: Gateway) -> AsyncIterator[Console]:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield Console(gateway, page)
    await context.close()
    assert not errors, f"uncaught errors in the page: {errors}"
