//! The middleware.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use http::Extensions;
use opentracing_api::strip_trace_headers;
use opentracing_api::{
    current_context, tags, Format, InjectPolicy, Span, SpanFutureExt, Tracer, TracerExt,
};
use opentracing_tower::lifecycle::{
    tag_peer_host, tag_request, traced_body, url_tag_from_parts, RequestSpan, Side, SpanSettings,
};
use opentracing_tower::QueryPolicy;
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};

use crate::extensions::{Attempts, OperationName, RouteTemplate, SkipTracing};

/// The tag holding which attempt at a request a span is: 1 for the first,
/// 2 for the first retry, and so on.
pub const ATTEMPT_TAG: &str = "http.attempt";

/// Traces the requests of a `reqwest_middleware` client: a client span per
/// request (per attempt, behind a retry middleware), child of the current
/// span, whose context is injected into the request's headers.
///
/// See the [crate documentation](crate) for what it records.
pub struct TracingMiddleware<T> {
    tracer: T,
    spans: SpanSettings<Request>,
    inject: InjectPolicy,
    client_errors_fail: bool,
    root_spans: bool,
    body_tracking: bool,
}

impl<T> fmt::Debug for TracingMiddleware<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracingMiddleware")
            .field("spans", &self.spans)
            .field("inject", &self.inject)
            .field("client_errors_fail", &self.client_errors_fail)
            .field("root_spans", &self.root_spans)
            .field("body_tracking", &self.body_tracking)
            .finish_non_exhaustive()
    }
}

impl<T: Tracer> TracingMiddleware<T> {
    /// A middleware tracing with `tracer` (any `Tracer`: the Jaeger tracer,
    /// `Arc<dyn Tracer>`, the mock tracer in tests), injecting into every
    /// request.
    pub fn new(tracer: T) -> Self {
        TracingMiddleware {
            tracer,
            spans: SpanSettings::new("reqwest"),
            inject: InjectPolicy::All,
            client_errors_fail: false,
            root_spans: false,
            body_tracking: false,
        }
    }

    /// The `component` tag (default `reqwest`).
    pub fn with_component(mut self, component: impl Into<Cow<'static, str>>) -> Self {
        self.spans.component = component.into();
        self
    }

    /// What `http.url` records of the query string (default: all of it).
    pub fn with_query(mut self, policy: QueryPolicy) -> Self {
        self.spans.query = policy;
        self
    }

    /// Names spans with `f` instead of `HTTP {METHOD}`. Per-request
    /// [`OperationName`]s and [`RouteTemplate`]s still take precedence.
    pub fn with_operation_name<F>(mut self, f: F) -> Self
    where
        F: Fn(&Request) -> Cow<'static, str> + Send + Sync + 'static,
    {
        self.spans.name = Some(Arc::new(f));
        self
    }

    /// Which destinations get trace headers (default: all), matched on the
    /// host of the request's URL. Others get no trace headers and no
    /// baggage (and none a caller put on the request either).
    pub fn with_inject_policy(mut self, policy: InjectPolicy) -> Self {
        self.inject = policy;
        self
    }

    /// Whether 4xx responses also mark spans failed (default: only 5xx and
    /// transport errors do).
    pub fn with_client_errors_fail(mut self, on: bool) -> Self {
        self.client_errors_fail = on;
        self
    }

    /// Whether a request made when no span is current starts a new trace
    /// (default `false`: it is sent untraced, its headers untouched).
    pub fn with_root_spans(mut self, on: bool) -> Self {
        self.root_spans = on;
        self
    }

    /// Keeps each span open until the response body has been read to its
    /// end, failed, or been dropped (default `false`: the span ends when
    /// the response headers are back). The span is then current while the
    /// body is read, and a body dropped early is not an error of the call.
    pub fn with_body_tracking(mut self, on: bool) -> Self {
        self.body_tracking = on;
        self
    }
}

#[async_trait::async_trait]
impl<T: Tracer + 'static> Middleware for TracingMiddleware<T> {
    async fn handle(
        &self,
        mut req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let Some(mut span) = self.start(&req, extensions) else {
            return next.run(req, extensions).await;
        };
        if span.is_recording() {
            // The extensions come back with every attempt a retry
            // middleware before this one makes.
            let attempts = extensions.get_or_insert_default::<Attempts>();
            attempts.0 += 1;
            span.set_tag(ATTEMPT_TAG, attempts.0);
        }
        // A forwarded request may carry the trace headers its caller sent:
        // the destination gets this span's context, or nothing.
        strip_trace_headers(req.headers_mut(), self.tracer.propagator());
        if self.inject.allows(req.url().host_str()) {
            self.tracer
                .inject(span.context(), Format::HttpHeaders, req.headers_mut());
        }
        if !span.is_recording() {
            // Nothing to record: the context went out in the headers, and
            // nothing below this middleware starts spans.
            return next.run(req, extensions).await;
        }
        let span = span.into_shared();
        let mut request = RequestSpan::new(span.clone(), Cow::Borrowed(""), Side::Client);
        let result = next.run(req, extensions).with_span(span.clone()).await;
        match result {
            Ok(resp) => Ok(self.on_response(resp, request)),
            Err(e) => {
                request.fail(error_kind(&e), e.to_string());
                request.finish();
                Err(e)
            }
        }
    }
}

impl<T: Tracer> TracingMiddleware<T> {
    /// Starts the request's span, or returns `None` when the request is not
    /// traced ([`SkipTracing`], or no current span and no root spans).
    fn start(&self, req: &Request, extensions: &Extensions) -> Option<Span> {
        if extensions.get::<SkipTracing>().is_some() || self.tracer.is_noop() {
            return None;
        }
        let parent = current_context().filter(opentracing_api::SpanContext::is_valid);
        if parent.is_none() && !self.root_spans {
            return None;
        }
        let name = self.name(req, extensions);
        let mut span = self.tracer.span(name).with_extracted(parent).start();
        if span.is_recording() {
            self.tag(&mut span, req);
        }
        Some(span)
    }

    /// A per-request name, a route template, the naming function, or
    /// `HTTP {METHOD}`.
    fn name(&self, req: &Request, extensions: &Extensions) -> Cow<'static, str> {
        if let Some(OperationName(name)) = extensions.get() {
            return name.clone();
        }
        let method = operation_method(req.method());
        if let Some(RouteTemplate(route)) = extensions.get() {
            return Cow::Owned(format!("{method} {route}"));
        }
        if let Some(name) = self.spans.custom_name(req) {
            return name;
        }
        Cow::Borrowed(http_operation_name(req.method()))
    }

    fn tag(&self, span: &mut Span, req: &Request) {
        let url = req.url();
        let url_text = url_tag_from_parts(
            url.scheme(),
            url.host_str().unwrap_or_default(),
            url.port(),
            url.path(),
            url.query(),
            self.spans.query,
        );
        tag_request(
            span,
            Side::Client,
            self.spans.component.clone(),
            method_tag(req.method()),
            url_text,
        );
        tag_peer_host(span, url.host_str(), url.port_or_known_default());
    }

    /// Records the response; finishes the span now, or at the end of the
    /// body with body tracking.
    fn on_response(&self, resp: Response, mut request: RequestSpan) -> Response {
        let status = resp.status();
        request
            .span()
            .set_tag(tags::HTTP_STATUS_CODE, status.as_u16());
        let failed =
            status.is_server_error() || (self.client_errors_fail && status.is_client_error());
        request.set_status(status.as_u16(), failed);
        if !self.body_tracking || !request.span().is_recording() {
            request.finish();
            return resp;
        }
        let url = resp.url().clone();
        let (parts, body) = http::Response::<reqwest::Body>::from(resp).into_parts();
        let body = reqwest::Body::wrap(traced_body(body, request));
        let mut rebuilt = http::Response::new(body);
        *rebuilt.status_mut() = parts.status;
        *rebuilt.version_mut() = parts.version;
        *rebuilt.headers_mut() = parts.headers;
        *rebuilt.extensions_mut() = parts.extensions;
        // The URL travels as an extension only reqwest's builder can set.
        if let Ok(with_url) =
            reqwest::ResponseBuilderExt::url(http::Response::builder(), url).body(())
        {
            rebuilt
                .extensions_mut()
                .extend(with_url.into_parts().0.extensions);
        }
        Response::from(rebuilt)
    }
}

/// `HTTP {METHOD}`, without building it per request.
fn http_operation_name(m: &http::Method) -> &'static str {
    match *m {
        http::Method::GET => "HTTP GET",
        http::Method::POST => "HTTP POST",
        http::Method::PUT => "HTTP PUT",
        http::Method::DELETE => "HTTP DELETE",
        http::Method::HEAD => "HTTP HEAD",
        http::Method::OPTIONS => "HTTP OPTIONS",
        http::Method::PATCH => "HTTP PATCH",
        http::Method::CONNECT => "HTTP CONNECT",
        http::Method::TRACE => "HTTP TRACE",
        _ => "HTTP _OTHER",
    }
}

/// The `http.method` tag: the method as sent, without allocating for the
/// standard ones.
fn method_tag(m: &http::Method) -> Cow<'static, str> {
    match operation_method(m) {
        "_OTHER" => Cow::Owned(m.as_str().to_owned()),
        standard => Cow::Borrowed(standard),
    }
}

/// The method in operation names: extension methods read `_OTHER`, so
/// that callers cannot mint operation names at will.
fn operation_method(m: &http::Method) -> &'static str {
    match *m {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::DELETE => "DELETE",
        http::Method::HEAD => "HEAD",
        http::Method::OPTIONS => "OPTIONS",
        http::Method::PATCH => "PATCH",
        http::Method::CONNECT => "CONNECT",
        http::Method::TRACE => "TRACE",
        _ => "_OTHER",
    }
}

/// The `error.kind` of a failed request.
fn error_kind(e: &reqwest_middleware::Error) -> &'static str {
    match e {
        reqwest_middleware::Error::Reqwest(e) if e.is_timeout() => "timeout",
        reqwest_middleware::Error::Reqwest(e) if e.is_connect() => "connect",
        reqwest_middleware::Error::Reqwest(e) if e.is_body() || e.is_decode() => "body",
        reqwest_middleware::Error::Reqwest(e) if e.is_redirect() => "redirect",
        reqwest_middleware::Error::Reqwest(_) => "request",
        reqwest_middleware::Error::Middleware(_) => "middleware",
    }
}
