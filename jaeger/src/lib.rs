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
//!
//! # Configuration from the environment
//!
//! [`JaegerTracer::from_env`] and [`builder_from_env`] read the variables
//! of the Jaeger clients and of OpenTelemetry's SDKs. Where a Jaeger and
//! an OpenTelemetry variable say the same thing, the Jaeger one wins. A
//! value that cannot be used is an error naming the variable, never
//! silently ignored; so is a value that is not valid UTF-8
//! ([`ConfigError::NotUnicode`]).
//!
//! | variable | effect | default |
//! | --- | --- | --- |
//! | `JAEGER_SERVICE_NAME`, `OTEL_SERVICE_NAME` | service name (`service.name` in `OTEL_RESOURCE_ATTRIBUTES` also works) | required |
//! | `JAEGER_DISABLED` | `true`: sample nothing and export nothing (contexts still propagate) | `false` |
//! | `JAEGER_TAGS` | process tags, `k=v,k2=${ENV_VAR:default}` | none |
//! | `OTEL_RESOURCE_ATTRIBUTES` | process tags, `k=v,k2=v2` (percent-decoded) | none |
//! | `JAEGER_ENDPOINT` | export to a Jaeger collector (binary Thrift over HTTP, `http://host:14268/api/traces`) | unset |
//! | `JAEGER_USER`, `JAEGER_PASSWORD` | basic auth for the collector (both or neither) | none |
//! | `JAEGER_AUTH_TOKEN` | bearer token for the collector | none |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` | export over OTLP; `/v1/traces` is appended for HTTP | unset |
//! | `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` | export over OTLP to this exact URL | unset |
//! | `OTEL_EXPORTER_OTLP_PROTOCOL`, `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` | `http/protobuf` or `grpc` (feature `otlp-grpc`; default endpoint `http://localhost:4317`) | `http/protobuf` |
//! | `OTEL_EXPORTER_OTLP_HEADERS` | `k=v,k2=v2` headers on OTLP requests | none |
//! | `JAEGER_AGENT_HOST`, `JAEGER_AGENT_PORT` | export to a Jaeger agent over UDP (compact Thrift) | `localhost`, `6831` |
//! | `JAEGER_SAMPLER_TYPE` | `const`, `probabilistic`, `ratelimiting`, `remote` | `const` |
//! | `JAEGER_SAMPLER_PARAM` | `const`: 0 or 1; `probabilistic`: a rate; `ratelimiting`: traces per second; `remote`: the initial rate | `1`; `0.001`; `1`; `0.001` |
//! | `JAEGER_SAMPLING_ENDPOINT` | the remote sampler's URL | `http://127.0.0.1:5778/sampling`, or port 5778 of `JAEGER_AGENT_HOST` |
//! | `JAEGER_SAMPLER_REFRESH_INTERVAL` | remote sampler poll interval (`1m`, `30s`, `500ms`; at least 1s) | `1m` |
//! | `OTEL_TRACES_SAMPLER` | `always_on`, `always_off`, `traceidratio`, `parentbased_*`, `jaeger_remote`, `parentbased_jaeger_remote`; without `parentbased_` the caller's sampling decision is not trusted | unset |
//! | `OTEL_TRACES_SAMPLER_ARG` | `traceidratio`: the rate; `jaeger_remote`: `endpoint=URL,pollingIntervalMs=N,initialSamplingRate=R` | `1.0`; see `JAEGER_SAMPLING_ENDPOINT` |
//! | `JAEGER_REPORTER_MAX_QUEUE_SIZE` | queue capacity in spans (at most 1 048 576: allocated up front) | `2048` |
//! | `JAEGER_REPORTER_FLUSH_INTERVAL` | longest a span waits before it is sent (`1s`, `500ms`, or milliseconds) | `1s` |
//! | `JAEGER_REPORTER_LOG_SPANS` | also log every span (the `log` crate, info level) | `false` |
//! | `JAEGER_PROPAGATION`, `OTEL_PROPAGATORS` | formats, in extraction order: `jaeger`, `w3c` / `tracecontext`, `baggage`, `b3` (single), `b3multi` | `jaeger,tracecontext,baggage`, and B3 read but not written |
//! | `JAEGER_TRACEID_128BIT` | 128-bit or 64-bit trace ids | `true` |
//!
//! The exporter is chosen in this order: `JAEGER_ENDPOINT`, then the OTLP
//! endpoint variables, then `JAEGER_AGENT_HOST` / `JAEGER_AGENT_PORT`, then
//! the default, OTLP/HTTP to `http://localhost:4318/v1/traces`. Endpoints
//! must be `http://`: this crate has no TLS, and an `https://` endpoint is
//! refused when the tracer is built (rather than failing every send); send
//! through a local agent or collector, which can forward over TLS.

mod config;
mod counter;
mod ids;
mod metrics;
mod prefetch;
mod process;
mod reporter;
pub mod sampler;
mod tracer;
pub mod transport;

pub use config::{
    builder_from_env, builder_from_vars, propagator_for, ConfigError, Exporter,
    JaegerTracerBuilder, PropagationFormat, DEFAULT_AGENT_ADDR, DEFAULT_OTLP_HTTP_URL,
    DEFAULT_SAMPLING_ENDPOINT,
};
pub use metrics::{Metrics, MetricsSnapshot};
pub use process::Process;
pub use tracer::{BaggageRestrictions, FlushError, JaegerTracer, DEBUG_ID_TAG};
pub use transport::local::{
    CompositeTransport, InMemoryTransport, LoggingTransport, NullTransport,
};

/// The README's examples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
