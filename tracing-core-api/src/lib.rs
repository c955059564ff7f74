//! OpenTracing for Rust: spans, references, tags, logs, baggage, and
//! propagation in the Jaeger, W3C and B3 formats.
//!
//! This crate is the API: it defines what instrumentation code talks to and
//! what adapters (tower layers, tonic interceptors, reqwest middleware)
//! depend on, without choosing an implementation. Plug in the Jaeger tracer
//! (`opentracing-jaeger`), the [`NoopTracer`], the [`MockTracer`] in tests,
//! or your own [`Tracer`].
//!
//! # The data model
//!
//! A *trace* is a tree of [`Span`]s. Each span has an operation name, start
//! and finish times, [tags] (typed key/values about the whole
//! operation), [logs](Span::log) (timestamped events), and
//! [`Reference`]s to other spans: `ChildOf` when the parent waits for the
//! child, `FollowsFrom` when it does not. What crosses process boundaries is
//! the [`SpanContext`]: trace id, span id, flags, and *baggage*, items that
//! travel with the trace to every later span.
//!
//! ```
//! use opentracing_api::{tags, Format, MockTracer, Tracer, TracerExt};
//! use http::HeaderMap;
//!
//! let tracer = MockTracer::new();
//!
//! // Client side: start a span and inject its context into the request.
//! let mut span = tracer.span("GET /customer").tag(tags::SPAN_KIND, tags::SPAN_KIND_CLIENT).start();
//! span.set_baggage_item("customer", "123").unwrap();
//! let mut headers = HeaderMap::new();
//! tracer.inject(span.context(), Format::HttpHeaders, &mut headers);
//!
//! // Server side: extract it and continue the trace. A malformed header is
//! // an error to log, never a failed request: the span becomes a root.
//! let parent = tracer.extract(Format::HttpHeaders, &headers).ok().flatten();
//! let server = tracer.span("HTTP GET /customer").with_extracted(parent).start();
//! assert_eq!(server.context().trace_id(), span.context().trace_id());
//! assert_eq!(server.baggage_item("customer"), Some("123"));
//! ```
//!
//! # The current span
//!
//! Spans started without an explicit parent are children of the
//! [current span](current_span). Middleware makes its span current while the
//! handler runs ([`SpanFutureExt::with_span`]), so nothing in the handler
//! needs a tracing call for its outgoing calls to join the trace; use
//! [`SpanFutureExt::with_current_span`] to carry it into `tokio::spawn`.
//!
//! # Propagation
//!
//! | propagator | headers |
//! | --- | --- |
//! | [`JaegerPropagator`] | `uber-trace-id`, `uberctx-{key}`, `jaeger-debug-id`, `jaeger-baggage`; plus Jaeger's binary format |
//! | [`TraceContextPropagator`] | W3C `traceparent`, `tracestate` |
//! | [`W3CBaggagePropagator`] | W3C `baggage` |
//! | [`B3Propagator`] | B3 multi (`x-b3-*`) and single (`b3`) |
//! | [`CompositePropagator`] | extracts the first format present, injects all |
//!
//! Extraction never panics and never trusts its input: a malformed value
//! gives an [`ExtractError`] naming the header and the reason, oversized
//! values are refused before any allocation, and baggage is bounded by
//! [`BaggageLimits`].
//!
//! # The propagation policy
//!
//! Trace context and baggage can leak internal details (baggage may carry
//! user ids), and callers can forge them (a forged sampled flag makes a
//! service record everything, a forged debug id forces a trace). The model
//! is a homeserver allowlist: trust incoming sampling decisions and baggage
//! only from trusted callers ([`ExtractPolicy`]), and inject only towards
//! trusted destinations ([`InjectPolicy`]).
//!
//! Every adapter and every extraction path of a tracer applies the same
//! [`ExtractPolicy`]; every client adapter decides injection with the same
//! [`InjectPolicy`] and removes forwarded trace headers with
//! [`strip_trace_headers`].
//!
//! ```
//! use opentracing_api::{ExtractPolicy, InjectPolicy, SpanContext, SpanId, TraceFlags, TraceId};
//!
//! // A public edge: continue callers' traces, decide sampling here, drop
//! // their baggage and debug ids.
//! let policy = ExtractPolicy::untrusted();
//! let forged = SpanContext::new(TraceId::from_u64(7), SpanId::from_u64(9), TraceFlags::SAMPLED);
//! let cx = policy.apply(Some(forged)).unwrap();
//! assert_eq!(cx.trace_id(), TraceId::from_u64(7));
//! assert!(!cx.is_sampling_decided(), "the local sampler decides");
//!
//! // Trace headers go to our own services only.
//! let inject = InjectPolicy::allowlist(["*.internal", "localhost"]);
//! assert!(inject.allows(Some("billing.internal")));
//! assert!(!inject.allows(Some("api.partner.com")));
//! ```
//!
//! # Robustness and limits
//!
//! Extractors return `Result<Option<SpanContext>, ExtractError>`: `Ok(None)`
//! when nothing was sent, an error naming the header when it is malformed,
//! never a panic. Values longer than any valid one are refused before they
//! are parsed. Baggage is bounded by [`BaggageLimits`] (by default 64 items,
//! keys up to 256 bytes, values up to 4096 bytes, 8192 bytes in all) on
//! extraction and on [`Span::set_baggage_item`]; items over a limit are
//! dropped, the rest of the context is kept.

#![cfg_attr(docsrs, feature(doc_auto_cfg))]

mod baggage;
mod carrier;
mod context;
mod current;
mod global;
mod id;
mod mock;
mod noop;
mod policy;
mod propagation;
mod span;
mod tag;
mod tracer;

#[doc(hidden)]
pub use baggage::take_dropped_baggage;
pub use baggage::{Baggage, BaggageError, BaggageLimits};
#[doc(hidden)]
pub use carrier::find_header;
pub use carrier::{Extractor, Format, Injector};
pub use context::SpanContext;
pub use current::{current_context, current_span, Entered, SpanFutureExt, WithSpan};
pub use global::{global_tracer, is_global_tracer_set, set_global_tracer, GlobalTracerAlreadySet};
pub use id::{SpanId, TraceFlags, TraceId};
pub use mock::MockTracer;
pub use noop::NoopTracer;
pub use policy::{is_trace_header, strip_trace_headers, ExtractPolicy, HostPattern, InjectPolicy};
pub use propagation::{
    B3Encoding, B3Propagator, CompositePropagator, ExtractError, InjectError, JaegerHeaders,
    JaegerPropagator, NoopPropagator, Propagator, TraceContextPropagator, W3CBaggagePropagator,
};
pub use span::{FinishedSpan, LogRecord, Reference, ReferenceKind, SharedSpan, Span, SpanRecorder};
pub use tag::{log_fields, tags, Field, Tag, TagValue};
pub use tracer::{References, SpanBuilder, StartSpanOptions, StartTags, Tracer, TracerExt};

/// The traits needed to start spans and instrument futures, and the
/// standard tag and log-field names.
pub mod prelude {
    pub use crate::{log_fields, tags, SpanFutureExt, Tracer, TracerExt};
}

/// Instruments a function with a span, child of the current span, using the
/// [global tracer](global_tracer).
///
/// The span is named after the function, or `#[trace(name = "...")]`, and is
/// current while the body runs, across `.await` for `async fn`. When the
/// function returns a `Result` whose error is `Err`, the span gets
/// `error=true` and an error log (the error type must implement `Display`).
///
/// ```
/// use opentracing_api::trace;
///
/// #[trace]
/// fn parse(input: &str) -> Result<u32, std::num::ParseIntError> {
///     input.parse()
/// }
///
/// #[trace(name = "load customer")]
/// async fn load(id: u32) -> u32 {
///     id
/// }
/// # assert!(parse("x").is_err());
/// ```
#[cfg(feature = "macros")]
pub use opentracing_api_macros::trace;

#[doc(hidden)]
pub mod __private {
    use std::fmt::Display;

    use crate::{SharedSpan, TracerExt};

    /// Starts the span of a `#[trace]`d function.
    pub fn start_span(name: &'static str) -> SharedSpan {
        crate::global_tracer().span(name).start_shared()
    }

    /// Marks the span failed when the function returned an error.
    pub fn record_result<T, E: Display>(span: &SharedSpan, result: &Result<T, E>) {
        if let Err(e) = result {
            span.set_error(e);
        }
    }
}

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
