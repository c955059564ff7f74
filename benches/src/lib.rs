//! Shared pieces of the benchmark binaries: the app they serve, the
//! OpenTelemetry stack they compare against, set up once, and what the load
//! generators share.

pub mod load;

use axum::body::Body;
use axum::extract::Path;
use axum::routing::get;
use axum::Router;
use http::Request;

/// An OpenTelemetry exporter that discards everything (to measure the
/// instrumentation, not the exporter).
#[derive(Debug)]
pub struct DiscardExporter;

impl opentelemetry_sdk::trace::SpanExporter for DiscardExporter {
    fn export(
        &self,
        _: Vec<opentelemetry_sdk::trace::SpanData>,
    ) -> impl std::future::Future<Output = opentelemetry_sdk::error::OTelSdkResult> + Send {
        std::future::ready(Ok(()))
    }
}

/// `GET /users/{id}`: a small JSON answer.
pub async fn user(Path(id): Path<u64>) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({"id": id, "name": "Rachel", "location": "115,277"}))
}

/// A router with just [`user`], its routes built once as `axum::serve`
/// builds them (without `with_state`, axum would turn the handler into a
/// route again on every request, which a server never does).
pub fn users_app() -> Router {
    Router::new().route("/users/{id}", get(user)).with_state(())
}

/// `GET /users/42` with a sampled `uber-trace-id` and `traceparent`, as the
/// load runs send it.
pub fn traced_request() -> Option<Request<Body>> {
    Request::get("/users/42")
        .header("host", "127.0.0.1:8080")
        .header(
            "uber-trace-id",
            "4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7:0:1",
        )
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .body(Body::empty())
        .ok()
}

/// An OpenTelemetry tracer provider with the batch processor, `exporter`,
/// and the always-on or always-off sampler.
pub fn otel_provider<E>(exporter: E, sampled: bool) -> opentelemetry_sdk::trace::SdkTracerProvider
where
    E: opentelemetry_sdk::trace::SpanExporter + 'static,
{
    use opentelemetry_sdk::trace::Sampler;
    opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(if sampled {
            Sampler::AlwaysOn
        } else {
            Sampler::AlwaysOff
        })
        .build()
}

/// The server span tower-http's `TraceLayer` makes in an OpenTelemetry
/// setup: parented on the W3C context the global propagator extracts.
pub fn otel_make_span(req: &Request<Body>) -> tracing::Span {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let parent = opentelemetry::global::get_text_map_propagator(|p| {
        p.extract(&opentelemetry_http::HeaderExtractor(req.headers()))
    });
    let span = tracing::info_span!(
        "request",
        otel.name = %format!("{} {}", req.method(), req.uri().path()),
        otel.kind = "server",
        http.method = %req.method(),
        http.url = %req.uri(),
        http.status_code = tracing::field::Empty,
    );
    let _ = span.set_parent(parent);
    span
}

/// The Jaeger tracer of the `unsampled` and `sampled` modes of the bench
/// servers: configured from the `JAEGER_*` / `OTEL_*` variables (service
/// name `service` unless they set one), sampling everything or nothing.
/// "Sampling nothing" means nothing: the load's incoming headers say
/// sampled, and OpenTelemetry's always-off ignores that too.
pub fn jaeger_tracer(
    service: &str,
    sampled: bool,
) -> Result<opentracing_jaeger::JaegerTracer, String> {
    let has_name = std::env::var_os("JAEGER_SERVICE_NAME").is_some()
        || std::env::var_os("OTEL_SERVICE_NAME").is_some();
    let lookup = |k: &str| {
        std::env::var(k)
            .ok()
            .or_else(|| (!has_name && k == "OTEL_SERVICE_NAME").then(|| service.to_owned()))
    };
    let policy = opentracing_api::ExtractPolicy::default().with_trust_sampling(sampled);
    opentracing_jaeger::builder_from_vars(&lookup)
        .map_err(|e| e.to_string())?
        .sampler(opentracing_jaeger::sampler::ConstSampler(sampled))
        .extract_policy(policy)
        .build()
        .map_err(|e| e.to_string())
}

/// fastrace's Jaeger UDP reporter, set as its global reporter, for the
/// `fastrace` modes of the bench servers: to `JAEGER_AGENT_HOST` /
/// `JAEGER_AGENT_PORT` (default `127.0.0.1:6831`), service `service`.
#[cfg(feature = "fastrace")]
pub fn set_fastrace_reporter(service: &str) -> Result<(), String> {
    let host = std::env::var("JAEGER_AGENT_HOST").unwrap_or_else(|_| "127.0.0.1".into());
    let port = std::env::var("JAEGER_AGENT_PORT").unwrap_or_else(|_| "6831".into());
    let agent: std::net::SocketAddr = format!("{host}:{port}")
        .parse()
        .map_err(|e| format!("JAEGER_AGENT_HOST/PORT {host}:{port}: {e}"))?;
    let reporter = fastrace_jaeger::JaegerReporter::new(agent, service)
        .map_err(|e| format!("fastrace Jaeger reporter: {e}"))?;
    fastrace::set_reporter(reporter, fastrace::collector::Config::default());
    Ok(())
}

/// A bench server's `main`: parses its arguments (exit 2 with the message
/// on error), runs `run` on a runtime of `workers(&args)` threads, and
/// exits 1 with the message if it fails.
pub fn serve_main<A, F>(
    args: Result<A, String>,
    workers: impl Fn(&A) -> usize,
    run: impl FnOnce(A) -> F,
) where
    F: std::future::Future<Output = Result<(), String>>,
{
    let args = match args {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers(&args).max(1))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(run(args)) {
        eprintln!("{e}");
        std::process::exit(1);
    }
}
