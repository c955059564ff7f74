//! OpenTracing for [tonic](https://docs.rs/tonic) gRPC servers and
//! clients: one `.layer(...)` on the server, one on the channel, and every
//! call joins the caller's trace.
//!
//! - [`GrpcServerLayer`]: a server span per call, `ChildOf` the caller's
//!   context read from the call's metadata (Jaeger, W3C and B3 keys, as the
//!   tracer's propagator reads them), named after the full method
//!   (`/driver.DriverService/FindNearest`), finished with the call's status
//!   when the response stream ends.
//! - [`GrpcClientLayer`]: a client span per call, child of the current
//!   span, injected into the call's metadata per the
//!   [`InjectPolicy`](opentracing_api::InjectPolicy).
//! - [`ClientInterceptor`] and [`ServerInterceptor`]: the
//!   `with_interceptor` forms, for propagation only (see [`interceptor`]
//!   for what an interceptor cannot see).
//!
//! # What a span records
//!
//! `span.kind`, `component=grpc`, the peer (`peer.ipv4`/`peer.ipv6` and
//! `peer.port` on the server, `peer.hostname` and `peer.port` on the
//! client), and the gRPC status code as the integer tag
//! [`rpc.grpc.status_code`](status::GRPC_STATUS_CODE). A status other than
//! `OK` sets `error=true` and logs the code's name and the status message;
//! so do a cancelled call (`CANCELLED`), a passed deadline
//! (`DEADLINE_EXCEEDED`), a transport failure and a panicking handler.
//!
//! The status comes from the response headers for a *trailers-only*
//! response (a call that failed before any message) and from the trailers
//! otherwise, so a server-streaming call that fails after three messages is
//! recorded with the status it ended with, when it ended. See [`status`].
//!
//! # Handlers make no tracing calls
//!
//! The server span is the current span while the service method runs and
//! while its response stream is polled, so a traced client (this crate's
//! [`GrpcClientLayer`], `opentracing-tower`'s `ClientTracingLayer`) called
//! from the method makes its span a child of the call's. A span the tracer
//! records is also in the request's extensions as a
//! [`SharedSpan`](opentracing_api::SharedSpan) for handlers that want to
//! add tags (one it does not record has nothing to add them to; it is still
//! `opentracing_api::current_span()`):
//!
//! ```
//! use opentracing_api::SharedSpan;
//!
//! fn tag_customer<T>(request: &tonic::Request<T>, customer: i64) {
//!     if let Some(span) = request.extensions().get::<SharedSpan>() {
//!         span.set_tag("customer", customer);
//!     }
//! }
//! ```
//!
//! # Metrics
//!
//! [`GrpcServerLayer::with_observer`] takes the same
//! [`Observer`](opentracing_tower::Observer) as the HTTP layers:
//! [`RpcMetrics`](opentracing_tower::RpcMetrics) counts calls and errors
//! and keeps a latency histogram per method, with the gRPC code as the
//! status.
//!
//! # Features
//!
//! - `transport` (default): peer addresses from tonic's transport server
//!   (`TcpConnectInfo`).
//! - `axum`: peer addresses from axum's `ConnectInfo<SocketAddr>`, for
//!   tonic services served by an axum router.

mod body;
mod call;
mod client;
mod future;
pub mod interceptor;
mod metadata;
mod server;
pub mod status;

pub use body::GrpcBody;
pub use client::{GrpcClientLayer, GrpcClientService};
pub use future::ResponseFuture;
pub use interceptor::{ClientInterceptor, ServerInterceptor};
pub use metadata::{MetadataExtractor, MetadataInjector};
pub use server::{
    is_health_check, GrpcServerLayer, GrpcServerService, MAX_METHOD_LEN, OTHER_METHOD,
};

/// The README's examples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
