"""Shared test harness: the gateway built from a TOML text, started on loopback, driven
with the official OpenAI SDK; fake providers are real HTTP servers on loopback."""

from __future__ import annotations

import hashlib
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.app import create_app
from gateway.config.loader import load_config
from gateway.providers.mock_server import MOCK_STATS, MockServerOptions, MockStats, create_mock_app

pytest_plugins = ["tests.redis_fixtures"]

CLIENT_TOKEN = "sk-client-secret-token"

AiohttpServer = Callable[..., Awaitable[TestServer]]


@dataclass
class Gateway:
    server: TestServer
    app: web.Application

    @property
    def base_url(self) -> str:
        return str(self.server.make_url("/v1"))

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    def client(self, api_key: str = CLIENT_TOKEN, **kwargs: Any) -> openai.AsyncOpenAI:
        # The router is the only retrier: the SDK's own retries stay off.
        return openai.AsyncOpenAI(base_url=self.base_url, api_key=api_key, max_retries=0, **kwargs)


@dataclass
class Upstream:
    server: TestServer
    stats: MockStats

    @property
    def base_url(self) -> str:
        return str(self.server.make_url("/v1"))

    @property
    def root_url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")


@pytest.fixture
async def upstream_factory(aiohttp_server: AiohttpServer) -> Callable[..., Awaitable[Upstream]]:
    """A fake provider speaking OpenAI's and Anthropic's wire formats on loopback."""

    async def start(**options: Any) -> Upstream:
        app = create_mock_app(MockServerOptions(**options))
        server = await aiohttp_server(app)
        return Upstream(server, app[MOCK_STATS])

    return start


@pytest.fixture
async def upstream(upstream_factory: Callable[..., Awaitable[Upstream]]) -> Upstream:
    return await upstream_factory()


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str], Path]:
    def write(text: str, name: str = "gateway.toml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path

    return write


@pytest.fixture
async def gateway_factory(
    aiohttp_server: AiohttpServer, write_config: Callable[[str], Path]
) -> AsyncIterator[Callable[[str], Awaitable[Gateway]]]:
    """Start a gateway from TOML text; `{key_sha256}` is replaced by the test key's hash."""

    async def start(text: str) -> Gateway:
        path = write_config(text.replace("{key_sha256}", key_sha256()))
        app = create_app(load_config(path))
        server = await aiohttp_server(app)
        return Gateway(server, app)

    yield start


def key_sha256(token: str = CLIENT_TOKEN) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def basic_config(upstream_url: str, extra: str = "") -> str:
    """One OpenAI-compatible provider on the fake upstream, a key, two routes."""
    return f"""
        [server]
        request_timeout_s = 30

        [providers.fake]
        type = "openai"
        base_url = "{upstream_url}"
        api_key = "sk-upstream-secret"

        [models.chat]
        targets = [{{ provider = "fake", model = "mock-gpt" }}]

        [models.embed]
        targets = [{{ provider = "fake", model = "mock-embed" }}]

        [[keys]]
        name = "test-app"
        sha256 = "{{key_sha256}}"
        {extra}
    """
