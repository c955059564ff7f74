//! A driver for profilers (callgrind, perf): runs one hot path in a loop.
//!
//! `cargo build --release -p opentracing-api --example profile_round_trip`,
//! then e.g. `valgrind --tool=callgrind target/release/examples/profile_round_trip uber 100000`.

use std::hint::black_box;

use http::{HeaderMap, HeaderValue};
use opentracing_api::{
    Format, JaegerPropagator, NoopTracer, Propagator, TraceContextPropagator, TracerExt,
};

#[macro_use]
#[path = "../benches/support/otel_carriers.rs"]
mod otel_carriers;
otel_carriers!(otel, opentelemetry);
otel_carriers!(otel32, opentelemetry_032);

fn main() {
    let mut args = std::env::args().skip(1);
    let what = args.next().unwrap_or_else(|| "uber".to_owned());
    let n: u64 = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let mut req = HeaderMap::new();
    for (k, v) in [
        ("host", "127.0.0.1:8080"),
        ("user-agent", "wrk"),
        ("accept", "*/*"),
        ("content-length", "0"),
    ] {
        req.insert(k, HeaderValue::from_static(v));
    }
    req.insert(
        "uber-trace-id",
        HeaderValue::from_static("4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7:0:1"),
    );
    req.insert(
        "traceparent",
        HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    );
    let p: &dyn Propagator = match what.as_str() {
        "uber" => &JaegerPropagator::new(),
        "w3c" => &TraceContextPropagator::new(),
        "otel-uber" => {
            use opentelemetry_032::propagation::TextMapPropagator;
            #[allow(deprecated)] // the comparison users of uber-trace-id on OpenTelemetry run
            let p = opentelemetry_jaeger_propagator::Propagator::new();
            for _ in 0..n {
                let cx = p.extract(&otel32::Ext(black_box(&req)));
                let mut out = HeaderMap::new();
                p.inject_context(&cx, &mut otel32::Inj(&mut out));
                black_box(out);
            }
            return;
        }
        "otel-w3c" => {
            use opentelemetry::propagation::TextMapPropagator;
            let p = opentelemetry_sdk::propagation::TraceContextPropagator::new();
            for _ in 0..n {
                let cx = p.extract(&otel::Ext(black_box(&req)));
                let mut out = HeaderMap::new();
                p.inject_context(&cx, &mut otel::Inj(&mut out));
                black_box(out);
            }
            return;
        }
        _ => {
            for _ in 0..n {
                NoopTracer.span(black_box("op")).start().finish();
            }
            return;
        }
    };
    for _ in 0..n {
        if let Ok(Some(cx)) = p.extract(Format::HttpHeaders, black_box(&req)) {
            let mut out = HeaderMap::new();
            p.inject(&cx, Format::HttpHeaders, &mut out);
            black_box(out);
        }
    }
}
