//! The client layer.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{Request, Response, Uri};
use opentracing_api::strip_trace_headers;
use opentracing_api::{tags, Format, InjectPolicy, Span, Tracer, TracerExt};
use opentracing_tower::lifecycle::{run_in_span, tag_peer_host, RequestSpan, Side, SpanSettings};
use tower_layer::Layer;
use tower_service::Service;

use crate::body::GrpcBody;
use crate::call::Call;
use crate::future::ResponseFuture;
use crate::metadata::MetadataInjector;
use crate::status::grpc_timeout;

#[derive(Clone)]
struct ClientConfig {
    spans: SpanSettings<str>,
    inject: InjectPolicy,
    origin: Option<Uri>,
}

/// Traces the calls of a tonic client: wrap the `Channel` with it
/// (`ServiceBuilder::new().layer(GrpcClientLayer::new(tracer)).service(channel)`)
/// and hand the result to the generated client.
///
/// Each call gets a client span, `ChildOf` the current span (the server
/// span of the call or request being handled, when a server layer runs
/// outside), named after the full method and tagged `span.kind=client`,
/// `component=grpc`, `peer.hostname`, `peer.port` and the status code
/// ([`rpc.grpc.status_code`](crate::status::GRPC_STATUS_CODE)). Its context
/// is injected into the call's metadata when the
/// [`InjectPolicy`] allows the destination; trace metadata already on the
/// call (forwarded from an incoming request) is removed first, so a
/// destination gets this span's context or none.
///
/// The status is read from the response headers (trailers-only) or from
/// the trailers, so streaming calls finish at the end of the response
/// stream. A status other than `OK`, a transport failure, a passed
/// deadline (`grpc-timeout`), and a call the caller drops before its end
/// (`CANCELLED`) set `error=true` with an error log.
///
/// The destination is the authority of the request's URI. Generated
/// clients made with `with_origin(service, uri)` carry it; those made with
/// `new(service)` send path-only URIs (the `Channel` adds its endpoint
/// inside), so tell the layer where the channel goes with
/// [`with_origin`](Self::with_origin), or an allowlist matches nothing.
///
/// ```
/// use opentracing_api::{InjectPolicy, MockTracer};
/// use opentracing_tonic::GrpcClientLayer;
/// use tower::ServiceBuilder;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let channel = tonic::transport::Endpoint::from_static("http://driver.internal:50051").connect_lazy();
/// let channel = ServiceBuilder::new()
///     .layer(
///         GrpcClientLayer::new(MockTracer::new())
///             .with_origin("http://driver.internal:50051".parse()?)
///             .with_inject_policy(InjectPolicy::allowlist(["*.internal"])),
///     )
///     .service(channel);
/// // let client = DriverServiceClient::new(channel);
/// # drop(channel);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct GrpcClientLayer<T> {
    tracer: T,
    config: Arc<ClientConfig>,
}

impl<T> fmt::Debug for GrpcClientLayer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcClientLayer")
            .field("inject", &self.config.inject)
            .field("origin", &self.config.origin)
            .finish_non_exhaustive()
    }
}

impl<T> GrpcClientLayer<T> {
    /// A layer tracing with `tracer`, injecting into every call.
    pub fn new(tracer: T) -> Self {
        GrpcClientLayer {
            tracer,
            config: Arc::new(ClientConfig {
                spans: SpanSettings::new("grpc"),
                inject: InjectPolicy::All,
                origin: None,
            }),
        }
    }

    fn config(&mut self) -> &mut ClientConfig {
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

    /// Which destinations get trace metadata (default: all). An allowlist
    /// is matched against the host of the call's URI, or of
    /// [`with_origin`](Self::with_origin) for path-only URIs; with
    /// neither, it matches nothing.
    pub fn with_inject_policy(mut self, policy: InjectPolicy) -> Self {
        self.config().inject = policy;
        self
    }

    /// Where the wrapped channel connects (`http://driver.internal:50051`):
    /// the destination of calls whose URI has no authority, for the
    /// [`InjectPolicy`] and the `peer.*` tags.
    pub fn with_origin(mut self, origin: Uri) -> Self {
        self.config().origin = Some(origin);
        self
    }
}

impl<S, T: Clone> Layer<S> for GrpcClientLayer<T> {
    type Service = GrpcClientService<S, T>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcClientService {
            inner,
            tracer: self.tracer.clone(),
            config: self.config.clone(),
        }
    }
}

/// The service [`GrpcClientLayer`] makes.
#[derive(Clone)]
pub struct GrpcClientService<S, T> {
    inner: S,
    tracer: T,
    config: Arc<ClientConfig>,
}

impl<S: fmt::Debug, T> fmt::Debug for GrpcClientService<S, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcClientService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, T, B, ResB> Service<Request<B>> for GrpcClientService<S, T>
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
        let config = &*self.config;
        let untraced = Call {
            side: Side::Client,
            deadline: None,
        };
        // Forwarded trace metadata never reaches the destination: it gets
        // this span's context, or (when the policy denies it) none.
        strip_trace_headers(req.headers_mut(), self.tracer.propagator());
        if self.tracer.is_noop() {
            return ResponseFuture::new(self.inner.call(req), None, untraced);
        }
        let call = Call {
            deadline: grpc_timeout(req.headers()).and_then(|d| Instant::now().checked_add(d)),
            ..untraced
        };
        let operation = config
            .spans
            .custom_name(req.uri().path())
            .unwrap_or_else(|| Cow::Owned(req.uri().path().to_owned()));
        let mut span = self.tracer.span(operation.clone()).start();
        let authority = req
            .uri()
            .authority()
            .or_else(|| config.origin.as_ref().and_then(Uri::authority));
        if span.is_recording() {
            tag(&mut span, config, req.uri(), authority);
        }
        if config
            .inject
            .allows(authority.map(http::uri::Authority::host))
        {
            self.tracer.inject(
                span.context(),
                Format::HttpHeaders,
                &mut MetadataInjector::from_headers(req.headers_mut()),
            );
        }
        let request_span = RequestSpan::new(span.into_shared(), operation, Side::Client);
        let mut tracked = Some(Box::new(request_span));
        let inner = &mut self.inner;
        let fut = run_in_span(&mut tracked, || inner.call(req));
        ResponseFuture::new(fut, tracked, call)
    }
}

/// The client span's tags.
fn tag(
    span: &mut Span,
    config: &ClientConfig,
    uri: &Uri,
    authority: Option<&http::uri::Authority>,
) {
    span.set_tag(tags::SPAN_KIND, Side::Client.span_kind());
    span.set_tag(tags::COMPONENT, config.spans.component.clone());
    let scheme = uri
        .scheme_str()
        .or_else(|| config.origin.as_ref().and_then(Uri::scheme_str));
    let port = authority
        .and_then(http::uri::Authority::port_u16)
        .or(match scheme {
            Some("https") => Some(443),
            Some("http") => Some(80),
            _ => None,
        });
    tag_peer_host(span, authority.map(http::uri::Authority::host), port);
}
