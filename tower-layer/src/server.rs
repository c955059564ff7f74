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
use opentracing_api::{tags, Format, SharedSpan, Tracer, TracerExt};
use tower_layer::Layer;
use tower_service::Service;

#[cfg(feature = "axum")]
use crate::body::AxumBodies;
use crate::body::{Observer, ResponseBodies, TracedBodies, Tracked};
use crate::future::{call_in_span, ResponseConfig, ResponseFuture};
use crate::policy::ExtractTrust;
use crate::request::{host_header, method, operation_method, url, QueryPolicy};

type NameFn = dyn Fn(&Parts) -> Cow<'static, str> + Send + Sync;
type FilterFn = dyn Fn(&Parts) -> bool + Send + Sync;

#[derive(Clone)]
struct ServerConfig {
    component: Cow<'static, str>,
    name: Option<Arc<NameFn>>,
    filter: Option<Arc<FilterFn>>,
    query: QueryPolicy,
    request_headers: Vec<HeaderName>,
    trust: ExtractTrust,
    observer: Option<Arc<dyn Observer>>,
    response: Arc<ResponseConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            component: Cow::Borrowed("opentracing-tower"),
            name: None,
            filter: None,
            query: QueryPolicy::Keep,
            request_headers: Vec::new(),
            trust: ExtractTrust::default(),
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
/// inner service runs, and is in the request's extensions as a
/// [`SharedSpan`] (except with a no-op tracer, and for requests the filter
/// skips: read it with `CurrentSpan`, which falls back to a no-op span). It
/// finishes when the response body has been sent.
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
            .field("component", &self.config.component)
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

    /// The `component` tag (default `opentracing-tower`).
    pub fn with_component(mut self, component: impl Into<Cow<'static, str>>) -> Self {
        self.config().component = component.into();
        self
    }

    /// Names spans with `f` instead of the route template or the method.
    pub fn with_operation_name<F>(mut self, f: F) -> Self
    where
        F: Fn(&Parts) -> Cow<'static, str> + Send + Sync + 'static,
    {
        self.config().name = Some(Arc::new(f));
        self
    }

    /// Traces only requests for which `f` returns true (skip health checks
    /// and metrics scrapes).
    pub fn with_filter<F>(mut self, f: F) -> Self
    where
        F: Fn(&Parts) -> bool + Send + Sync + 'static,
    {
        self.config().filter = Some(Arc::new(f));
        self
    }

    /// What `http.url` records of the query string (default: all of it).
    pub fn with_query(mut self, policy: QueryPolicy) -> Self {
        self.config().query = policy;
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

    /// What to trust in incoming contexts (default: everything).
    pub fn with_extract_trust(mut self, trust: ExtractTrust) -> Self {
        self.config().trust = trust;
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

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let Shared {
            tracer,
            config,
            response,
        } = &*self.shared;
        let response = response.clone();
        if tracer.is_noop() && config.observer.is_none() {
            return ResponseFuture::new(self.inner.call(req), None, response);
        }
        // The user's filter and naming functions see the request's `Parts`;
        // without them the request is not taken apart (moving `Parts` out
        // and back costs more than everything else the layer does here).
        let mut custom_name = None;
        if config.filter.is_some() || config.name.is_some() {
            let (parts, body) = req.into_parts();
            let skip = config.filter.as_ref().is_some_and(|f| !f(&parts));
            custom_name = config.name.as_ref().filter(|_| !skip).map(|f| f(&parts));
            req = Request::from_parts(parts, body);
            if skip {
                let fut = self.inner.call(req);
                return ResponseFuture::new(fut, None, response);
            }
        }
        // A malformed context never fails the request: the span becomes a
        // root (the tracer may count and log the error).
        let parent = config.trust.apply(
            tracer
                .extract(Format::HttpHeaders, req.headers())
                .ok()
                .flatten(),
        );
        // The observer needs the name of every request; otherwise the
        // tracer builds it only for spans it records (or samples by name).
        let operation = match custom_name {
            None if config.observer.is_some() => Some(default_operation_name(&req)),
            name => name,
        };
        let mut span = if let Some(name) = &operation {
            tracer.span(name.clone()).with_extracted(parent).start()
        } else {
            let mut make_name = || default_operation_name(&req);
            tracer
                .span_with_lazy_name(&mut make_name)
                .with_extracted(parent)
                .start()
        };
        if !span.is_recording() && config.observer.is_none() {
            // Nothing to record and nothing to tell an observer.
            if !span.context().is_valid() {
                // Nothing to propagate either (the no-op tracer).
                let fut = self.inner.call(req);
                return ResponseFuture::new(fut, None, response);
            }
            // The context still has to reach the handler and every call it
            // makes: keep the span current, in the extensions, and no more.
            let span = span.into_shared();
            req.extensions_mut().insert(span.clone());
            let fut = {
                let _guard = span.enter();
                self.inner.call(req)
            };
            return ResponseFuture::unrecorded(fut, span, response);
        }
        // Tags are built only for spans that record them.
        if span.is_recording() {
            span.set_tag(tags::SPAN_KIND, tags::SPAN_KIND_SERVER);
            span.set_tag(tags::COMPONENT, config.component.clone());
            span.set_tag(tags::HTTP_METHOD, method(req.method()));
            span.set_tag(
                tags::HTTP_URL,
                url(req.uri(), host_header(req.headers()), config.query),
            );
            if let Some(addr) = peer(req.extensions()) {
                // A dual-stack listener sees IPv4 clients as `::ffff:a.b.c.d`.
                let ip = addr.ip().to_canonical();
                span.set_tag(
                    if ip.is_ipv4() {
                        tags::PEER_HOST_IPV4
                    } else {
                        tags::PEER_HOST_IPV6
                    },
                    ip.to_string(),
                );
                span.set_tag(tags::PEER_PORT, addr.port());
            }
            for name in &config.request_headers {
                if let Some(v) = req.headers().get(name).and_then(|v| v.to_str().ok()) {
                    span.set_tag(format!("http.request.header.{name}"), v.to_owned());
                }
            }
        }
        let started = config.observer.is_some().then(Instant::now);
        let span: SharedSpan = span.into_shared();
        let is_head = req.method() == http::Method::HEAD;
        req.extensions_mut().insert(span.clone());
        let mut tracked = Some(Box::new(Tracked {
            span,
            started,
            operation: operation.unwrap_or_default(),
            observer: config.observer.clone(),
            status: None,
            error: false,
            no_body: is_head,
            expected_len: None,
            bytes_sent: 0,
            fail_on_early_drop: true,
        }));
        let fut = call_in_span(&mut self.inner, req, &mut tracked);
        ResponseFuture::new(fut, tracked, response)
    }
}
