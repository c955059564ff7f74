//! OpenTracing for tower, axum and hyper: one `.layer(...)` on a server,
//! one on a client, and every request joins the caller's trace.
//!
//! - [`TracingLayer`]: server spans, `ChildOf` the caller's context.
//! - [`ClientTracingLayer`]: client spans, child of the current span,
//!   injected into outgoing headers per the
//!   [`InjectPolicy`](opentracing_api::InjectPolicy).
//! - [`RpcMetrics`]: request, error and latency metrics per endpoint, in
//!   the Prometheus text format.
//!
//! Handlers make no tracing calls: the server span is the current span
//! while they run, so the client layer (and the reqwest and tonic adapters)
//! parent their spans on it. A handler that wants to add tags finds the
//! span with `opentracing_api::current_span()`, in the request's extensions
//! (a `SharedSpan`, for the spans the tracer records), or with the `axum`
//! feature through the `CurrentSpan` extractor.
//!
//! Adapters depend only on `opentracing-api`: any tracer works (the Jaeger
//! tracer, the no-op tracer, the mock tracer in tests).

mod body;
mod client;
mod future;
pub mod lifecycle;
mod observer;
mod request;
#[cfg(feature = "axum")]
mod route_names;
mod rpc_metrics;
mod server;

#[cfg(feature = "axum")]
pub use body::AxumBodies;
pub use body::{ResponseBodies, TracedBodies, TracedBody};
pub use client::{ClientTracingLayer, ClientTracingService};
pub use future::ResponseFuture;
pub use observer::{Observer, RequestOutcome};
pub use request::QueryPolicy;
pub use rpc_metrics::RpcMetrics;
pub use server::{TracingLayer, TracingService};

#[cfg(feature = "axum")]
mod axum_support {
    use std::convert::Infallible;

    use axum::extract::FromRequestParts;
    use http::request::Parts;
    use opentracing_api::{SharedSpan, Span};

    /// The request's server span, for handlers that want to add tags, logs
    /// or baggage: the one in the request's extensions (a span the tracer
    /// records), else the current span (one it does not record), else,
    /// outside any trace, a no-op span.
    ///
    /// ```
    /// use opentracing_tower::CurrentSpan;
    /// async fn handler(CurrentSpan(span): CurrentSpan) -> &'static str {
    ///     span.set_tag("customer", 123);
    ///     "ok"
    /// }
    /// ```
    #[derive(Clone, Debug)]
    pub struct CurrentSpan(pub SharedSpan);

    impl<S: Send + Sync> FromRequestParts<S> for CurrentSpan {
        type Rejection = Infallible;

        async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
            Ok(CurrentSpan(
                parts
                    .extensions
                    .get::<SharedSpan>()
                    .cloned()
                    .or_else(opentracing_api::current_span)
                    .unwrap_or_else(|| Span::noop().into_shared()),
            ))
        }
    }
}

#[cfg(feature = "axum")]
pub use axum_support::CurrentSpan;

/// The README's examples, compiled as doc tests.
#[cfg(all(doctest, feature = "axum"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
