"""A test OTLP/HTTP collector: a loopback HTTP server that decodes `POST /v1/traces` with
opentelemetry-proto and keeps the spans and the raw bodies. `hold()` makes it stop answering
(a collector that accepts connections and never replies)."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


class Receiver:
    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.spans: list[Any] = []
        self.held = 0  # requests waiting while held
        self._release = threading.Event()
        self._release.set()
        self._lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if not receiver._release.is_set():
                    with receiver._lock:
                        receiver.held += 1
                    receiver._release.wait()
                    return  # the client gave up long ago; no answer at all
                request = ExportTraceServiceRequest.FromString(body)
                with receiver._lock:
                    receiver.bodies.append(body)
                    for resource in request.resource_spans:
                        for scope in resource.scope_spans:
                            receiver.spans.extend(scope.spans)
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()

    def hold(self) -> None:
        self._release.clear()

    def wait_for(self, condition: Any, timeout: float = 20.0) -> None:
        """Poll until `condition()` holds (spans arrive from the exporter's thread)."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError("the collector did not receive what was expected in time")
            time.sleep(0.02)


def attributes(span: Any) -> dict[str, Any]:
    return {a.key: value(a.value) for a in span.attributes}


def value(any_value: AnyValue) -> Any:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def refused_endpoint() -> str:
    """An address where nothing listens: connections are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"
