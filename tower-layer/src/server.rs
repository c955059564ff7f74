//! The server layer.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::request::Parts;
use http::{HeaderName, Request, Response};
use http_body::Body;
use opentracing_api::{ExtractPolicy, Format, Span, SpanContext, Tracer, TracerExt};
use tower_layer::Layer;
use tower_service::Service;

#[cfg(feature = "axum")]
use crate::body::AxumBodies;
use crate::body::{ResponseBodies, TracedBodies};
use crate::future::{call_in_span, ResponseConfig, ResponseFuture};
use crate::lifecycle::{tag_peer_addr, tag_request, RequestSpan, Side, SpanSettings};
use crate::observer::Observer;
use crate::request::{host_header, method, operation_method, url};

type FilterFn = dyn Fn(&Parts) -> bool + Send + Sync;

#[derive(Clone)]
struct ServerConfig {
    spans: SpanSettings<Parts>,
    filter: Option<Arc<FilterFn>>,
    request_headers: Vec<HeaderName>,
    extract: ExtractPolicy,
    observer: Option<Arc<dyn Observer>>,
    response: Arc<ResponseConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            spans: SpanSettings::new("opentracing-tower"),
            filter: None,
            request_headers: Vec::new(),
            extract: ExtractPolicy::default(),
            observer: None,
            response: Arc::default(),
        }
    }
}

/// Traces every request of a server: a `ChildOf` span of the caller's
/// context (Jaeger, W3C or B3 headers, as the tracer's propagator reads
/// them), or a new root.
///
/// The span is named after the route template when the framework knows it
/// (axum's `MatchedPath`, with the `axum` feature: `GET /users/{id}`),
/// otherwise after the method alone, so ids never end up in operation names;
/// [`with_operation_name`](Self::with_operation_name) overrides that. (Route
/// names are built once and shared by every request of the route: up to
/// 1 024 names of up to 256 bytes per process are kept for good, more than
/// a server's fixed set of routes; past that they are built per request.) It is
/// tagged `span.kind=server`, `component`, `http.method`, `http.url`,
/// `http.status_code`, `peer.ipv4`/`peer.ipv6`/`peer.port` (from a
/// `SocketAddr` or axum `ConnectInfo` extension), and `error=true` with an
/// error log for 5xx responses, service errors, panics, body errors and
/// responses abandoned by the client. It is the current span while the
/// inner service runs, and a span the tracer records is also in the
/// request's extensions as a [`SharedSpan`](opentracing_api::SharedSpan)
/// (read it with `CurrentSpan`, which falls back to the current span, then
/// to a no-op span). It finishes when the response body has been sent.
///
/// On an axum `Router`, add `.with_axum_bodies()` (feature `axum`):
/// responses then stay `axum::body::Body` instead of being boxed once more.
///
/// ```
/// use axum::{routing::get, Router};
/// use opentracing_api::MockTracer;
/// use opentracing_tower::TracingLayer;
///
/// let tracer = MockTracer::new();
/// let app: Router = Router::new()
///     .route("/users/{id}", get(|| async { "user" }))
///     .layer(TracingLayer::new(tracer));
/// ```
#[derive(Clone)]
pub struct TracingLayer<T, M = TracedBodies> {
    tracer: T,
    config: Arc<ServerConfig>,
    bodies: PhantomData<fn() -> M>,
}

impl<T, M> fmt::Debug for TracingLayer<T, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracingLayer")
            .field("component", &self.config.spans.component)
            .finish_non_exhaustive()
    }
}

impl<T> TracingLayer<T> {
    /// A layer tracing with `tracer`.
    pub fn new(tracer: T) -> Self {
        TracingLayer {
            tracer,
            config: Arc::default(),
            bodies: PhantomData,
        }
    }

    /// Hands responses back as `axum::body::Body` (see [`AxumBodies`]),
    /// for a layer on an axum `Router`: responses with nothing to track
    /// then go back untouched instead of being boxed once more by axum.
    ///
    /// ```
    /// use axum::{routing::get, Router};
    /// use opentracing_api::MockTracer;
    /// use opentracing_tower::TracingLayer;
    ///
    /// let app: Router = Router::new()
    ///     .route("/users/{id}", get(|| async { "user" }))
    ///     .layer(TracingLayer::new(MockTracer::new()).with_axum_bodies());
    /// ```
    #[cfg(feature = "axum")]
    pub fn with_axum_bodies(self) -> TracingLayer<T, AxumBodies> {
        TracingLayer {
            tracer: self.tracer,
            config: self.config,
            bodies: PhantomData,
        }
    }
}

impl<T, M> TracingLayer<T, M> {
    fn config(&mut self) -> &mut ServerConfig {
        // Layers are configured before use; a clone made earlier keeps its
        // own configuration.
        Arc::make_mut(&mut self.config)
    }

    fn response_config(&mut self) -> &mut ResponseConfig {
        Arc::make_mut(&mut self.config().response)
    }

    fn span_settings(&mut self) -> &mut SpanSettings<Parts> {
        &mut self.config().spans
    }

    crate::lifecycle::span_settings_methods!("the route template or the method");

    /// Traces only requests for which `f` returns true (skip health checks
    /// and metrics scrapes).
    pub fn with_filter<F>(mut self, f: F) -> Self
    where
        F: Fn(&Parts) -> bool + Send + Sync + 'static,
    {
        self.config().filter = Some(Arc::new(f));
        self
    }

    /// Records these request headers as `http.request.header.<name>` tags.
    /// Nothing is recorded by default: headers carry personal data.
    pub fn with_request_headers(mut self, names: impl IntoIterator<Item = HeaderName>) -> Self {
        self.config().request_headers = names.into_iter().collect();
        self
    }

    /// Records these response headers as `http.response.header.<name>`
    /// tags.
    pub fn with_response_headers(mut self, names: impl IntoIterator<Item = HeaderName>) -> Self {
        self.response_config().capture = names.into_iter().collect();
        self
    }

    /// Returns the trace id in a response header (for example
    /// `x-trace-id`), so users can find their trace.
    pub fn with_trace_id_header(mut self, name: HeaderName) -> Self {
        self.response_config().trace_id_header = Some(name);
        self
    }

    /// What to trust in incoming contexts (default: everything), applied
    /// on top of the tracer's own policy: with any tracer, an untrusted
    /// caller's sampling decision, baggage or debug id never get through.
    pub fn with_extract_policy(mut self, policy: ExtractPolicy) -> Self {
        self.config().extract = policy;
        self
    }

    /// Calls `observer` with each finished request (see [`RpcMetrics`](crate::RpcMetrics)).
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.config().observer = Some(observer);
        self
    }
}

impl<S, T: Clone, M> Layer<S> for TracingLayer<T, M> {
    type Service = TracingService<S, T, M>;

    fn layer(&self, inner: S) -> Self::Service {
        TracingService {
            inner,
            shared: Arc::new(Shared {
                tracer: self.tracer.clone(),
                config: (*self.config).clone(),
                response: ResponseConfig::for_future(&self.config.response),
            }),
            bodies: PhantomData,
        }
    }
}

/// What every clone of a service shares: routers clone the service for
/// each request, so it is one reference count, not one per field.
struct Shared<T> {
    tracer: T,
    config: ServerConfig,
    /// `config.response` when a response future has something to do with
    /// it, decided once here rather than read on every request.
    response: Option<Arc<ResponseConfig>>,
}

/// The service [`TracingLayer`] makes.
pub struct TracingService<S, T, M = TracedBodies> {
    inner: S,
    shared: Arc<Shared<T>>,
    bodies: PhantomData<fn() -> M>,
}

impl<S: Clone, T, M> Clone for TracingService<S, T, M> {
    fn clone(&self) -> Self {
        TracingService {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
            bodies: PhantomData,
        }
    }
}

impl<S: fmt::Debug, T, M> fmt::Debug for TracingService<S, T, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracingService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

fn peer(extensions: &http::Extensions) -> Option<SocketAddr> {
    #[cfg(feature = "axum")]
    if let Some(axum::extract::ConnectInfo(addr)) =
        extensions.get::<axum::extract::ConnectInfo<SocketAddr>>()
    {
        return Some(*addr);
    }
    extensions.get::<SocketAddr>().copied()
}

/// The route template when the framework knows it, otherwise the method.
fn default_operation_name<B>(req: &Request<B>) -> Cow<'static, str> {
    #[cfg(feature = "axum")]
    if let Some(path) = req.extensions().get::<axum::extract::MatchedPath>() {
        return crate::route_names::route_name(req.method(), path.as_str());
    }
    Cow::Borrowed(operation_method(req.method()))
}

impl<S, T, B, ResB, M> Service<Request<B>> for TracingService<S, T, M>
where
    S: Service<Request<B>, Response = Response<ResB>>,
    S::Error: fmt::Display,
    T: Tracer + Clone,
    ResB: Body,
    M: ResponseBodies<ResB>,
{
    type Response = Response<M::Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, M>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let shared = &*self.shared;
        let response = shared.response.clone();
        // 1. Which requests are traced, under which name.
        let (req, custom_name) = match shared.admit(req) {
            (req, Admission::Skip) => {
                return ResponseFuture::new(self.inner.call(req), None, response)
            }
            (req, Admission::Trace(name)) => (req, name),
        };
        // 2. The caller's context, through the propagation policy.
        let parent = shared.extract(&req);
        // 3. The span.
        let (mut span, operation) = shared.start(&req, custom_name, parent);
        if !span.is_recording() && shared.config.observer.is_none() {
            return self.run_unrecorded(req, span, response);
        }
        // 4. Its tags, only for spans that record them.
        if span.is_recording() {
            shared.tag(&mut span, &req);
        }
        // 5. The inner service, with the span current.
        let mut req = req;
        let span = span.into_shared();
        req.extensions_mut().insert(span.clone());
        let mut request_span = RequestSpan::new(span, operation.unwrap_or_default(), Side::Server)
            .without_body(req.method() == http::Method::HEAD);
        if let Some(observer) = &shared.config.observer {
            request_span = request_span.with_observer(observer.clone(), Instant::now());
        }
        let mut tracked = Some(Box::new(request_span));
        let fut = call_in_span(&mut self.inner, req, &mut tracked);
        ResponseFuture::new(fut, tracked, response)
    }
}

impl<S, T, M> TracingService<S, T, M> {
    /// Runs a request whose span records nothing and has no observer to
    /// tell: the context still has to reach the handler and every call it
    /// makes, so the span is current while they run, and no more. (It is
    /// not put in the extensions: `http::Extensions` is a small hash map
    /// that one more entry can make reallocate, which would cost more than
    /// everything else done here, and a handler finds the span current.)
    fn run_unrecorded<B>(
        &mut self,
        req: Request<B>,
        span: Span,
        response: Option<Arc<ResponseConfig>>,
    ) -> ResponseFuture<S::Future, M>
    where
        S: Service<Request<B>>,
    {
        if !span.context().is_valid() {
            // Nothing to propagate either (the no-op tracer).
            return ResponseFuture::new(self.inner.call(req), None, response);
        }
        let span = span.into_shared();
        let fut = {
            let _guard = span.enter();
            self.inner.call(req)
        };
        ResponseFuture::unrecorded(fut, span, response)
    }
}

/// Whether a request is traced.
enum Admission {
    /// Not traced: the no-op tracer with no observer, or filtered out.
    Skip,
    /// Traced, under the name the user's function gave it, if any.
    Trace(Option<Cow<'static, str>>),
}

impl<T: Tracer> Shared<T> {
    /// Whether `req` is traced, with the name the user's naming function
    /// gives it, if any.
    ///
    /// The user's filter and naming functions see the request's `Parts`;
    /// without them the request is not taken apart (moving `Parts` out and
    /// back costs more than everything else the layer does here).
    fn admit<B>(&self, req: Request<B>) -> (Request<B>, Admission) {
        let config = &self.config;
        if self.tracer.is_noop() && config.observer.is_none() {
            return (req, Admission::Skip);
        }
        if config.filter.is_none() && config.spans.name.is_none() {
            return (req, Admission::Trace(None));
        }
        let (parts, body) = req.into_parts();
        let admission = if config.filter.as_ref().is_none_or(|f| f(&parts)) {
            Admission::Trace(config.spans.custom_name(&parts))
        } else {
            Admission::Skip
        };
        (Request::from_parts(parts, body), admission)
    }

    /// The caller's context through the layer's policy (the tracer applies
    /// its own). A malformed context never fails the request: the span
    /// becomes a root (the tracer may count and log the error).
    fn extract<B>(&self, req: &Request<B>) -> Option<SpanContext> {
        let cx = self
            .tracer
            .extract(Format::HttpHeaders, req.headers())
            .ok()
            .flatten();
        self.config.extract.apply(cx)
    }

    /// Starts the server span. The observer needs the name of every
    /// request; otherwise the tracer builds it only for spans it records
    /// (or samples by name). Returns the name when it was built.
    fn start<B>(
        &self,
        req: &Request<B>,
        custom_name: Option<Cow<'static, str>>,
        parent: Option<SpanContext>,
    ) -> (Span, Option<Cow<'static, str>>) {
        let operation = match custom_name {
            None if self.config.observer.is_some() => Some(default_operation_name(req)),
            name => name,
        };
        let span = if let Some(name) = &operation {
            self.tracer
                .span(name.clone())
                .with_extracted(parent)
                .start()
        } else {
            let mut make_name = || default_operation_name(req);
            self.tracer
                .span_with_lazy_name(&mut make_name)
                .with_extracted(parent)
                .start()
        };
        (span, operation)
    }

    /// The server span's tags.
    fn tag<B>(&self, span: &mut Span, req: &Request<B>) {
        let config = &self.config;
        let url = url(req.uri(), host_header(req.headers()), config.spans.query);
        tag_request(
            span,
            Side::Server,
            config.spans.component.clone(),
            method(req.method()),
            url,
        );
        if let Some(addr) = peer(req.extensions()) {
            tag_peer_addr(span, addr);
        }
        for name in &config.request_headers {
            if let Some(v) = req.headers().get(name).and_then(|v| v.to_str().ok()) {
                span.set_tag(format!("http.request.header.{name}"), v.to_owned());
            }
        }
    }
}
