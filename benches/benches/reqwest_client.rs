//! The reqwest middleware's own cost, in process: a `reqwest_middleware`
//! client whose last middleware answers at once (no network, no server
//! noise), bare, with our middleware and with `reqwest-tracing` +
//! `tracing-opentelemetry`, sampling nothing and everything, in one run.
//! Each request is made inside a parent span, as in a handler.
//!
//! `cargo bench -p benchmarks --bench reqwest_client`
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::semicolon_if_nothing_returned
)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use http::Extensions;
use opentracing_api::{ExtractPolicy, TracerExt};
use opentracing_jaeger::sampler::ConstSampler;
use opentracing_jaeger::{Exporter, JaegerTracer};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware, Next};

/// Answers every request with an empty 200, in place of the network.
struct Answer;

#[async_trait::async_trait]
impl Middleware for Answer {
    async fn handle(
        &self,
        _: reqwest::Request,
        _: &mut Extensions,
        _: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        Ok(reqwest::Response::from(http::Response::new(
            Vec::<u8>::new(),
        )))
    }
}

fn client(with: Option<std::sync::Arc<dyn Middleware>>) -> ClientWithMiddleware {
    let b = ClientBuilder::new(reqwest::Client::new());
    let b = match with {
        Some(m) => b.with_arc(m),
        None => b,
    };
    b.with(Answer).build()
}

const URL: &str = "http://customer.internal:8081/customer?customer=123";

async fn send(client: &ClientWithMiddleware) {
    let resp = client.get(URL).send().await.unwrap();
    black_box(resp.status());
}

fn jaeger(sampled: bool) -> JaegerTracer {
    JaegerTracer::builder("bench")
        .sampler(ConstSampler(sampled))
        .extract_policy(ExtractPolicy::default())
        .exporter(Exporter::None)
        .queue_size(1 << 16)
        .build()
        .unwrap()
}

/// The OpenTelemetry 0.32 SDK (the newest `reqwest-tracing` supports) with
/// a batch processor whose exporter discards.
#[derive(Debug)]
struct Discard;

impl opentelemetry_sdk_0_32::trace::SpanExporter for Discard {
    fn export(
        &self,
        _: Vec<opentelemetry_sdk_0_32::trace::SpanData>,
    ) -> impl std::future::Future<Output = opentelemetry_sdk_0_32::error::OTelSdkResult> + Send
    {
        std::future::ready(Ok(()))
    }
}

fn reqwest_client(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("reqwest_client_request");
    let bare = client(None);
    g.bench_function("bare", |b| b.iter(|| rt.block_on(send(&bare))));
    for sampled in [false, true] {
        let label = if sampled { "sampled" } else { "unsampled" };
        let tracer = jaeger(sampled);
        let ours = client(Some(std::sync::Arc::new(
            opentracing_reqwest::TracingMiddleware::new(tracer.clone()),
        )));
        let parent = tracer.span("handler").start_shared();
        let current = parent.enter();
        g.bench_function(format!("ours/{label}"), |b| {
            b.iter(|| rt.block_on(send(&ours)))
        });
        drop(current);
        parent.finish();
        let _ = tracer.close(Duration::from_secs(5));
    }
    opentelemetry_0_32::global::set_text_map_propagator(
        opentelemetry_sdk_0_32::propagation::TraceContextPropagator::new(),
    );
    for sampled in [false, true] {
        use opentelemetry_0_32::trace::TracerProvider as _;
        use tracing_subscriber::layer::SubscriberExt;
        let label = if sampled { "sampled" } else { "unsampled" };
        let provider = opentelemetry_sdk_0_32::trace::SdkTracerProvider::builder()
            .with_batch_exporter(Discard)
            .with_sampler(if sampled {
                opentelemetry_sdk_0_32::trace::Sampler::AlwaysOn
            } else {
                opentelemetry_sdk_0_32::trace::Sampler::AlwaysOff
            })
            .build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry_0_33::layer().with_tracer(provider.tracer("bench")));
        let theirs = client(Some(std::sync::Arc::new(
            reqwest_tracing::TracingMiddleware::<reqwest_tracing::DefaultSpanBackend>::new(),
        )));
        tracing::subscriber::with_default(subscriber, || {
            let parent = tracing::info_span!("handler");
            let _current = parent.enter();
            g.bench_function(format!("reqwest-tracing/{label}"), |b| {
                b.iter(|| rt.block_on(send(&theirs)))
            });
        });
        let _ = provider.shutdown();
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    targets = reqwest_client
}
criterion_main!(benches);
