"""OpenTelemetry tracing, configured only by the standard OTEL_* environment variables.

`configure()` (called once by the composition root) installs an SDK tracer provider exporting
over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set
(service name, resource attributes and sampler from OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES,
OTEL_TRACES_SAMPLER...), and nothing otherwise: the API's no-op tracer then costs next to
nothing and leaves no exporter thread behind. OTEL_SDK_DISABLED=true turns it off as well.

Spans follow one command end to end: the HTTP server span, `command <Name>`, `event_store.append`;
consumers (projections, the Kafka relay, the live push, the job supervisor) continue from the
`traceparent` each event carries in its metadata, as links or as parents."""

from __future__ import annotations

import atexit
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Link, SpanContext, Tracer

TRACER_NAME = "flp"
MAX_LINKS = 64  # per span: enough to follow a batch's commands, bounded for big batches
_provider: Any = None


def enabled_by_environment() -> bool:
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def configure() -> bool:
    """Install the SDK provider if the environment asks for export; True if it did."""
    global _provider
    if _provider is not None or not enabled_by_environment():
        return _provider is not None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create())  # OTEL_SERVICE_NAME etc.; sampler from OTEL_TRACES_SAMPLER
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    atexit.register(provider.shutdown)  # the provider is process-wide: stopped with the process
    _provider = provider
    return True


def active() -> bool:
    """True once `configure()` installed an exporting provider."""
    return _provider is not None


def flush() -> None:
    """Export what the batch processor holds (no-op when tracing is off)."""
    if _provider is not None:
        _provider.force_flush()


_tracer: tuple[Any, Tracer] | None = None  # (the provider it came from, the tracer)


def tracer() -> Tracer:
    """flp's tracer, kept per provider: `trace.get_tracer` builds a new one on every call (an
    instrumentation scope, a lock), measurable on a path that starts three spans per command."""
    global _tracer
    provider = trace.get_tracer_provider()
    if _tracer is None or _tracer[0] is not provider:
        _tracer = (provider, provider.get_tracer(TRACER_NAME))
    return _tracer[1]


_NON_RECORDING = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
NO_SPAN = trace.INVALID_SPAN  # a span (and context manager) that records nothing and ends as a no-op


def recording() -> bool:
    """True when started spans would be recorded: an SDK provider is installed (by `configure()`,
    or by a test). Hot paths skip starting spans otherwise: the API's no-op tracer still builds a
    span, a context and a context manager per call (~8% of a command's time on the loop)."""
    return not isinstance(trace.get_tracer_provider(), _NON_RECORDING)


def current_traceparent() -> str | None:
    """The W3C traceparent of the current span (None when there is none)."""
    if not trace.get_current_span().get_span_context().is_valid:
        return None  # what the propagator would say, without asking it
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


def context_from(traceparent: str | None) -> Any:
    """An OpenTelemetry context whose parent is the span named by `traceparent`."""
    return propagate.extract({"traceparent": traceparent} if traceparent else {})


def parent(traceparent: str | None) -> Any:
    """The context to start a span in: the current span's when there is one (an HTTP server
    span), else the span `traceparent` names (a command sent by a consumer of the feed)."""
    if trace.get_current_span().get_span_context().is_valid or not traceparent:
        return None
    return context_from(traceparent)


@contextmanager
def continued(traceparent: str | None) -> Iterator[None]:
    """Run a block as if inside the span `traceparent` names: what it starts (commands a
    consumer sends) joins that trace."""
    if not traceparent:
        yield
        return
    token = otel_context.attach(context_from(traceparent))
    try:
        yield
    finally:
        otel_context.detach(token)


def span_context(traceparent: str | None) -> SpanContext | None:
    if not traceparent:
        return None
    ctx = trace.get_current_span(context_from(traceparent)).get_span_context()
    return ctx if ctx.is_valid else None


def links(metadatas: Iterable[Mapping[str, Any]]) -> list[Link]:
    """Links to the spans that caused these events (their stored traceparents), at most
    MAX_LINKS, each once."""
    out: list[Link] = []
    seen: set[str] = set()
    for metadata in metadatas:
        parent = metadata.get("traceparent")
        if not isinstance(parent, str) or parent in seen:
            continue
        seen.add(parent)
        ctx = span_context(parent)
        if ctx is not None:
            out.append(Link(ctx))
            if len(out) >= MAX_LINKS:
                break
    return out
