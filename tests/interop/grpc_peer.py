#!/usr/bin/env python3
"""Interop peer: a real gRPC client and server (PyPI grpcio) for the tonic
adapter's interop tests. Messages travel as raw protobuf bytes (the tests
encode them), so no generated Python code is needed.

  grpc_peer.py call
      stdin: a JSON array of {"target": "127.0.0.1:PORT", "method":
      "/pkg.Service/Method", "metadata": {key: value}, "request_hex": "..."};
      stdout: a JSON array of {"code": "OK", "details": ..., "reply_hex": ...}.

  grpc_peer.py serve EXPECTED_CALLS TIMEOUT_SECONDS
      Prints `PORT <n>`, answers every unary call with an empty message, and
      once EXPECTED_CALLS calls arrived (or the timeout passed) prints one
      JSON array: for each call its method, its metadata, and what
      jaeger-client and OpenTelemetry's propagators extract from it.
"""

import json
import sys
import threading
from concurrent import futures

_REAL_STDOUT = sys.stdout
sys.stdout = sys.stderr

import grpc  # noqa: E402

import propagation_peer  # noqa: E402  (the same directory)

_EXTRACTORS = ["jaeger_client", "otel_jaeger", "otel_tracecontext", "otel_composite"]


def _call(req):
    channel = grpc.insecure_channel(req["target"])
    try:
        method = channel.unary_unary(req["method"])  # raw bytes in and out
        metadata = [(k.lower(), v) for k, v in req.get("metadata", {}).items()]
        try:
            reply = method(bytes.fromhex(req.get("request_hex", "")), metadata=metadata, timeout=10)
            return {"code": "OK", "details": None, "reply_hex": reply.hex()}
        except grpc.RpcError as e:
            return {"code": e.code().name, "details": e.details(), "reply_hex": None}
    finally:
        channel.close()


def call_main():
    requests = json.loads(sys.stdin.buffer.read().decode("utf-8"))
    results = [_call(r) for r in requests]
    _REAL_STDOUT.write(json.dumps(results) + "\n")
    _REAL_STDOUT.flush()
    return 0


class _Recorder(grpc.GenericRpcHandler):
    def __init__(self, expected):
        self.calls = []
        self.expected = expected
        self.done = threading.Event()
        self.lock = threading.Lock()

    def service(self, handler_call_details):
        method = handler_call_details.method
        metadata = {k: v for k, v in handler_call_details.invocation_metadata if not k.endswith("-bin")}

        def unary(request, context):
            extracted = {}
            for lib in _EXTRACTORS:
                try:
                    extracted[lib] = propagation_peer.handle({"op": "extract", "lib": lib, "headers": metadata})
                except Exception as e:  # reported, not fatal
                    extracted[lib] = {"error": "%s: %s" % (type(e).__name__, e)}
            with self.lock:
                self.calls.append({"method": method, "metadata": metadata, "extracted": extracted})
                if len(self.calls) >= self.expected:
                    self.done.set()
            return b""

        return grpc.unary_unary_rpc_method_handler(unary)


def serve_main(expected, timeout):
    recorder = _Recorder(expected)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((recorder,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    _REAL_STDOUT.write("PORT %d\n" % port)
    _REAL_STDOUT.flush()
    recorder.done.wait(timeout)
    server.stop(grace=1)
    with recorder.lock:
        _REAL_STDOUT.write(json.dumps(recorder.calls) + "\n")
    _REAL_STDOUT.flush()
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 1 or sys.argv[1] == "call":
        sys.exit(call_main())
    if len(sys.argv) == 4 and sys.argv[1] == "serve":
        sys.exit(serve_main(int(sys.argv[2]), float(sys.argv[3])))
    sys.stderr.write(__doc__)
    sys.exit(2)
