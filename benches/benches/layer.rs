//! The server layer's own cost, in process (no network, no load-generator
//! noise): an axum router called through `oneshot`, its response body
//! drained, bare and with each tracing stack, in one criterion run.
//!
//! `cargo bench -p benchmarks --bench layer`
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::semicolon_if_nothing_returned
)]

use std::hint::black_box;

use std::time::Duration;

use axum::Router;
use criterion::{criterion_group, criterion_main, Criterion};
use http_body_util::BodyExt;
use opentracing_api::ExtractPolicy;
use opentracing_api::NoopTracer;
use opentracing_jaeger::sampler::ConstSampler;
use opentracing_jaeger::{Exporter, JaegerTracer};
use opentracing_tower::TracingLayer;
use tower::ServiceExt;

async fn call(app: &Router) {
    let resp = app
        .clone()
        .oneshot(benchmarks::traced_request().unwrap())
        .await
        .unwrap();
    black_box(resp.into_body().collect().await.unwrap());
}

fn jaeger(sampled: bool) -> JaegerTracer {
    let policy = ExtractPolicy::default().with_trust_sampling(sampled);
    JaegerTracer::builder("bench")
        .sampler(ConstSampler(sampled))
        .extract_policy(policy)
        .exporter(Exporter::None)
        .queue_size(1 << 16)
        .build()
        .unwrap()
}

fn layer(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("server_layer_request");
    let bare = benchmarks::users_app();
    g.bench_function("bare", |b| b.iter(|| rt.block_on(call(&bare))));
    // Any `Router::layer` costs something (axum boxes the layered route):
    // the same with a layer that does nothing, to tell that apart.
    let identity = benchmarks::users_app().layer(tower::layer::util::Identity::new());
    g.bench_function("identity layer", |b| {
        b.iter(|| rt.block_on(call(&identity)))
    });
    let with_noop = benchmarks::users_app().layer(TracingLayer::new(NoopTracer).with_axum_bodies());
    g.bench_function("ours/noop", |b| b.iter(|| rt.block_on(call(&with_noop))));
    for sampled in [false, true] {
        let label = if sampled { "sampled" } else { "unsampled" };
        let tracer = jaeger(sampled);
        let traced =
            benchmarks::users_app().layer(TracingLayer::new(tracer.clone()).with_axum_bodies());
        g.bench_function(format!("ours/{label}"), |b| {
            b.iter(|| rt.block_on(call(&traced)))
        });
        let _ = tracer.close(Duration::from_secs(5));
    }
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    for sampled in [false, true] {
        use opentelemetry::trace::TracerProvider as _;
        use tracing_subscriber::layer::SubscriberExt;
        let label = if sampled { "sampled" } else { "unsampled" };
        let provider = benchmarks::otel_provider(benchmarks::DiscardExporter, sampled);
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("bench")));
        let traced = benchmarks::users_app().layer(
            tower_http::trace::TraceLayer::new_for_http()
                .make_span_with(benchmarks::otel_make_span),
        );
        tracing::subscriber::with_default(subscriber, || {
            g.bench_function(format!("otel/{label}"), |b| {
                b.iter(|| rt.block_on(call(&traced)))
            });
        });
        let _ = provider.shutdown();
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    targets = layer
}
criterion_main!(benches);
