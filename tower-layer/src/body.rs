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
        tracked: Option<Tracked>,
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
    pub(crate) fn new(inner: B, mut tracked: Tracked) -> Self {
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
