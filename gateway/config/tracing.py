"""`[tracing]`: spans over OTLP/HTTP, off unless the section names an endpoint.

Read at start, like the shadow workers: the exporter is the process's own. Tracing
needs the `otel` extra; a config that asks for it without the extra installed is a
config error at load, not a failure on the first request."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.config.source import Secret, Table

EXTRA_MISSING = (
    "tracing needs the 'otel' extra, which is not installed: "
    "pip install 'llm-canary-gateway[otel]' (or remove [tracing])"
)


@dataclass(frozen=True)
class TracingConfig:
    otlp_endpoint: str = ""  # e.g. http://collector:4318/v1/traces; empty: tracing off
    sample_ratio: float = 1.0  # of the traces that start here (a client's sampled flag wins)
    service_name: str = "llm-gateway"
    # Sent with every export (an API key of the tracing back end, often): never shown.
    headers: Mapping[str, Secret] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return bool(self.otlp_endpoint)


def tracing_section(t: Table) -> TracingConfig:
    d = TracingConfig()
    endpoint = t.text("otlp_endpoint", "")
    if endpoint and not endpoint.startswith(("http://", "https://")):
        raise t.loader.error(t.key("otlp_endpoint"), "must be an http:// or https:// URL")
    ratio = t.number("sample_ratio", d.sample_ratio)
    if ratio > 1:
        raise t.loader.error(t.key("sample_ratio"), "must be at most 1")
    service = t.text("service_name", d.service_name)
    if not service:
        raise t.loader.error(t.key("service_name"), "must not be empty")
    given = t.table("headers")
    headers = {name: Secret(given.text(name)) for name in given.data}
    given.done()
    t.done()
    if endpoint and not _extra_installed():
        raise t.loader.error(t.key("otlp_endpoint"), EXTRA_MISSING)
    return TracingConfig(endpoint, ratio, service, headers)


def _extra_installed() -> bool:
    """Looked up without importing it: the SDK and the exporter are both needed."""
    try:
        return all(
            importlib.util.find_spec(name) is not None
            for name in ("opentelemetry.sdk", "opentelemetry.exporter.otlp.proto.http")
        )
    except ModuleNotFoundError:  # a parent package is missing
        return False
