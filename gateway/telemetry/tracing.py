"""Spans of the gateway's calls, exported over OTLP/HTTP.

Imported only when `[tracing]` names an endpoint (see `gateway.app`): with tracing off
nothing of OpenTelemetry is loaded, and the request path pays an `is None` check.

A `/v1/` request is a SERVER span, its context taken from the client's `traceparent`.
Each attempt at a provider is a CLIENT span under it, with the OpenTelemetry GenAI
attributes; the attempt's own context goes upstream, so the provider's spans are its
children. A shadow copy is an INTERNAL span under the request it mirrors; a test run's
case or a replayed request is a root span of its own, naming its run. Spans are
exported in batches by the SDK's thread, off the event loop; `shutdown` flushes them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import orjson
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from gateway import __version__
from gateway.config.loader import ProviderConfig, Target, TracingConfig
from gateway.errors import UpstreamError
from gateway.telemetry.recorder import RequestRecord

# gen_ai.operation.name by ingress; the Responses and Messages APIs are chats inside.
OPERATIONS = {
    "/v1/embeddings": "embeddings",
    "/v1/completions": "text_completion",
}
# gen_ai.provider.name by provider type (the semantic conventions' own names).
PROVIDER_NAMES = {"openai": "openai", "azure": "azure.ai.openai", "anthropic": "anthropic"}
_PROPAGATOR = TraceContextTextMapPropagator()  # stateless


class _Attempted(Protocol):
    """What an attempt span needs of a call (a `gateway.proxy.call.Call`)."""

    path: str
    trace: dict[str, str] | None


class _Provider(Protocol):
    @property
    def config(self) -> ProviderConfig: ...


C = TypeVar("C", bound=_Attempted)
P = TypeVar("P", bound=_Provider)
T = TypeVar("T")
Attempt = Callable[[C, P, Target, float], Awaitable[T]]


class Tracing:
    """The process's tracer provider and exporter; `shutdown` when the app stops."""

    def __init__(self, config: TracingConfig) -> None:
        resource = Resource.create(
            {"service.name": config.service_name, "service.version": __version__}
        )
        sampler = ParentBased(TraceIdRatioBased(config.sample_ratio))
        self._provider = TracerProvider(resource=resource, sampler=sampler)
        headers = {name: secret.reveal() for name, secret in config.headers.items()}
        exporter = OTLPSpanExporter(endpoint=config.otlp_endpoint, headers=headers)
        self._provider.add_span_processor(BatchSpanProcessor(exporter))
        self.tracer = self._provider.get_tracer("gateway", __version__)
        self._servers: dict[str, tuple[str, int | None]] = {}  # by base URL

    def shutdown(self) -> None:
        """Exports what is left (blocking: run it in a thread)."""
        self._provider.shutdown()

    def server(self, method: str, route: str, path: str, given: Mapping[str, str]) -> CallTrace:
        """A `/v1/` request's span, continuing the client's trace when it sent one."""
        parent = _PROPAGATOR.extract(given)
        span = self.tracer.start_span(
            f"{method} {route}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "http.route": route, "url.path": path},
        )
        return CallTrace(self, span, ends_with_record=False)

    def shadow(self, primary: CallTrace | None, path: str) -> CallTrace:
        """A shadow copy's span: a child of the request it mirrors."""
        context = trace.set_span_in_context(primary.span) if primary is not None else None
        span = self.tracer.start_span(
            "shadow", context=context, kind=SpanKind.INTERNAL, attributes={"url.path": path}
        )
        return CallTrace(self, span, ends_with_record=True)

    def own(self, role: str, run_id: str, prompt: str, version: str) -> CallTrace:
        """A test run's case or a replayed request: a root span naming its run."""
        attributes = {"gateway.role": role, "gateway.prompt": prompt, "gateway.version": version}
        if run_id:
            attributes["gateway.run.id"] = run_id
        span = self.tracer.start_span(
            role,
            context=trace.set_span_in_context(trace.INVALID_SPAN),  # a new trace
            kind=SpanKind.INTERNAL,
            attributes=attributes,
        )
        return CallTrace(self, span, ends_with_record=True)

    def server_address(self, base_url: str) -> tuple[str, int | None]:
        found = self._servers.get(base_url)
        if found is None:
            parts = urlsplit(base_url)
            found = self._servers[base_url] = (parts.hostname or "", parts.port)
        return found


class CallTrace:
    """The spans of one call: its own, and one per attempt at a provider."""

    __slots__ = ("_answering", "_tracing", "ends_with_record", "span")

    def __init__(self, tracing: Tracing, span: Span, ends_with_record: bool) -> None:
        self._tracing = tracing
        self.span = span
        self.ends_with_record = ends_with_record  # else the server's middleware ends it
        self._answering: Span | None = None  # the attempt that answered, ended with the record

    @property
    def trace_id(self) -> str:
        return format(self.span.get_span_context().trace_id, "032x")

    def traced(self, attempt: Attempt[C, P, T]) -> Attempt[C, P, T]:
        """`attempt` with a span of its own: its context goes upstream."""

        async def traced_attempt(call: C, provider: P, target: Target, timeout_s: float) -> T:
            span = self._attempt_span(call.path, provider.config, target)
            sent: dict[str, str] = {}
            _PROPAGATOR.inject(sent, context=trace.set_span_in_context(span))
            call.trace = sent  # `Call.stamp` sends it with this attempt
            try:
                result = await attempt(call, provider, target, timeout_s)
            except UpstreamError as error:
                _failed(span, error.reason)  # no message: a provider's may quote our key
                span.end()
                raise
            except BaseException as error:
                _failed(span, type(error).__qualname__)
                span.end()
                raise
            answered = _answer_model(result)
            if answered:
                span.set_attribute("gen_ai.response.model", answered)
            self._answering = span  # a stream's usage is known at its end: with the record
            return result

        return traced_attempt

    def _attempt_span(self, path: str, provider: ProviderConfig, target: Target) -> Span:
        operation = OPERATIONS.get(path, "chat")
        host, port = self._tracing.server_address(provider.base_url)
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": PROVIDER_NAMES.get(provider.type, provider.type),
            "gen_ai.request.model": target.model,
            "gateway.provider": provider.name,
        }
        if host:
            attributes["server.address"] = host
            if port is not None:
                attributes["server.port"] = port
        return self._tracing.tracer.start_span(
            f"{operation} {target.model}",
            context=trace.set_span_in_context(self.span),
            kind=SpanKind.CLIENT,
            attributes=attributes,
        )

    def close(self, record: RequestRecord) -> None:
        """The call is over: its answering attempt's span ends with the usage; the
        call's own span takes what the record says."""
        usage = record.usage
        span = self._answering
        if span is not None:
            self._answering = None
            if usage is not None:
                span.set_attribute("gen_ai.usage.input_tokens", usage.input_tokens)
                span.set_attribute("gen_ai.usage.output_tokens", usage.output_tokens)
            if record.error:  # a stream that broke after it started
                _failed(span, record.error)
            span.end()
        main = self.span
        main.set_attributes(
            {
                "gateway.request_id": record.request_id,
                "gateway.role": record.role,
                "gateway.route": record.route,
                "gateway.attempts": record.attempts,
            }
        )
        for name, value in (
            ("gateway.prompt", record.prompt),
            ("gateway.version", record.version),
            ("gateway.key", record.key),  # the key's name, never its token
            ("gateway.primary_request_id", record.primary_request_id),
            ("gateway.provider", record.provider),
        ):
            if value:
                main.set_attribute(name, value)
        if self.ends_with_record:
            if record.status >= 400 or record.error:
                _failed(main, record.error or str(record.status))
            main.end()

    def end(self, status: int) -> None:
        """The server span, when the answer has gone (a stream's included)."""
        span = self.span
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            _failed(span, str(status))
        span.end()


def _failed(span: Span, kind: str) -> None:
    span.set_attribute("error.type", kind)
    span.set_status(StatusCode.ERROR)


def _answer_model(result: object) -> str:
    """The model a non-streamed answer names (an OpenAI-shaped body comes first)."""
    if isinstance(result, tuple) and result and isinstance(result[0], bytes):
        try:
            found = orjson.loads(result[0])
        except orjson.JSONDecodeError:
            return ""
        model = found.get("model") if isinstance(found, dict) else None
        return model if isinstance(model, str) else ""
    return ""
