//! What every HotROD HTTP server shares: the tracing layer with RPC
//! metrics, the `traceresponse` header, and `/metrics`.

use axum::extract::Request;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use opentracing_api::SharedSpan;
use opentracing_jaeger::JaegerTracer;
use opentracing_tower::TracingLayer;

use crate::Telemetry;

/// Paths that are not part of the application: no spans, no RPC metrics.
fn traced(path: &str) -> bool {
    !(path == "/metrics"
        || path == "/favicon.ico"
        || path == "/config"
        || path == "/debug/vars"
        || path.starts_with("/api/")
        || path == "/trace"
        || path.starts_with("/trace/"))
}

/// Adds `/metrics` (the RPC metrics and the tracers' metrics of
/// `services`), the `traceresponse` header, and the server tracing layer
/// with `tracer` to `app`.
pub(crate) fn instrument(
    app: Router,
    tracer: JaegerTracer,
    telemetry: &Telemetry,
    services: &'static [&'static str],
) -> Router {
    let metrics = telemetry.rpc_metrics(services[0]);
    let scrape = telemetry.clone();
    app.route(
        "/metrics",
        get(move || async move {
            (
                [(CONTENT_TYPE, "text/plain; version=0.0.4")],
                scrape.prometheus_text(services),
            )
        }),
    )
    .layer(middleware::from_fn(trace_response))
    .layer(
        TracingLayer::new(tracer)
            .with_axum_bodies()
            .with_filter(|parts| traced(parts.uri.path()))
            .with_observer(metrics),
    )
}

/// Adds the W3C `traceresponse` header (`00-{trace-id}-{span-id}-01`) of the
/// request's server span, so that callers (the web page) can link to the
/// trace.
async fn trace_response(req: Request, next: Next) -> Response {
    // In the extensions when the tracer records the span; current either way.
    let span = req
        .extensions()
        .get::<SharedSpan>()
        .cloned()
        .or_else(opentracing_api::current_span);
    let mut resp = next.run(req).await;
    if let Some(span) = span {
        let cx = span.context();
        if cx.trace_id().is_valid() {
            let flags = if cx.is_sampled() { "01" } else { "00" };
            let value = format!("00-{}-{}-{flags}", cx.trace_id().to_hex32(), cx.span_id());
            if let Ok(v) = HeaderValue::from_str(&value) {
                resp.headers_mut().insert("traceresponse", v);
            }
        }
    }
    resp
}

/// A plain-text error response.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, message.into()).into_response()
}
