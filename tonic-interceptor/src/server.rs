//! The server layer.

use std::borrow::Cow;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{Request, Response};
use opentracing_api::{tags, ExtractPolicy, Format, Span, SpanContext, Tracer, TracerExt};
use opentracing_tower::lifecycle::{run_in_span, tag_peer_addr, RequestSpan, Side, SpanSettings};
use opentracing_tower::Observer;
use tower_layer::Layer;
use tower_service::Service;

use crate::body::GrpcBody;
use crate::call::Call;
use crate::future::ResponseFuture;
use crate::metadata::MetadataExtractor;
use crate::status::grpc_timeout;

type MethodFilter = dyn Fn(&str) -> bool + Send + Sync;

/// Whether `method` (a full method path) belongs to the standard health
/// checking service, `/grpc.health.v1.Health/*`: the calls
/// [`GrpcServerLayer`] skips by default.
pub fn is_health_check(method: &str) -> bool {
    method.starts_with("/grpc.health.v1.Health/")
}

/// The span name of a call whose path is not shaped like a gRPC method
/// (see [`GrpcServerLayer`]).
pub const OTHER_METHOD: &str = "_OTHER";

/// The longest method path used as a span name (longer ones are named
/// [`OTHER_METHOD`]).
pub const MAX_METHOD_LEN: usize = 256;

/// `path` as a span name when it has a gRPC method's shape,
/// `/package.Service/Method` (ASCII letters, digits, `_`, `.` in the
/// service, letters, digits and `_` in the method, at most
/// [`MAX_METHOD_LEN`] bytes), else [`OTHER_METHOD`].
pub(crate) fn method_name(path: &str) -> Cow<'static, str> {
    let shaped = path.len() <= MAX_METHOD_LEN
        && path
            .strip_prefix('/')
            .and_then(|p| p.split_once('/'))
            .is_some_and(|(service, method)| {
                !service.is_empty()
                    && !method.is_empty()
                    && service
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
                    && method
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_')
            });
    if shaped {
        Cow::Owned(path.to_owned())
    } else {
        Cow::Borrowed(OTHER_METHOD)
    }
}

#[derive(Clone)]
struct ServerConfig {
    spans: SpanSettings<str>,
    filter: Arc<MethodFilter>,
    extract: ExtractPolicy,
    observer: Option<Arc<dyn Observer>>,
}

/// Traces every call a tonic server receives: a `ChildOf` span of the
/// caller's context (Jaeger, W3C or B3 metadata, as the tracer's
/// propagator reads them), or a new root.
///
/// Add it to `tonic::transport::Server::builder().layer(...)`, or to the
/// axum router tonic services are mounted in.
///
/// The span is named after the full method (`/driver.DriverService/FindNearest`)
/// when the request's path has that shape, and [`OTHER_METHOD`] otherwise:
/// the path is whatever the caller sent, and the name goes on to
/// per-operation sampling, metrics and the backend's list of operations,
/// so junk or oversized paths must not become names. (A well-shaped method
/// the server does not serve keeps its name, and is answered
/// `UNIMPLEMENTED`; the tracer's per-operation sampler and
/// [`RpcMetrics`](opentracing_tower::RpcMetrics) bound how many names they
/// keep.) The span is
/// tagged `span.kind=server`, `component=grpc`,
/// `peer.ipv4`/`peer.ipv6` and `peer.port` (from tonic's `TcpConnectInfo`,
/// a `SocketAddr` extension, or, with the `axum` feature, axum's
/// `ConnectInfo<SocketAddr>`), and the status code as the integer
/// [`rpc.grpc.status_code`](crate::status::GRPC_STATUS_CODE). A status
/// other than `OK` sets `error=true` with an error log carrying the code's
/// name and the status message.
///
/// The span is current while the service method runs and while its
/// response stream is polled, so the calls it makes are its children
/// (`opentracing_api::current_span()` finds it); a span the tracer records
/// is also in the request's extensions as a
/// [`SharedSpan`](opentracing_api::SharedSpan), where the handler finds it
/// with `request.extensions().get::<SharedSpan>()`. It finishes with the
/// call's status, at the end of the response stream: for unary and
/// streaming calls alike. A call the client cancels (or whose
/// `grpc-timeout` passes) finishes with `CANCELLED` (or
/// `DEADLINE_EXCEEDED`) and an error log; a handler that panics fails the
/// span with a `panic` log.
///
/// Health checks (`/grpc.health.v1.Health/*`) are not traced unless
/// [`with_filter`](Self::with_filter) says otherwise.
///
/// ```no_run
/// use opentracing_api::MockTracer;
/// use opentracing_tonic::GrpcServerLayer;
/// # async fn run(service: tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health>) -> Result<(), Box<dyn std::error::Error>> {
/// tonic::transport::Server::builder()
///     .layer(GrpcServerLayer::new(MockTracer::new()))
///     .add_service(service)
///     .serve("127.0.0.1:50051".parse()?)
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct GrpcServerLayer<T> {
    tracer: T,
    config: Arc<ServerConfig>,
}

impl<T> fmt::Debug for GrpcServerLayer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcServerLayer")
            .field("component", &self.config.spans.component)
            .field("extract", &self.config.extract)
            .finish_non_exhaustive()
    }
}

impl<T> GrpcServerLayer<T> {
    /// A layer tracing with `tracer`: every call but health checks,
    /// trusting what callers send.
    pub fn new(tracer: T) -> Self {
        GrpcServerLayer {
            tracer,
            config: Arc::new(ServerConfig {
                spans: SpanSettings::new("grpc"),
                filter: Arc::new(|m: &str| !is_health_check(m)),
                extract: ExtractPolicy::default(),
                observer: None,
            }),
        }
    }

    fn config(&mut self) -> &mut ServerConfig {
        Arc::make_mut(&mut self.config)
    }

    /// The `component` tag (default `grpc`).
    pub fn with_component(mut self, component: impl Into<Cow<'static, str>>) -> Self {
        self.config().spans.component = component.into();
        self
    }

    /// Names spans with `f`, given the full method path, instead of the
    /// path itself.
    pub fn with_operation_name<F>(mut self, f: F) -> Self
    where
        F: Fn(&str) -> Cow<'static, str> + Send + Sync + 'static,
    {
        self.config().spans.name = Some(Arc::new(f));
        self
    }

    /// Traces only the calls for which `f`, given the full method path
    /// (`/driver.DriverService/FindNearest`), returns true. This replaces
    /// the default filter, which skips health checks: combine with
    /// [`is_health_check`](crate::is_health_check) to keep skipping them.
    ///
    /// ```
    /// use opentracing_api::MockTracer;
    /// use opentracing_tonic::{is_health_check, GrpcServerLayer};
    ///
    /// let layer = GrpcServerLayer::new(MockTracer::new())
    ///     .with_filter(|method| !is_health_check(method) && !method.starts_with("/grpc.reflection."));
    /// ```
    pub fn with_filter<F>(mut self, f: F) -> Self
    where
        F: Fn(&str) -> bool + Send + Sync + 'static,
    {
        self.config().filter = Arc::new(f);
        self
    }

    /// What to trust in incoming contexts (default: everything), applied
    /// on top of the tracer's own policy.
    pub fn with_extract_policy(mut self, policy: ExtractPolicy) -> Self {
        self.config().extract = policy;
        self
    }

    /// Calls `observer` with each finished call: the operation is the
    /// span's name (the method path, or [`OTHER_METHOD`] for a path not
    /// shaped like one, unless [`with_operation_name`](Self::with_operation_name)
    /// says otherwise), the status the gRPC code (see
    /// [`RpcMetrics`](opentracing_tower::RpcMetrics)). Calls the filter
    /// skips are not observed.
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.config().observer = Some(observer);
        self
    }
}

impl<S, T: Clone> Layer<S> for GrpcServerLayer<T> {
    type Service = GrpcServerService<S, T>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcServerService {
            inner,
            shared: Arc::new(Shared {
                tracer: self.tracer.clone(),
                config: (*self.config).clone(),
            }),
        }
    }
}

/// What every clone of a service shares.
struct Shared<T> {
    tracer: T,
    config: ServerConfig,
}

/// The service [`GrpcServerLayer`] makes.
pub struct GrpcServerService<S, T> {
    inner: S,
    shared: Arc<Shared<T>>,
}

impl<S: Clone, T> Clone for GrpcServerService<S, T> {
    fn clone(&self) -> Self {
        GrpcServerService {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S: fmt::Debug, T> fmt::Debug for GrpcServerService<S, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcServerService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// The caller's address, from whichever connection information the server
/// put in the request's extensions.
fn peer(extensions: &http::Extensions) -> Option<SocketAddr> {
    #[cfg(feature = "transport")]
    if let Some(addr) = extensions
        .get::<tonic::transport::server::TcpConnectInfo>()
        .and_then(tonic::transport::server::TcpConnectInfo::remote_addr)
    {
        return Some(addr);
    }
    #[cfg(feature = "axum")]
    if let Some(axum::extract::ConnectInfo(addr)) =
        extensions.get::<axum::extract::ConnectInfo<SocketAddr>>()
    {
        return Some(*addr);
    }
    extensions.get::<SocketAddr>().copied()
}

impl<S, T, B, ResB> Service<Request<B>> for GrpcServerService<S, T>
where
    S: Service<Request<B>, Response = Response<ResB>>,
    S::Error: fmt::Display,
    T: Tracer,
{
    type Response = Response<GrpcBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let shared = &*self.shared;
        let config = &shared.config;
        let untraced = Call {
            side: Side::Server,
            deadline: None,
        };
        if (shared.tracer.is_noop() && config.observer.is_none())
            || !(config.filter)(req.uri().path())
        {
            return ResponseFuture::new(self.inner.call(req), None, untraced);
        }
        let started = Instant::now();
        let call = Call {
            deadline: grpc_timeout(req.headers()).and_then(|d| started.checked_add(d)),
            ..untraced
        };
        let parent = shared.extract(req.headers());
        let (mut span, operation) = shared.start(req.uri().path(), parent);
        if span.is_recording() {
            shared.tag(&mut span, req.extensions());
        }
        let span = span.into_shared();
        if span.is_recording() {
            // Only a span that records anything is worth the entry: one
            // more can make the extensions' map reallocate, and the span is
            // current while the method runs anyway.
            req.extensions_mut().insert(span.clone());
        }
        let mut request_span = RequestSpan::new(span, operation, Side::Server);
        if let Some(observer) = &config.observer {
            request_span = request_span.with_observer(observer.clone(), started);
        }
        let mut tracked = Some(Box::new(request_span));
        let inner = &mut self.inner;
        let fut = run_in_span(&mut tracked, || inner.call(req));
        ResponseFuture::new(fut, tracked, call)
    }
}

impl<T: Tracer> Shared<T> {
    /// The caller's context through the layer's policy. A malformed context
    /// never fails the call: the span becomes a root.
    fn extract(&self, headers: &http::HeaderMap) -> Option<SpanContext> {
        let cx = self
            .tracer
            .extract(
                Format::HttpHeaders,
                &MetadataExtractor::from_headers(headers),
            )
            .ok()
            .flatten();
        self.config.extract.apply(cx)
    }

    /// Starts the server span. The observer needs every call's name;
    /// otherwise the tracer builds it only for spans it records.
    fn start(&self, method: &str, parent: Option<SpanContext>) -> (Span, Cow<'static, str>) {
        let spans = &self.config.spans;
        let name = |m: &str| spans.custom_name(m).unwrap_or_else(|| method_name(m));
        if self.config.observer.is_some() {
            let operation = name(method);
            let span = self
                .tracer
                .span(operation.clone())
                .with_extracted(parent)
                .start();
            (span, operation)
        } else {
            let mut make_name = || name(method);
            let span = self
                .tracer
                .span_with_lazy_name(&mut make_name)
                .with_extracted(parent)
                .start();
            (span, Cow::Borrowed(""))
        }
    }

    fn tag(&self, span: &mut Span, extensions: &http::Extensions) {
        span.set_tag(tags::SPAN_KIND, Side::Server.span_kind());
        span.set_tag(tags::COMPONENT, self.config.spans.component.clone());
        if let Some(addr) = peer(extensions) {
            tag_peer_addr(span, addr);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_method_shaped_paths_become_names() {
        for ok in [
            "/driver.DriverService/FindNearest",
            "/Svc/M_1",
            "/grpc.health.v1.Health/Check",
        ] {
            assert_eq!(method_name(ok), ok);
        }
        let long = format!("/a.{}/M", "b".repeat(MAX_METHOD_LEN));
        for junk in [
            "",
            "/",
            "//M",
            "/Svc/",
            "/Svc",
            "Svc/M",
            "/Svc/M/extra",
            "/Svc/M?x=1",
            "/S\u{e9}rvice/M",
            "/Svc/M\r\nx",
            long.as_str(),
        ] {
            assert_eq!(method_name(junk), OTHER_METHOD, "{junk:?}");
        }
    }
}
