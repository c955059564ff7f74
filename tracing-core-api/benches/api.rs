//! Criterion benches of the API crate, with OpenTelemetry's Rust
//! propagators in the same run as the comparison.
//!
//! `cargo bench -p opentracing-api --bench api`
// `deprecated`: the OpenTelemetry Jaeger propagator is deprecated upstream; it is
// still what users of `uber-trace-id` on that stack run, so it is the comparison.
#![allow(
    missing_docs,
    clippy::too_many_lines,
    deprecated,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::semicolon_if_nothing_returned
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use http::{HeaderMap, HeaderName, HeaderValue};
use opentracing_api::{
    B3Propagator, Baggage, Format, JaegerPropagator, MockTracer, NoopTracer, Propagator,
    SpanContext, SpanId, TraceContextPropagator, TraceFlags, TraceId, TracerExt,
};

#[macro_use]
#[path = "support/otel_carriers.rs"]
mod otel_carriers;
otel_carriers!(otel33, opentelemetry);
otel_carriers!(otel32, opentelemetry_032);

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
    }
    h
}

const UBER: (&str, &str) = (
    "uber-trace-id",
    "4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7:0:1",
);
const TRACEPARENT: (&str, &str) = (
    "traceparent",
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
);
const B3: [(&str, &str); 3] = [
    ("x-b3-traceid", "4bf92f3577b34da6a3ce929d0e0e4736"),
    ("x-b3-spanid", "00f067aa0ba902b7"),
    ("x-b3-sampled", "1"),
];
/// Headers a real request carries besides the trace context.
const OTHER: [(&str, &str); 4] = [
    ("host", "127.0.0.1:8080"),
    ("user-agent", "wrk"),
    ("accept", "*/*"),
    ("content-length", "0"),
];

fn request(trace: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut all: Vec<_> = OTHER.to_vec();
    all.extend_from_slice(trace);
    headers(&all)
}

/// Extract from the incoming request's headers, inject into the outgoing
/// request's headers: the work of a proxy hop or of server + client
/// middleware. The outgoing map already exists (it holds the request's other
/// headers), so it is reused, as in real middleware.
fn round_trip(p: &dyn Propagator, incoming: &HeaderMap, outgoing: &mut HeaderMap) {
    let cx = p.extract(Format::HttpHeaders, incoming).unwrap().unwrap();
    p.inject(&cx, Format::HttpHeaders, outgoing);
}

fn propagation(c: &mut Criterion) {
    let jaeger = JaegerPropagator::new();
    let w3c = TraceContextPropagator::new();
    let b3 = B3Propagator::new();
    let uber_req = request(&[UBER]);
    let tp_req = request(&[TRACEPARENT]);
    let b3_req = request(&B3);
    let otel_w3c = opentelemetry_sdk::propagation::TraceContextPropagator::new();
    let otel_jaeger = opentelemetry_jaeger_propagator::Propagator::new();

    for (group, fresh) in [("round_trip", false), ("round_trip_fresh_map", true)] {
        let mut g = c.benchmark_group(group);
        // `fresh`: a new outgoing map per iteration, which pays for the map's
        // own allocations as well.
        let mut out = request(&[]);
        let reset = move |out: &mut HeaderMap| {
            // Otherwise injection replaces the previous iteration's value,
            // as `HeaderMap::insert` does on a real outgoing request.
            if fresh {
                *out = HeaderMap::new();
            }
        };
        g.bench_function("ours/uber-trace-id", |b| {
            b.iter(|| {
                reset(&mut out);
                round_trip(&jaeger, black_box(&uber_req), &mut out);
            });
        });
        g.bench_function("otel/uber-trace-id", |b| {
            use opentelemetry_032::propagation::TextMapPropagator;
            b.iter(|| {
                reset(&mut out);
                let cx = otel_jaeger.extract(&otel32::Ext(black_box(&uber_req)));
                otel_jaeger.inject_context(&cx, &mut otel32::Inj(&mut out));
            });
        });
        g.bench_function("ours/traceparent", |b| {
            b.iter(|| {
                reset(&mut out);
                round_trip(&w3c, black_box(&tp_req), &mut out);
            });
        });
        g.bench_function("otel/traceparent", |b| {
            use opentelemetry::propagation::TextMapPropagator;
            b.iter(|| {
                reset(&mut out);
                let cx = otel_w3c.extract(&otel33::Ext(black_box(&tp_req)));
                otel_w3c.inject_context(&cx, &mut otel33::Inj(&mut out));
            });
        });
        g.bench_function("ours/b3-multi", |b| {
            b.iter(|| {
                reset(&mut out);
                round_trip(&b3, black_box(&b3_req), &mut out);
            });
        });
        g.finish();
    }

    let mut g = c.benchmark_group("extract");
    g.bench_function("uber-trace-id", |b| {
        b.iter(|| jaeger.extract(Format::HttpHeaders, black_box(&uber_req)))
    });
    g.bench_function("traceparent", |b| {
        b.iter(|| w3c.extract(Format::HttpHeaders, black_box(&tp_req)))
    });
    g.bench_function("b3-multi", |b| {
        b.iter(|| b3.extract(Format::HttpHeaders, black_box(&b3_req)))
    });
    let with_baggage = request(&[
        UBER,
        ("uberctx-customer", "Rachel%27s%20Floral"),
        ("uberctx-session", "1234"),
    ]);
    g.bench_function("uber-trace-id+2 baggage", |b| {
        b.iter(|| jaeger.extract(Format::HttpHeaders, black_box(&with_baggage)));
    });
    g.finish();

    let cx = SpanContext::new(
        TraceId::from_u128(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736),
        SpanId::from_u64(0x00f0_67aa_0ba9_02b7),
        TraceFlags::SAMPLED,
    );
    let mut g = c.benchmark_group("inject");
    for (name, p) in [
        ("uber-trace-id", &jaeger as &dyn Propagator),
        ("traceparent", &w3c),
        ("b3-multi", &b3),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut out = HeaderMap::new();
                p.inject(black_box(&cx), Format::HttpHeaders, &mut out);
                out
            });
        });
    }
    let cx_bag = cx.clone().with_baggage(Baggage::from_iter([
        ("customer", "Rachel's Floral"),
        ("session", "1234"),
    ]));
    g.bench_function("uber-trace-id+2 baggage", |b| {
        b.iter(|| {
            let mut out = HeaderMap::new();
            jaeger.inject(black_box(&cx_bag), Format::HttpHeaders, &mut out);
            out
        });
    });
    g.finish();
}

fn spans(c: &mut Criterion) {
    let mut g = c.benchmark_group("span");
    g.bench_function("noop/start+finish", |b| {
        b.iter(|| NoopTracer.span(black_box("op")).start().finish())
    });
    g.bench_function("noop/start+3 tags+finish", |b| {
        b.iter(|| {
            let mut s = NoopTracer.span(black_box("op")).start();
            s.set_tag("http.method", "GET");
            s.set_tag("http.status_code", 200);
            s.set_tag("error", false);
            s.finish();
        });
    });
    let mock = MockTracer::new();
    g.bench_function("mock/start+3 tags+finish", |b| {
        b.iter_custom(|iters| {
            mock.reset();
            let start = Instant::now();
            for _ in 0..iters {
                let mut s = mock.span(black_box("op")).start();
                s.set_tag("http.method", "GET");
                s.set_tag("http.status_code", 200);
                s.set_tag("error", false);
                s.finish();
            }
            start.elapsed()
        });
    });
    let shared = mock.span("current").start_shared();
    g.bench_function("enter+exit current span", |b| {
        b.iter(|| drop(black_box(&shared).enter()))
    });
    g.bench_function("mock/child of current", |b| {
        let _entered = shared.enter();
        b.iter_custom(|iters| {
            mock.reset();
            let start = Instant::now();
            for _ in 0..iters {
                mock.span(black_box("child")).start().finish();
            }
            start.elapsed()
        });
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = propagation, spans
}
criterion_main!(benches);
