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
