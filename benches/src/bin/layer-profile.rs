//! Runs N requests through one stack in process, for instruction counting
//! (`valgrind --tool=callgrind`), which unlike wall-clock time does not
//! depend on the machine's load. Used by `benches/count_layer_instructions.sh`.
//!
//! `layer-profile MODE N` with MODE one of bare, identity, noop, unsampled,
//! sampled, otel-unsampled, otel-sampled.

use std::time::Duration;

use axum::Router;
use http_body_util::BodyExt;
use opentracing_api::ExtractPolicy;
use opentracing_api::NoopTracer;
use opentracing_jaeger::sampler::ConstSampler;
use opentracing_jaeger::{Exporter, JaegerTracer};
use opentracing_tower::TracingLayer;
use tower::ServiceExt;

async fn run(app: Router, n: u64) {
    run_flushing(app, n, || ()).await;
}

/// Like `run`, calling `flush` every 256 requests: the reporter then hands
/// delivered spans back for reuse, as it does on a loaded server (in a
/// single-threaded run it would otherwise only get to them at the end).
async fn run_flushing(app: Router, n: u64, flush: impl Fn()) {
    for i in 0..n {
        if i % 256 == 255 {
            flush();
        }
        let Some(req) = benchmarks::traced_request() else {
            return;
        };
        let Ok(resp) = app.clone().oneshot(req).await;
        let _ = resp.into_body().collect().await;
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "bare".into());
    let n: u64 = args.next().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    match mode.as_str() {
        "bare" => rt.block_on(run(benchmarks::users_app(), n)),
        "identity" => rt.block_on(run(
            benchmarks::users_app().layer(tower::layer::util::Identity::new()),
            n,
        )),
        "noop" => {
            rt.block_on(run(
                benchmarks::users_app().layer(TracingLayer::new(NoopTracer).with_axum_bodies()),
                n,
            ));
        }
        "unsampled" | "sampled" => {
            let sampled = mode == "sampled";
            let policy = ExtractPolicy::default().with_trust_sampling(sampled);
            let Ok(tracer) = JaegerTracer::builder("profile")
                .sampler(ConstSampler(sampled))
                .extract_policy(policy)
                .exporter(Exporter::None)
                .build()
            else {
                return;
            };
            rt.block_on(run_flushing(
                benchmarks::users_app().layer(TracingLayer::new(tracer.clone()).with_axum_bodies()),
                n,
                || {
                    let _ = tracer.flush(Duration::from_secs(10));
                },
            ));
            let _ = tracer.close(Duration::from_secs(10));
        }
        "otel-unsampled" | "otel-sampled" => {
            use opentelemetry::trace::TracerProvider as _;
            use tracing_subscriber::layer::SubscriberExt;
            opentelemetry::global::set_text_map_propagator(
                opentelemetry_sdk::propagation::TraceContextPropagator::new(),
            );
            let provider =
                benchmarks::otel_provider(benchmarks::DiscardExporter, mode == "otel-sampled");
            let subscriber = tracing_subscriber::registry()
                .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("profile")));
            let layer = tower_http::trace::TraceLayer::new_for_http()
                .make_span_with(benchmarks::otel_make_span);
            tracing::subscriber::with_default(subscriber, || {
                rt.block_on(run(benchmarks::users_app().layer(layer), n));
            });
            let _ = provider.force_flush();
            let _ = provider.shutdown();
        }
        other => eprintln!("unknown mode {other}"),
    }
}
