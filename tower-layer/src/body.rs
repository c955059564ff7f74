//! A response body that finishes the request's span when the body ends.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};
use opentracing_api::SharedSpan;

use crate::lifecycle::RequestSpan;

pin_project_lite::pin_project! {
    /// A response body whose end finishes the request's span: streaming and
    /// server-sent-event bodies are traced for as long as they run, and the
    /// span is the current span while they are polled (so calls a stream
    /// makes nest under it). If the body is dropped before its end (the
    /// client went away), the span is marked failed with a log saying so,
    /// and finished.
    pub struct TracedBody<B> {
        #[pin]
        inner: B,
        tracked: Option<Box<RequestSpan>>,
        // Made current while a streaming body (no exact length: user code
        // produces it as it is polled) is polled; a buffered body runs no
        // user code and does without.
        current: Option<SharedSpan>,
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

/// Whether user code produces `body` as it is polled (a stream, server-sent
/// events): it has no exact length and has not ended.
#[cfg(feature = "axum")]
pub(crate) fn is_streaming<B: Body>(body: &B) -> bool {
    body.size_hint().exact().is_none() && !body.is_end_stream()
}

impl<B: Body> TracedBody<B> {
    /// Wraps `inner`: finishes `tracked` at its end; while a streaming body
    /// is polled, makes `tracked`'s span (or, for a span that records
    /// nothing, `unrecorded`) current.
    pub(crate) fn new(
        inner: B,
        tracked: Option<Box<RequestSpan>>,
        unrecorded: Option<SharedSpan>,
    ) -> Self {
        // A length the response announced (Content-Length) marks a body
        // that is not a stream, and spares asking the body.
        let exact = tracked
            .as_ref()
            .and_then(|t| t.expected_len)
            .or_else(|| inner.size_hint().exact());
        let done = inner.is_end_stream();
        let current = if exact.is_none() && !done {
            tracked.as_ref().map(|t| t.span.clone()).or(unrecorded)
        } else {
            None
        };
        let tracked = match tracked {
            Some(t) if done => {
                t.finish();
                None
            }
            Some(mut t) => {
                t.expected_len = exact;
                Some(t)
            }
            None => None,
        };
        TracedBody {
            inner,
            tracked,
            current,
        }
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
        let _current = this.current.as_ref().map(SharedSpan::enter);
        let result = inner.as_mut().poll_frame(cx);
        if let (Poll::Ready(Some(Ok(frame))), Some(t)) = (&result, this.tracked.as_mut()) {
            if let Some(data) = frame.data_ref() {
                t.bytes_sent += bytes::Buf::remaining(data) as u64;
            }
        }
        match &result {
            Poll::Ready(None) => {
                if let Some(t) = this.tracked.take() {
                    t.finish_at_end();
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
                    t.finish_at_end();
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

    /// Wraps `body` to finish `tracked` at its end and keep the span
    /// current while a streaming body is polled (`unrecorded`: the span of
    /// a response with nothing to track), or hands it back as it is when
    /// there is nothing to do.
    #[doc(hidden)]
    #[allow(private_interfaces)] // sealed: `RequestSpan` never leaves the crate
    fn body(
        body: B,
        tracked: Option<Box<RequestSpan>>,
        unrecorded: Option<SharedSpan>,
    ) -> Self::Body;
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
    fn body(
        body: B,
        tracked: Option<Box<RequestSpan>>,
        unrecorded: Option<SharedSpan>,
    ) -> TracedBody<B> {
        TracedBody::new(body, tracked, unrecorded)
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
    fn body(
        body: B,
        tracked: Option<Box<RequestSpan>>,
        unrecorded: Option<SharedSpan>,
    ) -> axum::body::Body {
        match (tracked, unrecorded) {
            (Some(t), _) => axum::body::Body::new(TracedBody::new(body, Some(t), None)),
            (None, Some(span)) if is_streaming(&body) => {
                axum::body::Body::new(TracedBody::new(body, None, Some(span)))
            }
            // `Body::new` hands an `axum::body::Body` back as it is.
            _ => axum::body::Body::new(body),
        }
    }
}
