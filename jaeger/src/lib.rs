//! A Jaeger-compatible OpenTracing tracer for Rust services.
//!
//! [`JaegerTracer`] implements [`opentracing_api::Tracer`]: it generates
//! ids, decides sampling, records sampled spans and sends them, from a
//! background thread, to a Jaeger agent (UDP, compact Thrift), a Jaeger
//! collector (HTTP, binary Thrift) or any OTLP endpoint (HTTP/protobuf, or
//! gRPC with the `otlp-grpc` feature): Jaeger v2, Grafana Tempo, an
//! OpenTelemetry collector.
//!
//! ```no_run
//! use opentracing_api::prelude::*;
//! use opentracing_jaeger::JaegerTracer;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // JAEGER_* / OTEL_* variables; with none set: OTLP/HTTP to localhost:4318.
//! let tracer = JaegerTracer::from_env()?;
//! let span = tracer.span("HTTP GET /dispatch").tag(tags::SPAN_KIND, tags::SPAN_KIND_SERVER).start();
//! span.finish();
//! tracer.close(std::time::Duration::from_secs(5))?;
//! # Ok(()) }
//! ```
//!
//! # The request path never blocks on export
//!
//! Finishing a sampled span pushes it into a bounded lock-free queue
//! (default 2048 spans); a full queue drops the span and counts it in
//! [`Metrics`]. One background thread drains the queue in batches, at least
//! every flush interval, and sends them, retrying retryable failures with
//! backoff. A dead collector costs dropped batches and counters, never a
//! blocked request or unbounded memory. Unsampled spans carry their ids
//! (so the trace continues downstream) but record and allocate nothing.

mod config;
mod counter;
mod ids;
mod metrics;
mod prefetch;
mod reporter;
pub mod sampler;
mod thrift;
mod tracer;
pub mod transport;

pub use config::{
    builder_from_env, builder_from_vars, propagator_for, ConfigError, Exporter,
    JaegerTracerBuilder, PropagationFormat, DEFAULT_AGENT_ADDR, DEFAULT_OTLP_HTTP_URL,
    DEFAULT_SAMPLING_ENDPOINT,
};
pub use metrics::{Metrics, MetricsSnapshot};
pub use reporter::{CompositeTransport, InMemoryTransport, LoggingTransport, NullTransport};
pub use thrift::Process;
pub use tracer::{BaggageRestrictions, FlushError, JaegerTracer, DEBUG_ID_TAG};

/// The README's examples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
