//! The current span, across `.await` and into spawned tasks.
//!
//! Each thread has a current span. [`SharedSpan::enter`] makes a span
//! current until the returned guard drops; [`WithSpan`] (from
//! [`SpanFutureExt::with_span`]) makes it current every time a future is
//! polled, so it follows the future from thread to thread on a
//! work-stealing runtime. Nothing here depends on an async runtime.
//!
//! ```
//! use opentracing_api::{current_context, MockTracer, SpanFutureExt, Tracer, TracerExt};
//! # futures_executor::block_on(async {
//! let tracer = MockTracer::new();
//! let request = tracer.span("request").start_shared();
//! let trace_id = request.context().trace_id();
//! async {
//!     // Any span started in here is a child of `request`.
//!     let child = tracer.span("db").start();
//!     assert_eq!(child.context().trace_id(), trace_id);
//! }
//! .with_span(request.clone())
//! .await;
//! assert!(current_context().is_none());
//! # });
//! ```

use std::cell::Cell;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::{SharedSpan, SpanContext};

thread_local! {
    static CURRENT: Cell<Option<SharedSpan>> = const { Cell::new(None) };
}

fn swap_current(span: Option<SharedSpan>) -> Option<SharedSpan> {
    // `try_with` fails only while the thread is being torn down; then there
    // is no current span to speak of and the span is dropped (finishing it).
    CURRENT.try_with(|c| c.replace(span)).unwrap_or(None)
}

/// The current span of this thread, if any.
pub fn current_span() -> Option<SharedSpan> {
    let span = swap_current(None);
    let copy = span.clone();
    swap_current(span);
    copy
}

/// The context of the current span, if any.
pub fn current_context() -> Option<SpanContext> {
    let span = swap_current(None)?;
    let cx = span.context();
    swap_current(Some(span));
    Some(cx)
}

/// Restores the previous current span when dropped. Not `Send`: it must be
/// dropped on the thread that made it.
#[must_use = "the span is current only while the guard lives"]
pub struct Entered {
    previous: Option<SharedSpan>,
    _not_send: PhantomData<*const ()>,
}

impl Drop for Entered {
    fn drop(&mut self) {
        swap_current(self.previous.take());
    }
}

impl SharedSpan {
    /// Makes this span the current span until the guard is dropped.
    pub fn enter(&self) -> Entered {
        Entered {
            previous: swap_current(Some(self.clone())),
            _not_send: PhantomData,
        }
    }

    /// Runs `f` with this span current.
    pub fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        let _guard = self.enter();
        f()
    }
}

pin_project_lite::pin_project! {
    /// A future that makes a span current while it is polled (returned by
    /// [`SpanFutureExt::with_span`] and
    /// [`SpanFutureExt::with_current_span`]). Dropping it drops its handle
    /// on the span, which finishes the span if it was the last one.
    #[must_use = "futures do nothing unless polled"]
    pub struct WithSpan<F> {
        #[pin]
        inner: F,
        span: Option<SharedSpan>,
    }
}

impl<F> WithSpan<F> {
    /// The span made current, if any.
    pub fn span(&self) -> Option<&SharedSpan> {
        self.span.as_ref()
    }
}

impl<F: Future> Future for WithSpan<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _guard = this.span.as_ref().map(SharedSpan::enter);
        this.inner.poll(cx)
    }
}

/// Attaches spans to futures.
pub trait SpanFutureExt: Future + Sized {
    /// Makes `span` the current span whenever this future is polled.
    fn with_span(self, span: impl Into<SharedSpan>) -> WithSpan<Self> {
        WithSpan {
            inner: self,
            span: Some(span.into()),
        }
    }

    /// Captures the current span now and makes it current whenever this
    /// future is polled: use it to carry the span into `tokio::spawn`.
    ///
    /// ```
    /// # use opentracing_api::{current_context, SpanFutureExt};
    /// # async fn example() {
    /// let task = tokio::spawn(async { current_context() }.with_current_span());
    /// # }
    /// ```
    fn with_current_span(self) -> WithSpan<Self> {
        WithSpan {
            inner: self,
            span: current_span(),
        }
    }
}

impl<F: Future> SpanFutureExt for F {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MockTracer, TracerExt};

    #[test]
    fn enter_nests_and_restores() {
        let tracer = MockTracer::new();
        let a = tracer.span("a").start_shared();
        let b = tracer.span("b").ignore_current_span().start_shared();
        assert!(current_span().is_none());
        {
            let _ga = a.enter();
            assert_eq!(
                current_context().map(|c| c.span_id()),
                Some(a.context().span_id())
            );
            {
                let _gb = b.enter();
                assert_eq!(
                    current_context().map(|c| c.span_id()),
                    Some(b.context().span_id())
                );
                let child = tracer.span("c").start();
                assert_eq!(child.context().trace_id(), b.context().trace_id());
            }
            assert_eq!(
                current_context().map(|c| c.span_id()),
                Some(a.context().span_id())
            );
        }
        assert!(current_span().is_none());
    }
}
