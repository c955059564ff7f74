//! A response body that finishes the request's span when the body ends.

use std::borrow::Cow;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http_body::{Body, Frame, SizeHint};
use opentracing_api::{log_fields, tags, SharedSpan, Tag};

/// What an [`Observer`] learns about each finished request.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RequestOutcome<'a> {
    /// The span's operation name (the route template, or the method).
    pub operation: &'a str,
    /// The response status, when there was a response.
    pub status: Option<u16>,
    /// From the request's arrival to the end of its response body.
    pub duration: Duration,
    /// Whether the span was marked failed (5xx, service error, panic,
    /// body error, body dropped early).
    pub error: bool,
}

/// Called once per finished server span: the basis of RPC metrics.
pub trait Observer: Send + Sync {
    /// One request finished.
    fn on_finish(&self, outcome: &RequestOutcome<'_>);
}

/// The span of one request, with what is needed to finish it exactly once.
pub(crate) struct Tracked {
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

impl Tracked {
    /// Marks the span failed with an error log.
    pub(crate) fn fail(&mut self, kind: &'static str, message: impl Into<Cow<'static, str>>) {
        self.error = true;
        self.span.set_tag(tags::ERROR, true);
        self.span.log([
            Tag::new(log_fields::EVENT, log_fields::EVENT_ERROR),
            Tag::new(log_fields::ERROR_KIND, kind),
            Tag::new(log_fields::MESSAGE, message.into()),
        ]);
    }

    /// Finishes the span and tells the observer.
    ///
    /// The observer gets the operation name the span started with (the
    /// route template), not a name a handler set later: that keeps metrics
    /// per endpoint stable, bounded, and the same for sampled and unsampled
    /// requests (renaming only affects recorded spans).
    pub(crate) fn finish(self) {
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

pin_project_lite::pin_project! {
    /// A response body whose end finishes the request's span: streaming and
    /// server-sent-event bodies are traced for as long as they run. If the
    /// body is dropped before its end (the client went away), the span is
    /// marked failed with a log saying so, and finished.
    pub struct TracedBody<B> {
        #[pin]
        inner: B,
        tracked: Option<Box<Tracked>>,
    }

    impl<B> PinnedDrop for TracedBody<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(mut t) = this.tracked.take() {
                // hyper stops polling once it has written Content-Length
                // bytes, and never polls a HEAD or 204 body: those are
                // complete responses, not abandoned ones. (A body that
                // reports its end while polled is finished there.)
                let complete = t.no_body || t.expected_len.is_some_and(|n| t.bytes_sent >= n);
                if !complete && t.fail_on_early_drop {
                    t.fail("body_dropped", "the response body was dropped before its end (client went away?)");
                }
                t.finish();
            }
        }
    }
}

impl<B: Body> TracedBody<B> {
    /// A body that traces nothing (a request the filter skipped).
    pub(crate) fn untraced(inner: B) -> Self {
        TracedBody {
            inner,
            tracked: None,
        }
    }
}

impl<B: Body> TracedBody<B> {
    pub(crate) fn new(inner: B, mut tracked: Box<Tracked>) -> Self {
        if tracked.expected_len.is_none() {
            tracked.expected_len = inner.size_hint().exact();
        }
        let done = inner.is_end_stream();
        let mut body = TracedBody {
            inner,
            tracked: Some(tracked),
        };
        if done {
            if let Some(t) = body.tracked.take() {
                t.finish();
            }
        }
        body
    }
}

impl<B: Body> Body for TracedBody<B>
where
    B::Error: fmt::Display,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let mut inner = this.inner;
        let result = inner.as_mut().poll_frame(cx);
        if let (Poll::Ready(Some(Ok(frame))), Some(t)) = (&result, this.tracked.as_mut()) {
            if let Some(data) = frame.data_ref() {
                t.bytes_sent += bytes::Buf::remaining(data) as u64;
            }
        }
        match &result {
            Poll::Ready(None) => {
                if let Some(t) = this.tracked.take() {
                    t.finish();
                }
            }
            Poll::Ready(Some(Err(e))) => {
                if let Some(mut t) = this.tracked.take() {
                    t.fail("body_error", e.to_string());
                    t.finish();
                }
            }
            Poll::Ready(Some(Ok(_))) if inner.is_end_stream() => {
                if let Some(t) = this.tracked.take() {
                    t.finish();
                }
            }
            _ => {}
        }
        result
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> fmt::Debug for TracedBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracedBody")
            .field("finished", &self.tracked.is_none())
            .finish_non_exhaustive()
    }
}

mod sealed {
    pub trait Sealed {}
}

/// How a traced service hands back response bodies: the choice between
/// [`TracedBodies`] (the default, any body type) and, with the `axum`
/// feature, `AxumBodies`. Sealed: the layers only work with these.
pub trait ResponseBodies<B>: sealed::Sealed {
    /// The response body type of the traced service.
    type Body;

    /// Wraps `body` to finish `tracked` at its end, or hands it back as it
    /// is when there is nothing to track.
    #[doc(hidden)]
    #[allow(private_interfaces)] // sealed: `Tracked` never leaves the crate
    fn body(body: B, tracked: Option<Box<Tracked>>) -> Self::Body;
}

/// Response bodies as [`TracedBody`]: works with every body type. Axum
/// routers box it once more (into `axum::body::Body`); see `AxumBodies`
/// (feature `axum`).
#[derive(Clone, Copy, Debug, Default)]
pub struct TracedBodies;

impl sealed::Sealed for TracedBodies {}

impl<B: Body> ResponseBodies<B> for TracedBodies {
    type Body = TracedBody<B>;

    #[allow(private_interfaces)]
    fn body(body: B, tracked: Option<Box<Tracked>>) -> TracedBody<B> {
        match tracked {
            Some(t) => TracedBody::new(body, t),
            None => TracedBody::untraced(body),
        }
    }
}

/// Response bodies as `axum::body::Body`, for layers on an axum `Router`:
/// a response with nothing to track (no-op tracer, filtered request, span
/// not recorded) goes back untouched, where a [`TracedBody`] would make
/// axum box it again. Select it with
/// [`TracingLayer::with_axum_bodies`](crate::TracingLayer::with_axum_bodies).
#[cfg(feature = "axum")]
#[derive(Clone, Copy, Debug, Default)]
pub struct AxumBodies;

#[cfg(feature = "axum")]
impl sealed::Sealed for AxumBodies {}

#[cfg(feature = "axum")]
impl<B> ResponseBodies<B> for AxumBodies
where
    B: Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError> + fmt::Display,
{
    type Body = axum::body::Body;

    #[allow(private_interfaces)]
    fn body(body: B, tracked: Option<Box<Tracked>>) -> axum::body::Body {
        match tracked {
            Some(t) => axum::body::Body::new(TracedBody::new(body, t)),
            // `Body::new` hands an `axum::body::Body` back as it is.
            None => axum::body::Body::new(body),
        }
    }
}
