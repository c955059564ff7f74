//! OpenTracing client spans for [reqwest], as a [`reqwest_middleware`]
//! middleware.
//!
//! Wrap the client you already use; every request becomes a client span,
//! child of the current span (the server span of a request being handled,
//! when the server uses `opentracing-tower`'s layer), and carries its
//! context to the destination in the tracer's formats (Jaeger, W3C, B3):
//!
//! ```
//! use opentracing_api::MockTracer;
//! use opentracing_reqwest::TracingMiddleware;
//! use reqwest_middleware::ClientBuilder;
//!
//! let tracer = MockTracer::new();
//! let client = ClientBuilder::new(reqwest::Client::new())
//!     .with(TracingMiddleware::new(tracer))
//!     .build();
//! # drop(client);
//! ```
//!
//! # What a span records
//!
//! Spans are named `HTTP {METHOD}` (`HTTP GET`), never after the URL, so
//! that ids in paths do not make every request a new operation; give a
//! route template per request ([`RouteTemplate`]: `GET /users/{id}`) or a
//! naming function ([`TracingMiddleware::with_operation_name`]) for more.
//! Tags: `span.kind=client`, `component`, `http.method`, `http.url` (no
//! credentials; the query kept, stripped or redacted, see
//! [`with_query`](TracingMiddleware::with_query)), `peer.hostname`,
//! `peer.port`, `http.status_code`, [`ATTEMPT_TAG`]; `error=true` with an
//! error log (`error.kind`: `connect`, `timeout`, `body`, `request`,
//! `redirect`, `middleware`, `http_status`) for transport errors and 5xx
//! responses (4xx too with
//! [`with_client_errors_fail`](TracingMiddleware::with_client_errors_fail)).
//!
//! # Propagation
//!
//! The context goes out through the tracer's own propagator: nothing to
//! register globally. Trace headers already on the request (a proxy
//! forwarding what it received) are removed first, so a destination gets
//! this span's context only; one outside the
//! [`InjectPolicy`](opentracing_api::InjectPolicy) gets no trace headers
//! and no baggage at all.
//!
//! # Per request
//!
//! Through `reqwest_middleware`'s extensions
//! (`client.get(url).with_extension(...)`): [`OperationName`] names one
//! request's span, [`RouteTemplate`] names it after a route, and
//! [`SkipTracing`] leaves the request alone.
//!
//! # Retries
//!
//! Put the retry middleware *before* this one, so that every attempt
//! passes through it and gets its own span, all siblings under the same
//! parent, tagged with their attempt number:
//!
//! ```
//! # use opentracing_api::MockTracer;
//! # use opentracing_reqwest::TracingMiddleware;
//! use reqwest_middleware::ClientBuilder;
//! use reqwest_retry::{policies::ExponentialBackoff, RetryTransientMiddleware};
//!
//! # let tracer = MockTracer::new();
//! let retries = ExponentialBackoff::builder().build_with_max_retries(3);
//! let client = ClientBuilder::new(reqwest::Client::new())
//!     .with(RetryTransientMiddleware::new_with_policy(retries))
//!     .with(TracingMiddleware::new(tracer))
//!     .build();
//! # drop(client);
//! ```
//!
//! In the other order the retries happen inside one span, which then
//! shows only the last attempt's outcome.
//!
//! # When the span ends
//!
//! By default when the response headers are back: most callers read small
//! bodies at once. [`with_body_tracking`](TracingMiddleware::with_body_tracking)
//! keeps the span open until the body has been read to its end or dropped,
//! so that a slow download shows in the trace; the response keeps its URL,
//! status, headers and extensions.

#![cfg_attr(docsrs, feature(doc_auto_cfg))]

mod extensions;
mod middleware;

pub use extensions::{OperationName, RouteTemplate, SkipTracing};
pub use middleware::{TracingMiddleware, ATTEMPT_TAG};

/// The README's examples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
