#!/usr/bin/env python3
"""Interop peer: inject/extract trace-context headers with real third-party
Python implementations (jaeger-client, OpenTelemetry), driven by JSON.

Protocol: read ONE JSON array of requests from stdin, write ONE JSON array of
results (same length, same order) to stdout. Nothing else is ever written to
stdout; library logging and warnings go to stderr. See README.md.
"""

import json
import logging
import re
import sys
import warnings

# Keep stdout clean: anything a library prints goes to stderr. The real stdout
# is used only once, for the final JSON document.
_REAL_STDOUT = sys.stdout
sys.stdout = sys.stderr
logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
warnings.simplefilter("default")

from jaeger_client import SpanContext as JaegerSpanContext  # noqa: E402
from jaeger_client.codecs import B3Codec, TextCodec  # noqa: E402
from jaeger_client.constants import DEBUG_FLAG, SAMPLED_FLAG  # noqa: E402

from opentelemetry import baggage as otel_baggage  # noqa: E402
from opentelemetry import trace as otel_trace  # noqa: E402
from opentelemetry.baggage.propagation import W3CBaggagePropagator  # noqa: E402
from opentelemetry.context import Context  # noqa: E402
from opentelemetry.propagators.b3 import B3MultiFormat, B3SingleFormat  # noqa: E402
from opentelemetry.propagators.composite import CompositePropagator  # noqa: E402
from opentelemetry.propagators.jaeger import JaegerPropagator  # noqa: E402
from opentelemetry.trace.propagation.tracecontext import (  # noqa: E402
    TraceContextTextMapPropagator,
)

_HEX_RE = re.compile(r"^[0-9a-fA-F]+$")


def _parse_hex(req, field, max_digits, required=True):
    value = req.get(field)
    if value is None:
        if required:
            raise ValueError("missing field %r" % field)
        return None
    if not isinstance(value, str) or not _HEX_RE.match(value) or len(value) > max_digits:
        raise ValueError("field %r must be 1..%d hex digits, got %r" % (field, max_digits, value))
    return int(value, 16)


def _baggage_of(req):
    bag = req.get("baggage") or {}
    if not isinstance(bag, dict):
        raise ValueError("baggage must be an object")
    return {str(k): str(v) for k, v in bag.items()}


def _headers_of(req):
    headers = req.get("headers")
    if not isinstance(headers, dict):
        raise ValueError("headers must be an object")
    if req.get("lowercase_keys"):
        headers = {str(k).lower(): v for k, v in headers.items()}
    return dict(headers)


def _fmt(value, width):
    return None if value is None else format(value, "0%dx" % width)


# --------------------------------------------------------------------------
# jaeger-client (jaeger_client.codecs.TextCodec / B3Codec)
# --------------------------------------------------------------------------

def _jaeger_codec(lib):
    if lib == "jaeger_client":
        return TextCodec(url_encoding=True)
    return B3Codec()


def _jaeger_inject(lib, req):
    trace_id = _parse_hex(req, "trace_id", 32)
    span_id = _parse_hex(req, "span_id", 16)
    parent_id = _parse_hex(req, "parent_span_id", 16, required=False) or None
    flags = (SAMPLED_FLAG if req.get("sampled") else 0) | (DEBUG_FLAG if req.get("debug") else 0)
    ctx = JaegerSpanContext(
        trace_id=trace_id,
        span_id=span_id,
        parent_id=parent_id,
        flags=flags,
        baggage=_baggage_of(req),
    )
    carrier = {}
    _jaeger_codec(lib).inject(ctx, carrier)
    return {"headers": carrier}


def _jaeger_extract(lib, req):
    ctx = _jaeger_codec(lib).extract(_headers_of(req))
    if ctx is None:
        return {"found": False}
    bag = dict(ctx.baggage or {})
    if not ctx.trace_id or not ctx.span_id:
        # TextCodec may return a context carrying only baggage / debug id.
        out = {"found": False}
        if bag:
            out["baggage"] = bag
        if ctx.debug_id is not None:
            out["debug_id"] = ctx.debug_id
        return out
    flags = ctx.flags or 0
    out = {
        "found": True,
        "trace_id": _fmt(ctx.trace_id, 32),
        "span_id": _fmt(ctx.span_id, 16),
        # jaeger has a parent id; None (absent / 0) is reported as all zeros.
        "parent_span_id": _fmt(ctx.parent_id or 0, 16),
        "sampled": bool(flags & SAMPLED_FLAG),
        "debug": bool(flags & DEBUG_FLAG),
        "flags": flags,
        "baggage": bag,
        "tracestate": None,
    }
    if ctx.debug_id is not None:
        out["debug_id"] = ctx.debug_id
    return out


# --------------------------------------------------------------------------
# OpenTelemetry propagators
# --------------------------------------------------------------------------

def _otel_propagator(lib):
    if lib == "otel_jaeger":
        return JaegerPropagator()
    if lib == "otel_tracecontext":
        return TraceContextTextMapPropagator()
    if lib == "otel_baggage":
        return W3CBaggagePropagator()
    if lib == "otel_b3_multi":
        return B3MultiFormat()
    if lib == "otel_b3_single":
        return B3SingleFormat()
    if lib == "otel_composite":
        return CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])
    raise ValueError("unknown lib %r" % lib)


def _otel_inject(lib, req):
    propagator = _otel_propagator(lib)
    ctx = Context()
    ids_required = lib != "otel_baggage"
    trace_id = _parse_hex(req, "trace_id", 32, required=ids_required)
    span_id = _parse_hex(req, "span_id", 16, required=ids_required)
    if trace_id is not None and span_id is not None:
        trace_state = None
        if req.get("tracestate") is not None:
            trace_state = otel_trace.TraceState.from_header([req["tracestate"]])
        span_context = otel_trace.SpanContext(
            trace_id=trace_id,
            span_id=span_id,
            is_remote=False,
            trace_flags=otel_trace.TraceFlags(
                otel_trace.TraceFlags.SAMPLED if req.get("sampled") else otel_trace.TraceFlags.DEFAULT
            ),
            trace_state=trace_state,
        )
        ctx = otel_trace.set_span_in_context(otel_trace.NonRecordingSpan(span_context), ctx)
    for key, value in _baggage_of(req).items():
        ctx = otel_baggage.set_baggage(key, value, context=ctx)
    carrier = {}
    propagator.inject(carrier=carrier, context=ctx)
    return {"headers": carrier}


def _otel_extract(lib, req):
    propagator = _otel_propagator(lib)
    ctx = propagator.extract(carrier=_headers_of(req), context=Context())
    bag = {str(k): str(v) for k, v in otel_baggage.get_all(context=ctx).items()}
    if lib == "otel_baggage":
        return {
            "found": bool(bag),
            "trace_id": None,
            "span_id": None,
            "parent_span_id": None,
            "sampled": None,
            "debug": None,
            "baggage": bag,
            "tracestate": None,
        }
    sc = otel_trace.get_current_span(ctx).get_span_context()
    if not sc.is_valid:
        out = {"found": False}
        if bag:
            out["baggage"] = bag
        return out
    trace_state = sc.trace_state
    return {
        "found": True,
        "trace_id": _fmt(sc.trace_id, 32),
        "span_id": _fmt(sc.span_id, 16),
        "parent_span_id": None,  # OTel has no notion of a propagated parent id
        "sampled": bool(sc.trace_flags.sampled),
        "debug": None,  # OTel has no debug flag
        "baggage": bag,
        "tracestate": trace_state.to_header() if trace_state is not None and len(trace_state) else None,
    }


# --------------------------------------------------------------------------

_JAEGER_LIBS = {"jaeger_client", "jaeger_client_b3"}
_OTEL_LIBS = {
    "otel_jaeger",
    "otel_tracecontext",
    "otel_baggage",
    "otel_b3_multi",
    "otel_b3_single",
    "otel_composite",
}


def handle(req):
    if not isinstance(req, dict):
        raise ValueError("request must be an object")
    op = req.get("op")
    lib = req.get("lib")
    if lib in _JAEGER_LIBS:
        inject, extract = _jaeger_inject, _jaeger_extract
    elif lib in _OTEL_LIBS:
        inject, extract = _otel_inject, _otel_extract
    else:
        raise ValueError("unknown lib %r" % (lib,))
    if op == "inject":
        return inject(lib, req)
    if op == "extract":
        return extract(lib, req)
    raise ValueError("unknown op %r" % (op,))


def main():
    raw = sys.stdin.buffer.read().decode("utf-8")
    try:
        requests = json.loads(raw)
    except ValueError as e:
        sys.stderr.write("propagation_peer: invalid JSON input: %s\n" % e)
        return 2
    if not isinstance(requests, list):
        sys.stderr.write("propagation_peer: input must be a JSON array\n")
        return 2
    results = []
    for req in requests:
        try:
            results.append(handle(req))
        except Exception as e:  # one bad request must not break the others
            results.append({"error": "%s: %s" % (type(e).__name__, e)})
    out = json.dumps(results, ensure_ascii=False)
    _REAL_STDOUT.buffer.write(out.encode("utf-8") + b"\n")
    _REAL_STDOUT.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
