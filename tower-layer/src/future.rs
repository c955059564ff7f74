//! The response future shared by the server and client services.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderName, HeaderValue, Response};
use http_body::Body;
use opentracing_api::{tags, SharedSpan};

use crate::body::{ResponseBodies, TracedBodies};
use crate::lifecycle::{run_in_span, FinishOnUnwind, RequestSpan};

/// What to do with a response before it leaves.
#[derive(Debug, Default, Clone)]
pub(crate) struct ResponseConfig {
    /// Response headers recorded as `http.response.header.<name>` tags.
    pub(crate) capture: Vec<HeaderName>,
    /// Echo the trace id in this response header.
    pub(crate) trace_id_header: Option<HeaderName>,
    /// Whether 4xx statuses mark the span failed too (client spans).
    pub(crate) client_errors_fail: bool,
}

impl ResponseConfig {
    /// The configuration a response future needs: none when there is
    /// nothing to do, which spares a reference count on every request.
    pub(crate) fn for_future(this: &Arc<ResponseConfig>) -> Option<Arc<ResponseConfig>> {
        let c = &**this;
        let idle = c.capture.is_empty() && c.trace_id_header.is_none() && !c.client_errors_fail;
        (!idle).then(|| this.clone())
    }
}

static IDLE_RESPONSE_CONFIG: ResponseConfig = ResponseConfig {
    capture: Vec::new(),
    trace_id_header: None,
    client_errors_fail: false,
};

pin_project_lite::pin_project! {
    /// The future of a traced request: makes the span current while the
    /// inner service runs, records the status, and hands the span to the
    /// response body, which finishes it when it ends. If the future is
    /// dropped first (cancelled, or unwound by a panic), the span is marked
    /// failed and finished.
    pub struct ResponseFuture<F, M = TracedBodies> {
        #[pin]
        inner: F,
        tracked: Option<Box<RequestSpan>>,
        // A span that records nothing, with no observer to tell: it only
        // needs to be current while the service runs. Nothing about the
        // response can be recorded on it, so it finishes with the future
        // and the body goes out unwrapped.
        unrecorded: Option<SharedSpan>,
        config: Option<Arc<ResponseConfig>>,
        bodies: PhantomData<fn() -> M>,
    }

    impl<F, M> PinnedDrop for ResponseFuture<F, M> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(span) = this.unrecorded.take() {
                span.finish();
            }
            if let Some(mut t) = this.tracked.take() {
                if std::thread::panicking() {
                    t.fail("panic", "the service panicked");
                } else {
                    t.fail("cancelled", "the request was dropped before a response (client went away?)");
                }
                t.finish();
            }
        }
    }
}

/// Calls `inner` with `tracked`'s span current. Should `call` itself panic
/// (not the future it returns), the span is finished as failed on the way
/// out, so that a panic catcher outside (tower-http's `CatchPanic`) does
/// not leave the trace and the observer without the failure.
#[inline]
pub(crate) fn call_in_span<S, R>(
    inner: &mut S,
    req: R,
    tracked: &mut Option<Box<RequestSpan>>,
) -> S::Future
where
    S: tower_service::Service<R>,
{
    run_in_span(tracked, || inner.call(req))
}

impl<F, M> ResponseFuture<F, M> {
    pub(crate) fn new(
        inner: F,
        tracked: Option<Box<RequestSpan>>,
        config: Option<Arc<ResponseConfig>>,
    ) -> Self {
        ResponseFuture {
            inner,
            tracked,
            unrecorded: None,
            config,
            bodies: PhantomData,
        }
    }

    /// A future for a span that records nothing (see the field).
    pub(crate) fn unrecorded(
        inner: F,
        span: SharedSpan,
        config: Option<Arc<ResponseConfig>>,
    ) -> Self {
        ResponseFuture {
            inner,
            tracked: None,
            unrecorded: Some(span),
            config,
            bodies: PhantomData,
        }
    }
}

/// Echoes the trace id in the configured response header.
fn add_trace_id_header<B>(config: &ResponseConfig, span: &SharedSpan, resp: &mut Response<B>) {
    if let Some(name) = &config.trace_id_header {
        let id = span.context().trace_id();
        if id.is_valid() {
            if let Ok(v) = HeaderValue::try_from(id.to_hex32()) {
                resp.headers_mut().insert(name.clone(), v);
            }
        }
    }
}

impl<F, M> fmt::Debug for ResponseFuture<F, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("traced", &self.tracked.is_some())
            .finish_non_exhaustive()
    }
}

impl<F, B, E, M> Future for ResponseFuture<F, M>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body,
    E: fmt::Display,
    M: ResponseBodies<B>,
{
    type Output = Result<Response<M::Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let config = this.config.as_deref().unwrap_or(&IDLE_RESPONSE_CONFIG);
        let result = {
            let _guard = match (this.tracked.as_ref(), this.unrecorded.as_ref()) {
                (Some(t), _) => Some(t.span.enter()),
                (None, Some(span)) => Some(span.enter()),
                (None, None) => None,
            };
            // If the inner service panics, the unwind passes through here:
            // finish the span as failed now, because a panic catcher outside
            // (tower-http's `CatchPanic`) may keep this future alive.
            let bomb = FinishOnUnwind(this.tracked);
            let r = this.inner.poll(cx);
            std::mem::forget(bomb);
            match r {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(r) => r,
            }
        };
        if let Some(span) = this.unrecorded.take() {
            // Recorded nowhere, so it may finish now; a streaming body
            // still makes its context current while polled.
            span.finish();
            return Poll::Ready(result.map(|mut resp| {
                add_trace_id_header(config, &span, &mut resp);
                resp.map(|b| M::body(b, None, Some(span)))
            }));
        }
        let Some(mut t) = this.tracked.take() else {
            return Poll::Ready(result.map(|resp| resp.map(|b| M::body(b, None, None))));
        };
        Poll::Ready(match result {
            Ok(mut resp) => {
                let status = resp.status();
                t.status = Some(status.as_u16());
                if status.is_informational()
                    || status == http::StatusCode::NO_CONTENT
                    || status == http::StatusCode::NOT_MODIFIED
                {
                    t.no_body = true;
                }
                if let Some(len) =
                    crate::request::find_header(resp.headers(), &http::header::CONTENT_LENGTH)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse().ok())
                {
                    t.expected_len = Some(len);
                }
                t.span.set_tag(tags::HTTP_STATUS_CODE, status.as_u16());
                if status.is_server_error()
                    || (config.client_errors_fail && status.is_client_error())
                {
                    t.fail("http_status", format!("HTTP {status}"));
                }
                for name in &config.capture {
                    if let Some(v) = resp.headers().get(name).and_then(|v| v.to_str().ok()) {
                        t.span
                            .set_tag(format!("http.response.header.{name}"), v.to_owned());
                    }
                }
                add_trace_id_header(config, &t.span, &mut resp);
                Ok(resp.map(|b| M::body(b, Some(t), None)))
            }
            Err(e) => {
                t.fail("service_error", e.to_string());
                t.finish();
                Err(e)
            }
        })
    }
}
