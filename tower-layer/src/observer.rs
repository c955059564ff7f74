//! What adapters tell about each finished request: the basis of RPC
//! metrics.

use std::time::Duration;

/// What an [`Observer`] learns about each finished request.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RequestOutcome<'a> {
    /// The span's operation name (the route template, the method, or the
    /// gRPC method).
    pub operation: &'a str,
    /// The response status, when there was a response: the HTTP status,
    /// or the gRPC status code for gRPC adapters.
    pub status: Option<u16>,
    /// From the request's arrival to the end of its response body.
    pub duration: Duration,
    /// Whether the span was marked failed (5xx, a non-OK gRPC status,
    /// service error, panic, body error, body dropped early).
    pub error: bool,
}

/// Called once per finished server span: the basis of RPC metrics (see
/// [`RpcMetrics`](crate::RpcMetrics)).
pub trait Observer: Send + Sync {
    /// One request finished.
    fn on_finish(&self, outcome: &RequestOutcome<'_>);
}
