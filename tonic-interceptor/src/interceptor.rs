//! `tonic::service::Interceptor`s, for services and clients set up with
//! `with_interceptor`.
//!
//! An interceptor is synchronous and sees only the call's metadata and
//! extensions, once, before the call runs. That is enough to propagate a
//! context, not to trace a call:
//!
//! - [`ClientInterceptor`] injects the current span's context into each
//!   outgoing call. It starts no span of its own (it would not see the
//!   call end), and it does not know the destination, so it applies no
//!   [`InjectPolicy`](opentracing_api::InjectPolicy): give it only to
//!   clients of services you trust with your trace context and baggage.
//! - [`ServerInterceptor`] extracts the caller's context and starts the
//!   server span, but it sees neither the method (so spans share one
//!   name), nor the final status, nor the end of a stream: the span
//!   finishes when the handler drops the request's extensions (or the
//!   last clone of the span), is not current while the handler runs, and
//!   carries no status code.
//!
//! [`GrpcServerLayer`](crate::GrpcServerLayer) and
//! [`GrpcClientLayer`](crate::GrpcClientLayer) see all of that: prefer
//! them.

use std::borrow::Cow;
use std::fmt;

use opentracing_api::strip_trace_headers;
use opentracing_api::{
    current_context, tags, ExtractPolicy, Format, SharedSpan, Tracer, TracerExt,
};
use opentracing_tower::lifecycle::Side;
use tonic::service::Interceptor;
use tonic::{Request, Status};

use crate::metadata::{MetadataExtractor, MetadataInjector};

/// Injects the current span's context into the metadata of each outgoing
/// call (`Client::with_interceptor(channel, ClientInterceptor::new(tracer))`),
/// after removing any trace metadata already there. Without a current
/// span, the call goes out with no trace metadata.
///
/// ```
/// use opentracing_api::{MockTracer, SpanFutureExt, TracerExt};
/// use opentracing_tonic::ClientInterceptor;
/// use tonic::service::Interceptor;
///
/// let tracer = MockTracer::new();
/// let mut interceptor = ClientInterceptor::new(tracer.clone());
/// let span = tracer.span("handler").start_shared();
/// let request = span.in_scope(|| interceptor.call(tonic::Request::new(()))).unwrap();
/// assert!(request.metadata().get("traceparent").is_some());
/// ```
#[derive(Clone)]
pub struct ClientInterceptor<T> {
    tracer: T,
}

impl<T> fmt::Debug for ClientInterceptor<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientInterceptor").finish_non_exhaustive()
    }
}

impl<T> ClientInterceptor<T> {
    /// An interceptor injecting with `tracer`'s propagator.
    pub fn new(tracer: T) -> Self {
        ClientInterceptor { tracer }
    }
}

impl<T: Tracer> Interceptor for ClientInterceptor<T> {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let propagator = self.tracer.propagator();
        strip_trace_headers(request.metadata_mut().as_mut(), propagator);
        if let Some(cx) = current_context() {
            self.tracer.inject(
                &cx,
                Format::HttpHeaders,
                &mut MetadataInjector::new(request.metadata_mut()),
            );
        }
        Ok(request)
    }
}

/// Starts a server span for each call of a service set up with
/// `with_interceptor`: `ChildOf` the caller's context (through the
/// [`ExtractPolicy`]), tagged `span.kind=server`, `component=grpc` and the
/// peer's address, and put in the request's extensions as a
/// [`SharedSpan`].
///
/// See the [module documentation](self) for what an interceptor cannot
/// see: the span is named after the service (set it with
/// [`with_operation_name`](Self::with_operation_name); default
/// `grpc.server`), is not current on its own (the handler makes it current
/// with [`SpanFutureExt::with_span`](opentracing_api::SpanFutureExt::with_span)),
/// finishes when the last handle on it drops (the request's extensions, once
/// the handler is done with them), and records no status. The
/// [`GrpcServerLayer`](crate::GrpcServerLayer) has none of these limits.
///
/// ```
/// use opentracing_api::{MockTracer, SharedSpan};
/// use opentracing_tonic::ServerInterceptor;
/// use tonic::service::Interceptor;
///
/// let tracer = MockTracer::new();
/// let mut interceptor = ServerInterceptor::new(tracer.clone()).with_operation_name("driver.DriverService");
/// let mut request = tonic::Request::new(());
/// request.metadata_mut().insert("uber-trace-id", "abc:def:0:1".parse().unwrap());
/// let request = interceptor.call(request).unwrap();
/// let span = request.extensions().get::<SharedSpan>().unwrap();
/// assert_eq!(span.context().trace_id().low(), 0xabc);
/// ```
#[derive(Clone)]
pub struct ServerInterceptor<T> {
    tracer: T,
    name: Cow<'static, str>,
    component: Cow<'static, str>,
    extract: ExtractPolicy,
}

impl<T> fmt::Debug for ServerInterceptor<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerInterceptor")
            .field("name", &self.name)
            .field("extract", &self.extract)
            .finish_non_exhaustive()
    }
}

impl<T> ServerInterceptor<T> {
    /// An interceptor tracing with `tracer`.
    pub fn new(tracer: T) -> Self {
        ServerInterceptor {
            tracer,
            name: Cow::Borrowed("grpc.server"),
            component: Cow::Borrowed("grpc"),
            extract: ExtractPolicy::default(),
        }
    }

    /// The spans' operation name (default `grpc.server`): an interceptor
    /// does not see the method, so name them after the service it guards.
    pub fn with_operation_name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = name.into();
        self
    }

    /// The `component` tag (default `grpc`).
    pub fn with_component(mut self, component: impl Into<Cow<'static, str>>) -> Self {
        self.component = component.into();
        self
    }

    /// What to trust in incoming contexts (default: everything).
    pub fn with_extract_policy(mut self, policy: ExtractPolicy) -> Self {
        self.extract = policy;
        self
    }
}

impl<T: Tracer> Interceptor for ServerInterceptor<T> {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if self.tracer.is_noop() {
            return Ok(request);
        }
        let parent = self
            .tracer
            .extract(
                Format::HttpHeaders,
                &MetadataExtractor::new(request.metadata()),
            )
            .ok()
            .flatten();
        let mut span = self
            .tracer
            .span(self.name.clone())
            .with_extracted(self.extract.apply(parent))
            .start();
        if span.is_recording() {
            span.set_tag(tags::SPAN_KIND, Side::Server.span_kind());
            span.set_tag(tags::COMPONENT, self.component.clone());
            #[cfg(feature = "transport")]
            if let Some(addr) = request.remote_addr() {
                opentracing_tower::lifecycle::tag_peer_addr(&mut span, addr);
            }
        }
        let span: SharedSpan = span.into_shared();
        request.extensions_mut().insert(span);
        Ok(request)
    }
}
