"""Everything a request needs, built from one config and swapped whole on reload.

A handler reads `RuntimeHolder.current` once and uses that `Runtime` to the end, so a
reload never changes a request half-way. Transports and circuit breakers are kept
across reloads for every provider whose settings did not change."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

import aiohttp

from gateway.config.loader import ClientKey, GatewayConfig, ProviderConfig
from gateway.providers.anthropic import AnthropicAdapter
from gateway.providers.base import Adapter
from gateway.providers.mock import MockTransport
from gateway.providers.openai import AzureAdapter, OpenAIAdapter
from gateway.proxy.resilience import CircuitBreaker, RetryBudget
from gateway.proxy.transport import HttpTransport, Transport
from gateway.store.keys import KeySnapshot
from gateway.telemetry.metrics import Metrics

ADAPTERS: Mapping[str, Adapter] = {
    "openai": OpenAIAdapter(),
    "azure": AzureAdapter(),
    "anthropic": AnthropicAdapter(),
    "mock": OpenAIAdapter(),  # the mock speaks OpenAI's format, in-process
}


@dataclass(frozen=True)
class ProviderRuntime:
    config: ProviderConfig
    adapter: Adapter
    transport: Transport


class KeyRing:
    """Client keys by the sha256 of their token: the config's, then the store's (a
    `KeySnapshot` shared by every runtime and swapped whole as the store changes).

    One dictionary lookup each, on the digest rather than the token: all its timing
    can tell is how a digest compares with the stored ones, which does not help to
    make a token (that would take a sha256 preimage), so the cost stays flat however
    many keys there are."""

    def __init__(self, keys: tuple[ClientKey, ...], stored: KeySnapshot | None = None) -> None:
        self._config = {bytes.fromhex(k.sha256): k for k in keys}
        self._stored = stored if stored is not None else KeySnapshot()

    def find(self, token: str) -> ClientKey | None:
        digest = hashlib.sha256(token.encode()).digest()
        return self._config.get(digest) or self._stored.by_digest.get(digest)


class UpstreamParts:
    """What outlives one config: transports (connection pools) and circuit breakers,
    keyed by the provider settings that made them, routes' retry budgets, and the
    client keys kept in the store (they change apart from the config)."""

    def __init__(self, session: aiohttp.ClientSession, metrics: Metrics) -> None:
        self.session = session
        self.metrics = metrics
        self._transports: dict[ProviderConfig, Transport] = {}
        self._breakers: dict[tuple[ProviderConfig, str], CircuitBreaker] = {}
        self._budgets: dict[tuple[str, float], RetryBudget] = {}
        self.key_snapshot = KeySnapshot()

    def transport(self, provider: ProviderConfig) -> Transport:
        found = self._transports.get(provider)
        if found is None:
            found = (
                MockTransport()
                if provider.type == "mock"
                else HttpTransport(self.session, provider.max_connections)
            )
            self._transports[provider] = found
        return found

    def breaker(self, provider: ProviderConfig, model: str) -> CircuitBreaker:
        found = self._breakers.get((provider, model))
        if found is None:
            found = self._breakers[(provider, model)] = CircuitBreaker(provider)
        return found

    def budget(self, route: str, ratio: float) -> RetryBudget:
        found = self._budgets.get((route, ratio))  # a reload with a new ratio: a new budget
        if found is None:
            found = self._budgets[(route, ratio)] = RetryBudget(ratio)
        return found

    def breakers(self) -> list[tuple[ProviderConfig, str, CircuitBreaker]]:
        return [(p, m, b) for (p, m), b in self._breakers.items()]

    def forget_unused(self, config: GatewayConfig) -> None:
        live = set(config.providers.values())
        for provider in [p for p in self._transports if p not in live]:
            del self._transports[provider]
        for provider, model in [k for k in self._breakers if k[0] not in live]:
            del self._breakers[(provider, model)]
            # A target that is gone must not keep an old circuit state (and its alert).
            with contextlib.suppress(KeyError):
                self.metrics.circuit_state.remove(provider.name, model)


@dataclass(frozen=True)
class Runtime:
    config: GatewayConfig
    providers: Mapping[str, ProviderRuntime]
    keys: KeyRing
    parts: UpstreamParts
    # (provider, model) → breaker: two strings hash faster than a whole ProviderConfig.
    _breakers: dict[tuple[str, str], CircuitBreaker] = field(default_factory=dict)

    def breaker(self, provider: ProviderConfig, model: str) -> CircuitBreaker:
        found = self._breakers.get((provider.name, model))
        if found is None:
            found = self._breakers[(provider.name, model)] = self.parts.breaker(provider, model)
        return found


def build_runtime(config: GatewayConfig, parts: UpstreamParts) -> Runtime:
    providers = {
        name: ProviderRuntime(p, ADAPTERS[p.type], parts.transport(p))
        for name, p in config.providers.items()
    }
    parts.forget_unused(config)
    keys = KeyRing(config.keys, parts.key_snapshot)
    return Runtime(config=config, providers=providers, keys=keys, parts=parts)


class RuntimeHolder:
    """The current runtime; replaced whole, never edited."""

    def __init__(self, runtime: Runtime) -> None:
        self.current = runtime
