"""A fake OpenTelemetry collector on 127.0.0.1: OTLP/HTTP protobuf traces, recorded in memory.

`POST /v1/traces` bodies (optionally gzip or deflate compressed, as the exporter may send them)
are decoded as `ExportTraceServiceRequest`; every span is kept with its name, attributes, status,
scope and its resource's attributes, and the answer is 200 with an empty
`ExportTraceServiceResponse`. Anything else is a 404, and a body that does not decode is a 400
(and is counted, so a test can assert that none were refused).
"""

from __future__ import annotations

import gzip
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Status

TRACES_PATH = "/v1/traces"
_STATUS = {Status.STATUS_CODE_UNSET: "UNSET", Status.STATUS_CODE_OK: "OK", Status.STATUS_CODE_ERROR: "ERROR"}


@dataclass(frozen=True)
class RecordedSpan:
    name: str
    attributes: dict[str, Any]
    status: str  # UNSET, OK or ERROR
    status_message: str
    resource: dict[str, Any]
    scope: str
    trace_id: str
    span_id: str
    parent_span_id: str


@dataclass
class FakeCollector:
    url: str
    spans: list[RecordedSpan] = field(default_factory=list)
    requests: int = 0
    bad_requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def named(self, name: str) -> list[RecordedSpan]:
        with self.lock:
            return [span for span in self.spans if span.name == name]

    def names(self) -> set[str]:
        with self.lock:
            return {span.name for span in self.spans}


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    return getattr(value, kind)


def _attributes(pairs: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}
    pair: KeyValue
    for pair in pairs:
        found[pair.key] = _value(pair.value)
    return found


def decode(body: bytes) -> list[RecordedSpan]:
    """The spans of one ExportTraceServiceRequest body; DecodeError when it is not one."""
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    RecordedSpan(
                        name=span.name,
                        attributes=_attributes(span.attributes),
                        status=_STATUS.get(span.status.code, str(span.status.code)),
                        status_message=span.status.message,
                        resource=resource,
                        scope=scope_spans.scope.name,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                    )
                )
    return spans


def _handler(collector: FakeCollector) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return  # keep the test output quiet

        def _answer(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path.split("?")[0] != TRACES_PATH:
                self._answer(404, b"not found", "text/plain")
                return
            try:
                encoding = (self.headers.get("Content-Encoding") or "").lower()
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                spans = decode(body)
            except (DecodeError, OSError, zlib.error):
                with collector.lock:
                    collector.requests += 1
                    collector.bad_requests += 1
                self._answer(400, b"not an ExportTraceServiceRequest", "text/plain")
                return
            with collector.lock:
                collector.requests += 1
                collector.spans.extend(spans)
            self._answer(200, ExportTraceServiceResponse().SerializeToString(), "application/x-protobuf")

        def do_GET(self) -> None:
            self._answer(404, b"not found", "text/plain")

    return Handler


@contextmanager
def fake_collector() -> Iterator[FakeCollector]:
    """Serve a collector on a free port for the duration of the block."""
    collector = FakeCollector(url="")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(collector))
    collector.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="fake-otlp", daemon=True)
    thread.start()
    try:
        yield collector
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
