//! What the bridge costs per `tracing` call, next to `tracing-opentelemetry`
//! doing the same on the OpenTelemetry SDK, in one criterion run:
//!
//! - `event/*`: one `info!` with a field, inside a span that is sampled or
//!   not (a new span every 100 events, so neither stack reaches its cap of
//!   128 events per span; only the events are timed);
//! - `instrument/*`: a call to an `#[instrument]`ed function inside such a
//!   span (the span started, entered, exited and finished);
//! - `*/registry only`: the same with no tracing layer at all.
//!
//! Finished spans are discarded by both tracers (the Jaeger tracer with no
//! exporter, the SDK with an exporter that drops its batches).
//!
//! `cargo bench -p opentracing-tracing-bridge --bench bridge`
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::semicolon_if_nothing_returned
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, SpanData, SpanExporter};
use opentracing_api::TracerExt;
use opentracing_jaeger::sampler::ConstSampler;
use opentracing_jaeger::{Exporter, JaegerTracer};
use opentracing_tracing_bridge::OpenTracingLayer;
use tracing::Dispatch;
use tracing_subscriber::prelude::*;

/// Spans get this many events, or instrumented children, each.
const PER_SPAN: u64 = 100;

#[derive(Debug)]
struct DiscardExporter;

impl SpanExporter for DiscardExporter {
    fn export(
        &self,
        _: Vec<SpanData>,
    ) -> impl std::future::Future<Output = opentelemetry_sdk::error::OTelSdkResult> + Send {
        std::future::ready(Ok(()))
    }
}

fn jaeger(sampled: bool) -> JaegerTracer {
    JaegerTracer::builder("bench")
        .sampler(ConstSampler(sampled))
        .exporter(Exporter::None)
        .queue_size(1 << 16)
        .build()
        .unwrap()
}

fn otel(sampled: bool) -> SdkTracerProvider {
    SdkTracerProvider::builder()
        .with_batch_exporter(DiscardExporter)
        .with_sampler(if sampled {
            Sampler::AlwaysOn
        } else {
            Sampler::AlwaysOff
        })
        .build()
}

#[tracing::instrument]
fn instrumented(order_id: u64) -> u64 {
    black_box(order_id)
}

/// What one measured iteration does.
#[derive(Clone, Copy)]
enum Work {
    Event,
    Instrumented,
}

fn run(work: Work, n: u64) {
    for i in 0..n {
        match work {
            Work::Event => tracing::info!(order_id = i, "order loaded"),
            Work::Instrumented => {
                instrumented(i);
            }
        }
    }
}

/// Times `work` `iters` times inside spans made by `enter_span`, a new one
/// every [`PER_SPAN`] iterations, outside the timed part.
fn timed<G>(dispatch: &Dispatch, work: Work, iters: u64, enter_span: impl Fn() -> G) -> Duration {
    tracing::dispatcher::with_default(dispatch, || {
        let mut total = Duration::ZERO;
        let mut left = iters;
        while left > 0 {
            let n = left.min(PER_SPAN);
            let guard = enter_span();
            let start = Instant::now();
            run(work, n);
            total += start.elapsed();
            drop(guard);
            left -= n;
        }
        total
    })
}

fn bench_stacks(g: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>, work: Work) {
    let bare = Dispatch::new(tracing_subscriber::registry());
    g.bench_function("registry only", |b| {
        b.iter_custom(|iters| timed(&bare, work, iters, || ()))
    });
    for sampled in [true, false] {
        let label = if sampled { "sampled" } else { "unsampled" };

        let tracer = jaeger(sampled);
        let ours = Dispatch::new(
            tracing_subscriber::registry().with(OpenTracingLayer::new(tracer.clone())),
        );
        g.bench_function(format!("ours/{label}"), |b| {
            b.iter_custom(|iters| {
                timed(&ours, work, iters, || {
                    // A request's server span, current as the HTTP layer
                    // makes it; finished when the guard drops.
                    let span = tracer.span("request").start_shared();
                    let entered = span.enter();
                    (entered, FinishOnDrop(span))
                })
            })
        });
        let _ = tracer.close(Duration::from_secs(5));

        let provider = otel(sampled);
        let theirs = Dispatch::new(
            tracing_subscriber::registry()
                .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("bench"))),
        );
        g.bench_function(format!("otel/{label}"), |b| {
            b.iter_custom(|iters| {
                timed(&theirs, work, iters, || {
                    tracing::info_span!("request").entered()
                })
            })
        });
        let _ = provider.shutdown();
    }
}

/// Finishes an OpenTracing span when dropped, after the guard that made it
/// current (fields drop in order).
struct FinishOnDrop(opentracing_api::SharedSpan);

impl Drop for FinishOnDrop {
    fn drop(&mut self) {
        self.0.finish();
    }
}

fn bridge(c: &mut Criterion) {
    let mut g = c.benchmark_group("event");
    bench_stacks(&mut g, Work::Event);
    g.finish();
    let mut g = c.benchmark_group("instrument");
    bench_stacks(&mut g, Work::Instrumented);
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    targets = bridge
}
criterion_main!(benches);
