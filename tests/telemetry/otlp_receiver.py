"""A real OTLP/HTTP trace receiver on loopback: `POST /v1/traces` with protobuf bodies,
decoded with opentelemetry-proto, as a collector would."""

from __future__ import annotations

import gzip
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

# The protobuf enum's numbers (opentelemetry.proto.trace.v1.Span.SpanKind).
INTERNAL, SERVER, CLIENT = 1, 2, 3


@dataclass
class Received:
    """One span as exported, with its resource's attributes."""

    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]
    resource: dict[str, Any]
    status_code: int  # 2: error


@dataclass
class Receiver:
    spans: list[Received] = field(default_factory=list)
    headers: list[Mapping[str, str]] = field(default_factory=list)

    def find(self, test: Callable[[Received], bool]) -> list[Received]:
        return [s for s in self.spans if test(s)]

    def one(self, test: Callable[[Received], bool]) -> Received:
        (found,) = self.find(test)
        return found

    def app(self) -> web.Application:
        async def traces(request: web.Request) -> web.Response:
            raw = await request.read()
            if request.headers.get("Content-Encoding") == "gzip":
                raw = gzip.decompress(raw)
            self.headers.append(request.headers.copy())
            export = ExportTraceServiceRequest.FromString(raw)
            for resource_spans in export.resource_spans:
                resource = _attributes(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    self.spans.extend(_received(s, resource) for s in scope_spans.spans)
            body = ExportTraceServiceResponse().SerializeToString()
            return web.Response(body=body, content_type="application/x-protobuf")

        app = web.Application()
        app.router.add_post("/v1/traces", traces)
        return app


def _received(span: Span, resource: dict[str, Any]) -> Received:
    return Received(
        span.name,
        span.kind,
        span.trace_id.hex(),
        span.span_id.hex(),
        span.parent_span_id.hex(),
        _attributes(span.attributes),
        resource,
        span.status.code,
    )


def _attributes(pairs: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in pairs}


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None
