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
    pub(crate) started: Instant,
    pub(crate) operation: Cow<'static, str>,
    pub(crate) observer: Option<Arc<dyn Observer>>,
    pub(crate) status: Option<u16>,
    pub(crate) error: bool,
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
    pub(crate) fn finish(self) {
        self.span.finish();
        if let Some(o) = &self.observer {
            o.on_finish(&RequestOutcome {
                operation: &self.operation,
                status: self.status,
                duration: self.started.elapsed(),
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
            if let Some(mut t) = this.project().tracked.take() {
                t.fail("body_dropped", "the response body was dropped before its end (client went away?)");
                t.finish();
            }
        }
    }
}

impl<B> TracedBody<B> {
    /// A body that traces nothing (a request the filter skipped).
    pub(crate) fn untraced(inner: B) -> Self {
        TracedBody {
            inner,
            tracked: None,
        }
    }
}

impl<B: Body> TracedBody<B> {
    pub(crate) fn new(inner: B, tracked: Tracked) -> Self {
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
