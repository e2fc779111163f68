"""OpenTelemetry tracing, on when the standard `OTEL_EXPORTER_OTLP_*` settings are present.

Spans: `tool <name>` around every MCP tool call the server answers (any client), and, in
Shipway's own agents, `chat <model>` around every model call (with the gen_ai token counts) and
`execute_tool <name>` around each tool call they make. The exporter, endpoint, headers and
batching are configured the standard way (OTEL_EXPORTER_OTLP_ENDPOINT, _HEADERS, _PROTOCOL,
OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_BSP_*; OTEL_SDK_DISABLED=true or
OTEL_TRACES_EXPORTER=none turn it off); without an endpoint nothing is set up and the spans cost nothing.
"""

from __future__ import annotations

import atexit
import os

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from mcp_server import __version__
from mcp_server.errors import ConfigError

_ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
_PROTOCOLS = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
_configured = False


def _exporter() -> SpanExporter:
    variable = next((v for v in _PROTOCOLS if os.environ.get(v)), _PROTOCOLS[-1])
    protocol = os.environ.get(variable, "http/protobuf")
    if protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
        except ImportError as exc:
            raise ConfigError("OTEL_EXPORTER_OTLP_PROTOCOL=grpc needs opentelemetry-exporter-otlp-proto-grpc; "
                              "install it, or use http/protobuf") from exc  # fmt: skip
        return GrpcExporter()
    if protocol != "http/protobuf":
        raise ConfigError(f"{variable}={protocol!r} is not supported; use http/protobuf or grpc")
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def setup_tracing() -> bool:
    """Install an OTLP exporter when one is configured; True when tracing is on."""
    global _configured
    if _configured:
        return True
    off = os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true" or os.environ.get("OTEL_TRACES_EXPORTER") == "none"
    if off or not any(os.environ.get(k) for k in _ENDPOINTS):
        return False
    attributes = {"service.version": __version__}
    # Resource.create reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES itself; name us only when neither does.
    if not os.environ.get("OTEL_SERVICE_NAME") and "service.name=" not in os.environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    ):
        attributes["service.name"] = "shipway"
    resource = Resource.create(attributes)
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(_exporter()))
    trace.set_tracer_provider(provider)
    atexit.register(provider.shutdown)  # flushes what is still batched
    _configured = True
    return True
