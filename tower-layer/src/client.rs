//! The client layer.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::request::Parts;
use http::{Request, Response};
use http_body::Body;
use opentracing_api::strip_trace_headers;
use opentracing_api::{Format, InjectPolicy, Span, Tracer, TracerExt};
use tower_layer::Layer;
use tower_service::Service;

use crate::future::{call_in_span, ResponseConfig, ResponseFuture};
use crate::lifecycle::{tag_peer_host, tag_request, RequestSpan, Side, SpanSettings};
use crate::request::{method, operation_method, url};

#[derive(Clone)]
struct ClientConfig {
    spans: SpanSettings<Parts>,
    inject: InjectPolicy,
    response: Arc<ResponseConfig>,
}

/// Traces outgoing requests of any `tower::Service<http::Request<B>>` HTTP
/// client (hyper-util's `Client`, tower stacks): a client span, child of
/// the current span, whose context is injected into the request's headers
/// (per the [`InjectPolicy`]).
///
/// The span is named after the method (or by
/// [`with_operation_name`](Self::with_operation_name)) and tagged
/// `span.kind=client`, `component`, `http.method`, `http.url`,
/// `peer.hostname`, `peer.port`, `http.status_code`, and `error=true` for
/// 5xx responses and transport errors. It finishes when the response body
/// ends or is dropped. Operation names use the method for the standard
/// methods and `_OTHER` for extension methods (the tag keeps the method).
///
/// Trace headers already on the request (a proxy forwarding what it
/// received) are removed before the span's context is injected: a
/// destination gets this span's context and baggage, or, when the policy
/// denies it, no trace headers at all.
#[derive(Clone)]
pub struct ClientTracingLayer<T> {
    tracer: T,
    config: ClientConfig,
}

impl<T> fmt::Debug for ClientTracingLayer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTracingLayer")
            .field("inject", &self.config.inject)
            .finish_non_exhaustive()
    }
}

impl<T> ClientTracingLayer<T> {
    /// A layer tracing with `tracer`, injecting into every request.
    pub fn new(tracer: T) -> Self {
        ClientTracingLayer {
            tracer,
            config: ClientConfig {
                spans: SpanSettings::new("opentracing-tower"),
                inject: InjectPolicy::All,
                response: Arc::default(),
            },
        }
    }

    /// Which destinations get trace headers (default: all). An allowlist
    /// is matched against the host of the request's URI; a path-only URI
    /// (hyper's connection-level `SendRequest`) never matches, since the
    /// `Host` header does not prove where the connection goes.
    pub fn with_inject_policy(mut self, policy: InjectPolicy) -> Self {
        self.config.inject = policy;
        self
    }

    fn span_settings(&mut self) -> &mut SpanSettings<Parts> {
        &mut self.config.spans
    }

    crate::lifecycle::span_settings_methods!("the method");

    /// Whether 4xx responses also mark client spans failed (default: only
    /// 5xx and transport errors do).
    pub fn with_client_errors_fail(mut self, on: bool) -> Self {
        let mut r = ResponseConfig::default();
        r.capture.clone_from(&self.config.response.capture);
        r.trace_id_header
            .clone_from(&self.config.response.trace_id_header);
        r.client_errors_fail = on;
        self.config.response = Arc::new(r);
        self
    }
}

impl<S, T: Clone> Layer<S> for ClientTracingLayer<T> {
    type Service = ClientTracingService<S, T>;

    fn layer(&self, inner: S) -> Self::Service {
        ClientTracingService {
            inner,
            tracer: self.tracer.clone(),
            config: Arc::new(self.config.clone()),
        }
    }
}

/// The service [`ClientTracingLayer`] makes.
#[derive(Clone)]
pub struct ClientTracingService<S, T> {
    inner: S,
    tracer: T,
    config: Arc<ClientConfig>,
}

impl<S: fmt::Debug, T> fmt::Debug for ClientTracingService<S, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTracingService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// The host named by the request: from the URI, or from the `Host` header
/// for path-only URIs (for the `peer.hostname` tag).
fn host_of(uri: &http::Uri, headers: &http::HeaderMap) -> Option<String> {
    uri.host().map(str::to_owned).or_else(|| {
        headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.parse::<http::uri::Authority>().ok())
            .map(|a| a.host().to_owned())
    })
}

/// Whether the request may carry trace headers. Only the URI says where a
/// request goes: a path-only URI (hyper's connection-level `SendRequest`)
/// goes wherever its connection was opened, which the `Host` header (set by
/// the caller, or forwarded by a proxy) does not prove, so an allowlist
/// treats it as a destination that does not match.
fn may_inject<B>(policy: &InjectPolicy, req: &Request<B>) -> bool {
    policy.allows(req.uri().host())
}

impl<S, T, B, ResB> Service<Request<B>> for ClientTracingService<S, T>
where
    S: Service<Request<B>, Response = Response<ResB>>,
    S::Error: fmt::Display,
    T: Tracer + Clone,
    ResB: Body,
{
    type Response = Response<crate::TracedBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let config = &*self.config;
        let response = ResponseConfig::for_future(&config.response);
        // A proxy may be forwarding the trace headers it received: a denied
        // destination must not get those, and an allowed one gets this
        // span's context only (not, say, the caller's `traceparent` next to
        // our `uber-trace-id`, or baggage the server layer chose to drop).
        strip_trace_headers(req.headers_mut(), self.tracer.propagator());
        if self.tracer.is_noop() {
            return ResponseFuture::new(self.inner.call(req), None, response);
        }
        let (req, operation) = self.name(req);
        let mut span = self.tracer.span(operation.clone()).start();
        let recording = span.is_recording();
        if recording {
            self.tag(&mut span, &req);
        }
        let mut req = req;
        if may_inject(&config.inject, &req) {
            self.tracer
                .inject(span.context(), Format::HttpHeaders, req.headers_mut());
        }
        let is_head = req.method() == http::Method::HEAD;
        let span = span.into_shared();
        if !recording {
            // Nothing about the response can be recorded: the span only has
            // to be current during the call.
            let fut = {
                let _guard = span.enter();
                self.inner.call(req)
            };
            return ResponseFuture::unrecorded(fut, span, response);
        }
        let request_span = RequestSpan::new(span, operation, Side::Client).without_body(is_head);
        let mut tracked = Some(Box::new(request_span));
        let fut = call_in_span(&mut self.inner, req, &mut tracked);
        ResponseFuture::new(fut, tracked, response)
    }
}

impl<S, T: Tracer> ClientTracingService<S, T> {
    /// The span's name: the user's function, or the method.
    fn name<B>(&self, req: Request<B>) -> (Request<B>, Cow<'static, str>) {
        if self.config.spans.name.is_none() {
            let name = Cow::Borrowed(operation_method(req.method()));
            return (req, name);
        }
        let (parts, body) = req.into_parts();
        let name = self.config.spans.custom_name(&parts).unwrap_or_default();
        (Request::from_parts(parts, body), name)
    }

    /// The client span's tags.
    fn tag<B>(&self, span: &mut Span, req: &Request<B>) {
        let uri = req.uri();
        let port = uri.port_u16().or(match uri.scheme_str() {
            Some("https") => Some(443),
            Some("http") => Some(80),
            _ => None,
        });
        let spans = &self.config.spans;
        tag_request(
            span,
            Side::Client,
            spans.component.clone(),
            method(req.method()),
            url(uri, None, spans.query),
        );
        tag_peer_host(span, host_of(uri, req.headers()).as_deref(), port);
    }
}
