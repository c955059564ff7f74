#!/usr/bin/env python3
"""Trace-export receiving peer for interop tests.

Usage: export_peer.py MODE EXPECTED_SPANS TIMEOUT_SECONDS [--status CODE] [--fail-first N]

MODE:
  udp   Jaeger agent: Thrift COMPACT oneway `Agent.emitBatch` message per UDP datagram.
  http  Jaeger collector: Thrift BINARY `Batch` struct (no envelope) as HTTP POST body.
  otlp  OTLP/HTTP: protobuf `ExportTraceServiceRequest` as HTTP POST body.

Prints `PORT <n>` first, then receives until EXPECTED_SPANS spans were decoded or
TIMEOUT_SECONDS passed, then prints one JSON line and exits 0.  Logs go to stderr.
See README.md in this directory for the output format.
"""

import argparse
import gzip
import http.server
import json
import logging
import math
import socket
import sys
import threading
import time
import zlib

from thrift.Thrift import TMessageType, TType
from thrift.protocol import TBinaryProtocol, TCompactProtocol
from thrift.transport import TTransport

# Importing anything under jaeger_client runs jaeger_client/__init__.py (tracer,
# tornado, ...); that is harmless but slow-ish.  The generated modules are
# thrift 0.9.3 output ("py:new_style,tornado") and import each other absolutely.
from jaeger_client.thrift_gen.agent import Agent
from jaeger_client.thrift_gen.jaeger import ttypes as jaeger_types

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

log = logging.getLogger("export_peer")

MASK64 = 0xFFFFFFFFFFFFFFFF


# ---------------------------------------------------------------------------
# Jaeger Thrift decoding
# ---------------------------------------------------------------------------
#
# jaeger_client 4.8.0 ships an old jaeger.thrift whose Batch only has
# 1:process and 2:spans; newer jaeger-idl adds `3: optional i64 seqNo` and
# `4: optional ClientStats stats`.  The generated Batch.read() would silently
# skip them, so ExtBatch reads those two fields as well and delegates the rest
# to the generated Process/Span classes.


class ClientStats(object):
    """jaeger-idl: struct ClientStats { 1: required i64 fullQueueDroppedSpans
    2: required i64 tooLargeDroppedSpans 3: required i64 failedToEmitSpans }"""

    FIELDS = {1: "fullQueueDroppedSpans", 2: "tooLargeDroppedSpans", 3: "failedToEmitSpans"}

    def __init__(self):
        self.values = {}

    def read(self, iprot):
        iprot.readStructBegin()
        while True:
            (_, ftype, fid) = iprot.readFieldBegin()
            if ftype == TType.STOP:
                break
            if fid in self.FIELDS and ftype == TType.I64:
                self.values[self.FIELDS[fid]] = iprot.readI64()
            else:
                iprot.skip(ftype)
            iprot.readFieldEnd()
        iprot.readStructEnd()


class ExtBatch(jaeger_types.Batch):
    def __init__(self):
        super().__init__()
        self.seqNo = None
        self.stats = None

    def read(self, iprot):
        iprot.readStructBegin()
        while True:
            (_, ftype, fid) = iprot.readFieldBegin()
            if ftype == TType.STOP:
                break
            if fid == 1 and ftype == TType.STRUCT:
                self.process = jaeger_types.Process()
                self.process.read(iprot)
            elif fid == 2 and ftype == TType.LIST:
                self.spans = []
                (_, size) = iprot.readListBegin()
                for _ in range(size):
                    span = jaeger_types.Span()
                    span.read(iprot)
                    self.spans.append(span)
                iprot.readListEnd()
            elif fid == 3 and ftype == TType.I64:
                self.seqNo = iprot.readI64()
            elif fid == 4 and ftype == TType.STRUCT:
                self.stats = ClientStats()
                self.stats.read(iprot)
            else:
                iprot.skip(ftype)
            iprot.readFieldEnd()
        iprot.readStructEnd()


class ExtEmitBatchArgs(Agent.emitBatch_args):
    """Agent.emitBatch_args whose field 1 is decoded as ExtBatch."""

    def read(self, iprot):
        iprot.readStructBegin()
        while True:
            (_, ftype, fid) = iprot.readFieldBegin()
            if ftype == TType.STOP:
                break
            if fid == 1 and ftype == TType.STRUCT:
                self.batch = ExtBatch()
                self.batch.read(iprot)
            else:
                iprot.skip(ftype)
            iprot.readFieldEnd()
        iprot.readStructEnd()


def _json_float(v):
    if isinstance(v, float) and not math.isfinite(v):
        return "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")
    return v


def jaeger_tag_value(tag):
    t = tag.vType
    if t == jaeger_types.TagType.STRING:
        return tag.vStr
    if t == jaeger_types.TagType.DOUBLE:
        return _json_float(tag.vDouble)
    if t == jaeger_types.TagType.BOOL:
        return tag.vBool
    if t == jaeger_types.TagType.LONG:
        return tag.vLong
    if t == jaeger_types.TagType.BINARY:
        v = tag.vBinary
        if isinstance(v, str):  # generated code reads binary via readString()
            v = v.encode("utf-8")
        return None if v is None else v.hex()
    return None


def jaeger_tags(tags):
    return {t.key: jaeger_tag_value(t) for t in (tags or [])}


def hex128(high, low):
    return "%016x%016x" % ((high or 0) & MASK64, (low or 0) & MASK64)


def hex64(v):
    return "%016x" % ((v or 0) & MASK64)


def jaeger_span_json(s):
    refs = []
    for r in s.references or []:
        refs.append({
            "ref_type": jaeger_types.SpanRefType._VALUES_TO_NAMES.get(r.refType, str(r.refType)),
            "trace_id": hex128(r.traceIdHigh, r.traceIdLow),
            "span_id": hex64(r.spanId),
        })
    return {
        "trace_id": hex128(s.traceIdHigh, s.traceIdLow),
        "span_id": hex64(s.spanId),
        "parent_span_id": hex64(s.parentSpanId),
        "operation_name": s.operationName,
        "flags": s.flags,
        "start_time": s.startTime,
        "duration": s.duration,
        "references": refs,
        "tags": jaeger_tags(s.tags),
        "logs": [{"timestamp": l.timestamp, "fields": jaeger_tags(l.fields)} for l in (s.logs or [])],
    }


def jaeger_process_json(p):
    if p is None:
        return None
    return {"service_name": p.serviceName, "tags": jaeger_tags(p.tags)}


def _remaining(buf, total):
    try:
        return total - buf._buffer.tell()
    except Exception:  # pragma: no cover - private attribute changed
        return 0


def decode_udp(data, entry):
    """Returns (process_json, [span_json]) and fills entry; raises on error."""
    buf = TTransport.TMemoryBuffer(data)
    proto = TCompactProtocol.TCompactProtocol(buf)
    (name, mtype, seqid) = proto.readMessageBegin()
    entry["message_name"] = name
    entry["message_type"] = {TMessageType.CALL: "CALL", TMessageType.ONEWAY: "ONEWAY"}.get(mtype, mtype)
    entry["message_seqid"] = seqid
    if name != "emitBatch":
        raise ValueError("unexpected message name %r" % (name,))
    args = ExtEmitBatchArgs()
    args.read(proto)
    proto.readMessageEnd()
    batch = args.batch
    if batch is None:
        raise ValueError("emitBatch_args without batch")
    entry["seq_no"] = batch.seqNo
    entry["stats"] = batch.stats.values if batch.stats is not None else None
    left = _remaining(buf, len(data))
    if left:
        entry["error"] = "%d trailing bytes after message" % left
    return jaeger_process_json(batch.process), [jaeger_span_json(s) for s in (batch.spans or [])]


def decode_jaeger_http(data, entry):
    buf = TTransport.TMemoryBuffer(data)
    proto = TBinaryProtocol.TBinaryProtocol(buf)
    batch = ExtBatch()
    batch.read(proto)
    entry["seq_no"] = batch.seqNo
    entry["stats"] = batch.stats.values if batch.stats is not None else None
    left = _remaining(buf, len(data))
    if left:
        entry["error"] = "%d trailing bytes after Batch" % left
    return jaeger_process_json(batch.process), [jaeger_span_json(s) for s in (batch.spans or [])]


# ---------------------------------------------------------------------------
# OTLP decoding
# ---------------------------------------------------------------------------


def any_value(v):
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "string_value":
        return v.string_value
    if kind == "bool_value":
        return v.bool_value
    if kind == "int_value":
        return v.int_value
    if kind == "double_value":
        return _json_float(v.double_value)
    if kind == "bytes_value":
        return v.bytes_value.hex()
    if kind == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return otlp_attrs(v.kvlist_value.values)
    return None


def otlp_attrs(kvs):
    return {kv.key: any_value(kv.value) for kv in kvs}


def _enum_name(enum_type, value):
    try:
        return enum_type.Name(value)
    except ValueError:
        return str(value)


def otlp_span_json(s, scope):
    return {
        "trace_id": s.trace_id.hex(),
        "span_id": s.span_id.hex(),
        "parent_span_id": s.parent_span_id.hex(),
        "name": s.name,
        "kind": _enum_name(trace_pb2.Span.SpanKind, s.kind),
        "start_time_unix_nano": s.start_time_unix_nano,
        "end_time_unix_nano": s.end_time_unix_nano,
        "trace_state": s.trace_state,
        "attributes": otlp_attrs(s.attributes),
        "events": [{"name": e.name, "time_unix_nano": e.time_unix_nano, "attributes": otlp_attrs(e.attributes)}
                   for e in s.events],
        "links": [{"trace_id": l.trace_id.hex(), "span_id": l.span_id.hex(), "attributes": otlp_attrs(l.attributes)}
                  for l in s.links],
        "status": {"code": _enum_name(trace_pb2.Status.StatusCode, s.status.code), "message": s.status.message},
        "scope": {"name": scope.name, "version": scope.version},
    }


def decode_otlp(data, entry):
    req = trace_service_pb2.ExportTraceServiceRequest()
    req.ParseFromString(data)
    process = None
    spans = []
    for rs in req.resource_spans:
        attrs = otlp_attrs(rs.resource.attributes)
        if process is None:
            process = {"service_name": attrs.get("service.name"), "tags": attrs}
        for ss in rs.scope_spans:
            for s in ss.spans:
                spans.append(otlp_span_json(s, ss.scope))
    return process, spans


# ---------------------------------------------------------------------------
# Collector state
# ---------------------------------------------------------------------------


class State(object):
    def __init__(self, expected):
        self.expected = expected
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.requests = []
        self.spans = []
        self.process = None
        self.counter = 0
        if expected <= 0:
            self.done.set()

    def add(self, entry, process, spans, count_spans):
        with self.lock:
            self.requests.append(entry)
            if count_spans:
                if self.process is None and process is not None:
                    self.process = process
                self.spans.extend(spans)
            if len(self.spans) >= self.expected:
                return True
        return False

    def snapshot(self):
        with self.lock:
            return {"requests": list(self.requests), "process": self.process, "spans": list(self.spans)}


def describe(e):
    msg = str(e)
    return "%s: %s" % (type(e).__name__, msg) if msg else type(e).__name__


def new_entry():
    return {"path": None, "content_type": None, "authorization": None, "headers": {}, "size": 0,
            "seq_no": None, "stats": None, "status": None, "span_count": 0}


def run_udp(state, deadline):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
    except OSError:
        pass
    announce(sock.getsockname()[1])
    try:
        while not state.done.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            sock.settimeout(min(remaining, 0.25))
            try:
                data, _addr = sock.recvfrom(65536)
            except socket.timeout:
                continue
            entry = new_entry()
            entry["size"] = len(data)
            process, spans = None, []
            try:
                process, spans = decode_udp(data, entry)
            except Exception as e:  # record, never crash
                entry["error"] = describe(e)
                spans = []
            entry["span_count"] = len(spans)
            if state.add(entry, process, spans, True):
                state.done.set()
    finally:
        sock.close()


def read_body(handler):
    te = (handler.headers.get("Transfer-Encoding") or "").lower()
    if "chunked" in te:
        chunks = []
        while True:
            line = handler.rfile.readline(65537)
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                # trailers until empty line
                while True:
                    t = handler.rfile.readline(65537)
                    if t in (b"\r\n", b"\n", b""):
                        break
                break
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline(65537)  # CRLF after chunk
        body = b"".join(chunks)
    else:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length > 0 else b""
    return body


def decompress(body, encoding):
    enc = (encoding or "").strip().lower()
    if enc in ("", "identity"):
        return body
    if enc in ("gzip", "x-gzip"):
        return gzip.decompress(body)
    if enc == "deflate":
        return zlib.decompress(body)
    raise ValueError("unsupported Content-Encoding %r" % encoding)


def make_handler(mode, state, status_override, fail_first):
    normal_status = 202 if mode == "http" else 200

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 10  # per-connection socket timeout; handler threads never block forever

        def log_message(self, fmt, *args):  # silence default request logging
            log.debug("%s " + fmt, self.address_string(), *args)

        def _respond(self, status, body=b"", ctype=None):
            self.send_response(status)
            if ctype:
                self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body:
                self.wfile.write(body)
            self.wfile.flush()

        def do_POST(self):
            entry = new_entry()
            entry["path"] = self.path
            entry["content_type"] = self.headers.get("Content-Type")
            entry["authorization"] = self.headers.get("Authorization")
            entry["content_encoding"] = self.headers.get("Content-Encoding")
            entry["headers"] = {k.lower(): v for k, v in self.headers.items() if k.lower().startswith("x-")}
            with state.lock:
                state.counter += 1
                n = state.counter
            if status_override is not None:
                status = status_override
            elif n <= fail_first:
                status = 503
            else:
                status = normal_status
            entry["status"] = status
            # spans of a request deliberately failed by --fail-first are expected
            # to be retried, so they are not counted (avoids duplicates).
            count_spans = status_override is not None or n > fail_first
            process, spans = None, []
            try:
                body = read_body(self)
                entry["size"] = len(body)
                data = decompress(body, entry["content_encoding"])
                if mode == "http":
                    process, spans = decode_jaeger_http(data, entry)
                else:
                    process, spans = decode_otlp(data, entry)
            except Exception as e:
                entry["error"] = describe(e)
                spans = []
            entry["span_count"] = len(spans)
            finished = state.add(entry, process, spans, count_spans)
            try:
                if status != normal_status or mode == "http":
                    self._respond(status)
                else:
                    resp = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                    self._respond(status, resp, "application/x-protobuf")
            finally:
                if finished:
                    state.done.set()

        do_PUT = do_POST

    return Handler


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        log.warning("error handling request from %s", client_address, exc_info=True)


def run_http(mode, state, deadline, status_override, fail_first):
    server = Server(("127.0.0.1", 0), make_handler(mode, state, status_override, fail_first))
    announce(server.server_address[1])
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        while not state.done.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            state.done.wait(min(remaining, 0.25))
    finally:
        server.shutdown()
        server.server_close()


def announce(port):
    sys.stdout.write("PORT %d\n" % port)
    sys.stdout.flush()


def main(argv=None):
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING,
                        format="export_peer: %(levelname)s %(message)s")
    ap = argparse.ArgumentParser(description="Receive trace exports and print them as JSON.")
    ap.add_argument("mode", choices=["udp", "http", "otlp"])
    ap.add_argument("expected_spans", type=int)
    ap.add_argument("timeout_seconds", type=float)
    ap.add_argument("--status", type=int, default=None, help="answer every HTTP request with this status")
    ap.add_argument("--fail-first", type=int, default=0, help="answer the first N HTTP requests with 503")
    args = ap.parse_args(argv)

    state = State(args.expected_spans)
    deadline = time.monotonic() + args.timeout_seconds
    try:
        if args.mode == "udp":
            run_udp(state, deadline)
        else:
            run_http(args.mode, state, deadline, args.status, args.fail_first)
    except Exception:
        log.exception("peer failed")
    out = state.snapshot()
    sys.stdout.write(json.dumps(out, sort_keys=False) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
