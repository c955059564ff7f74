//! The request-span lifecycle every adapter shares: naming, the common
//! tags, and a span that finishes exactly once.
//!
//! The HTTP server and client layers of this crate are built from these
//! pieces, and so are the gRPC (`opentracing-tonic`) and reqwest
//! (`opentracing-reqwest`) adapters: an adapter adds only its carrier, its
//! naming and its status mapping. Users of the layers never need this
//! module; it is public for adapter crates.
//!
//! ```
//! use opentracing_api::{tags, MockTracer, TracerExt};
//! use opentracing_tower::lifecycle::{tag_request, RequestSpan, Side};
//!
//! let tracer = MockTracer::new();
//! let mut span = tracer.span("GET").start();
//! tag_request(&mut span, Side::Client, "my-adapter", "GET", "http://svc/x".into());
//! let mut request = RequestSpan::new(span.into_shared(), "GET".into(), Side::Client);
//! request.set_status(503, true);
//! request.finish();
//! let finished = tracer.finished_spans();
//! assert_eq!(finished[0].tag(tags::ERROR).and_then(|v| v.as_bool()), Some(true));
//! ```

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentracing_api::{log_fields, tags, SharedSpan, Span, Tag};

use crate::observer::{Observer, RequestOutcome};
use crate::request::QueryPolicy;

/// Which end of a call a span stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Side {
    /// The server: `span.kind=server`; a response abandoned before its end
    /// (the client went away) fails the span.
    Server,
    /// The client: `span.kind=client`; a response the caller drops unread
    /// is not an error of the call.
    Client,
}

impl Side {
    /// The `span.kind` tag value.
    pub fn span_kind(self) -> &'static str {
        match self {
            Side::Server => tags::SPAN_KIND_SERVER,
            Side::Client => tags::SPAN_KIND_CLIENT,
        }
    }
}

/// A function naming spans from what an adapter sees of a request (`R`:
/// `http::request::Parts` for the tower layers).
pub type NameFn<R> = dyn Fn(&R) -> Cow<'static, str> + Send + Sync;

/// The span settings every adapter has: the `component` tag, what
/// `http.url` keeps of the query, and a naming function overriding the
/// adapter's default name.
#[non_exhaustive]
pub struct SpanSettings<R: ?Sized> {
    /// The `component` tag.
    pub component: Cow<'static, str>,
    /// What `http.url` records of the query string.
    pub query: QueryPolicy,
    /// Names spans instead of the adapter's default naming.
    pub name: Option<Arc<NameFn<R>>>,
}

impl<R: ?Sized> SpanSettings<R> {
    /// Settings tagging `component`, keeping the query, with the adapter's
    /// default naming.
    pub fn new(component: impl Into<Cow<'static, str>>) -> Self {
        SpanSettings {
            component: component.into(),
            query: QueryPolicy::Keep,
            name: None,
        }
    }

    /// The name `self.name` gives `request`, if it is set.
    pub fn custom_name(&self, request: &R) -> Option<Cow<'static, str>> {
        self.name.as_ref().map(|f| f(request))
    }
}

impl<R: ?Sized> Clone for SpanSettings<R> {
    fn clone(&self) -> Self {
        SpanSettings {
            component: self.component.clone(),
            query: self.query,
            name: self.name.clone(),
        }
    }
}

impl<R: ?Sized> std::fmt::Debug for SpanSettings<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpanSettings")
            .field("component", &self.component)
            .field("query", &self.query)
            .field("custom_name", &self.name.is_some())
            .finish()
    }
}

/// The builder methods of [`SpanSettings`], for a layer type with a
/// `fn span_settings(&mut self) -> &mut SpanSettings<Parts>`.
macro_rules! span_settings_methods {
    ($default_name:literal) => {
        /// The `component` tag (default `opentracing-tower`).
        pub fn with_component(
            mut self,
            component: impl Into<std::borrow::Cow<'static, str>>,
        ) -> Self {
            self.span_settings().component = component.into();
            self
        }

        /// What `http.url` records of the query string (default: all of
        /// it).
        pub fn with_query(mut self, policy: $crate::QueryPolicy) -> Self {
            self.span_settings().query = policy;
            self
        }

        #[doc = concat!("Names spans with `f` instead of ", $default_name, ".")]
        pub fn with_operation_name<F>(mut self, f: F) -> Self
        where
            F: Fn(&http::request::Parts) -> std::borrow::Cow<'static, str> + Send + Sync + 'static,
        {
            self.span_settings().name = Some(std::sync::Arc::new(f));
            self
        }
    };
}
pub(crate) use span_settings_methods;

/// Tags every request span gets: `span.kind`, `component`, `http.method`,
/// `http.url`. Call it only for spans that record (`span.is_recording()`).
#[inline]
pub fn tag_request(
    span: &mut Span,
    side: Side,
    component: impl Into<Cow<'static, str>>,
    method: impl Into<Cow<'static, str>>,
    url: String,
) {
    span.set_tag(tags::SPAN_KIND, side.span_kind());
    span.set_tag(tags::COMPONENT, component.into());
    span.set_tag(tags::HTTP_METHOD, method.into());
    span.set_tag(tags::HTTP_URL, url);
}

/// The `http.url` tag of a request: never its credentials
/// (`user:password@`), the query as `policy` says; an origin-form URI is
/// completed with `host` (the `Host` header).
pub fn url_tag(uri: &http::Uri, host: Option<&str>, policy: QueryPolicy) -> String {
    crate::request::url(uri, host, policy)
}

/// The `http.url` tag from a URL's parts (for clients whose requests carry
/// a parsed URL, such as reqwest's): `scheme://host[:port]path[?query]`,
/// the query as `policy` says. Credentials are never passed in, so never
/// recorded.
pub fn url_tag_from_parts(
    scheme: &str,
    host: &str,
    port: Option<u16>,
    path: &str,
    query: Option<&str>,
    policy: QueryPolicy,
) -> String {
    crate::request::url_from_parts(scheme, host, port, path, query, policy)
}

/// Wraps a response body so that `request`'s span finishes when the body
/// ends (or fails, or is dropped before its end), and is current while a
/// streaming body is polled.
pub fn traced_body<B: http_body::Body>(body: B, request: RequestSpan) -> crate::TracedBody<B> {
    crate::TracedBody::new(body, Some(Box::new(request)), None)
}

/// Tags the peer's address: `peer.ipv4` or `peer.ipv6`, and `peer.port`.
/// IPv4 clients of a dual-stack listener (`::ffff:a.b.c.d`) are tagged as
/// IPv4.
#[inline]
pub fn tag_peer_addr(span: &mut Span, addr: SocketAddr) {
    match addr.ip().to_canonical() {
        IpAddr::V4(ip) => span.set_tag(tags::PEER_HOST_IPV4, ipv4_string(ip)),
        ip @ IpAddr::V6(_) => span.set_tag(tags::PEER_HOST_IPV6, ip.to_string()),
    }
    span.set_tag(tags::PEER_PORT, addr.port());
}

/// `ip` in dotted decimal, as its `Display` writes it, without the
/// formatting machinery (a tenth of the instructions, on every sampled
/// server span).
fn ipv4_string(ip: Ipv4Addr) -> String {
    let mut s = String::with_capacity(15);
    for (i, n) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            s.push('.');
        }
        if n >= 100 {
            s.push(char::from(b'0' + n / 100));
        }
        if n >= 10 {
            s.push(char::from(b'0' + n / 10 % 10));
        }
        s.push(char::from(b'0' + n % 10));
    }
    s
}

/// Tags the peer's host name and port (`peer.hostname`, `peer.port`), for
/// client spans.
pub fn tag_peer_host(span: &mut Span, host: Option<&str>, port: Option<u16>) {
    if let Some(h) = host {
        span.set_tag(tags::PEER_HOSTNAME, h.to_owned());
    }
    if let Some(p) = port {
        span.set_tag(tags::PEER_PORT, p);
    }
}

/// The span of one request, with what it takes to finish it exactly once
/// and to tell an [`Observer`]: failures are recorded as they happen, and
/// [`finish`](Self::finish) consumes it.
pub struct RequestSpan {
    pub(crate) span: SharedSpan,
    /// When the request arrived; only read (and only taken) for an observer.
    pub(crate) started: Option<Instant>,
    pub(crate) operation: Cow<'static, str>,
    pub(crate) observer: Option<Arc<dyn Observer>>,
    pub(crate) status: Option<u16>,
    pub(crate) error: bool,
    /// No body is expected (a HEAD request, a 1xx, 204 or 304 response):
    /// dropping it unread is normal.
    pub(crate) no_body: bool,
    /// The body's length when known (exact size hint or Content-Length).
    pub(crate) expected_len: Option<u64>,
    pub(crate) bytes_sent: u64,
    /// Whether dropping the body before its end fails the span (server:
    /// the client went away; a client that drops a response is not an
    /// error of the call).
    pub(crate) fail_on_early_drop: bool,
}

impl std::fmt::Debug for RequestSpan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestSpan")
            .field("operation", &self.operation)
            .field("status", &self.status)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl RequestSpan {
    /// The request span of `span`, named `operation` for an observer.
    pub fn new(span: SharedSpan, operation: Cow<'static, str>, side: Side) -> Self {
        RequestSpan {
            span,
            started: None,
            operation,
            observer: None,
            status: None,
            error: false,
            no_body: false,
            expected_len: None,
            bytes_sent: 0,
            fail_on_early_drop: side == Side::Server,
        }
    }

    /// Tells `observer` when the span finishes, with the time since
    /// `started`.
    #[must_use]
    pub fn with_observer(mut self, observer: Arc<dyn Observer>, started: Instant) -> Self {
        self.started = Some(started);
        self.observer = Some(observer);
        self
    }

    /// Marks a response with no body to wait for (a HEAD request).
    #[must_use]
    pub fn without_body(mut self, no_body: bool) -> Self {
        self.no_body = no_body;
        self
    }

    /// The span.
    pub fn span(&self) -> &SharedSpan {
        &self.span
    }

    /// Records the response status for the observer, and fails the span
    /// (`http_status`) when `failed`. Adapters tag the status themselves:
    /// `http.status_code`, or a gRPC code.
    pub fn set_status(&mut self, status: u16, failed: bool) {
        self.status = Some(status);
        if failed {
            self.fail("http_status", format!("HTTP {status}"));
        }
    }

    /// Records a status for the observer without failing the span.
    pub fn record_status(&mut self, status: u16) {
        self.status = Some(status);
    }

    /// Marks the span failed: `error=true` and an error log with
    /// `error.kind` and `message`.
    pub fn fail(&mut self, kind: &'static str, message: impl Into<Cow<'static, str>>) {
        self.error = true;
        self.span.set_tag(tags::ERROR, true);
        self.span.log([
            Tag::new(log_fields::EVENT, log_fields::EVENT_ERROR),
            Tag::new(log_fields::ERROR_KIND, kind),
            Tag::new(log_fields::MESSAGE, message.into()),
        ]);
    }

    /// Whether the span was marked failed.
    pub fn is_failed(&self) -> bool {
        self.error
    }

    /// Finishes the span at the end of the body: a body that ended short of
    /// (or past) its announced length is a failed response (hyper cuts such
    /// a connection off).
    pub(crate) fn finish_at_end(mut self) {
        if let (false, Some(n)) = (self.no_body, self.expected_len) {
            if self.bytes_sent != n {
                let msg = format!("the body ended after {} of {n} bytes", self.bytes_sent);
                self.fail("body_length_mismatch", msg);
            }
        }
        self.finish();
    }

    /// Finishes the span and tells the observer.
    ///
    /// The observer gets the operation name the span started with (the
    /// route template), not a name a handler set later: that keeps metrics
    /// per endpoint stable, bounded, and the same for sampled and unsampled
    /// requests (renaming only affects recorded spans).
    pub fn finish(self) {
        self.span.finish();
        if let Some(o) = &self.observer {
            o.on_finish(&RequestOutcome {
                operation: &self.operation,
                status: self.status,
                duration: self.started.map_or(Duration::ZERO, |s| s.elapsed()),
                error: self.error,
            });
        }
    }
}

/// Finishes the span as failed (`panic`) if dropped while it still holds
/// it: only reached while unwinding, as it is forgotten on the normal path.
pub(crate) struct FinishOnUnwind<'a>(pub(crate) &'a mut Option<Box<RequestSpan>>);

impl Drop for FinishOnUnwind<'_> {
    fn drop(&mut self) {
        if let Some(mut t) = self.0.take() {
            t.fail("panic", "the service panicked");
            t.finish();
        }
    }
}

/// Runs `f` (an inner service's `call`, a poll of its response future or
/// body) with `tracked`'s span current, if there is one. Should `f` panic,
/// the span is marked failed (`panic`) and finished on the way out, and
/// `tracked` is left empty: a panic catcher outside (tower-http's
/// `CatchPanic`, or the runtime catching a task's panic) may keep the
/// future alive, or drop it only later, and the trace and the observer must
/// not wait for that nor take the panic for a cancellation.
///
/// ```
/// use opentracing_api::{current_context, tags, MockTracer, TracerExt};
/// use opentracing_tower::lifecycle::{run_in_span, RequestSpan, Side};
///
/// let tracer = MockTracer::new();
/// let span = tracer.span("/pkg.Svc/Call").start_shared();
/// let id = span.context().span_id();
/// let mut tracked = Some(Box::new(RequestSpan::new(span, "/pkg.Svc/Call".into(), Side::Server)));
/// let seen = run_in_span(&mut tracked, || current_context().map(|c| c.span_id()));
/// assert_eq!(seen, Some(id));
///
/// let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
///     run_in_span(&mut tracked, || panic!("handler bug"))
/// }));
/// assert!(caught.is_err() && tracked.is_none());
/// let finished = tracer.finished_spans();
/// assert_eq!(finished[0].tag(tags::ERROR).and_then(|v| v.as_bool()), Some(true));
/// ```
#[inline]
pub fn run_in_span<R>(tracked: &mut Option<Box<RequestSpan>>, f: impl FnOnce() -> R) -> R {
    let _guard = tracked.as_ref().map(|t| t.span.enter());
    let bomb = FinishOnUnwind(tracked);
    let r = f();
    std::mem::forget(bomb);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_addresses_read_as_their_display() {
        for n in 0..=255u8 {
            for ip in [
                Ipv4Addr::new(n, 0, 9, 255),
                Ipv4Addr::new(10, n, 100, 99),
                Ipv4Addr::new(127, 1, n, 10),
                Ipv4Addr::new(255, 200, 1, n),
            ] {
                assert_eq!(ipv4_string(ip), ip.to_string());
            }
        }
    }
}
