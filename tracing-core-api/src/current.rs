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

use std::cell::RefCell;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::{SharedSpan, SpanContext};

thread_local! {
    /// The spans entered on this thread, innermost last.
    static STACK: RefCell<Vec<SharedSpan>> = const { RefCell::new(Vec::new()) };
}

// The stack is only borrowed inside this module, never while user code or a
// destructor runs (removed spans are dropped after the borrow ends), so the
// borrows cannot conflict. `try_with` fails only while the thread is being
// torn down; then there is no current span.

/// The current span of this thread, if any.
pub fn current_span() -> Option<SharedSpan> {
    STACK
        .try_with(|s| s.borrow().last().cloned())
        .ok()
        .flatten()
}

/// The context of the current span, if any.
pub fn current_context() -> Option<SpanContext> {
    current_span().map(|s| s.context())
}

/// Leaves the span when dropped. Not `Send`: it must be dropped on the
/// thread that made it. Guards may be dropped in any order: each removes
/// its own span, and the current span is always the innermost one still
/// entered.
#[must_use = "the span is current only while the guard lives"]
pub struct Entered {
    span: *const (),
    _not_send: PhantomData<*const ()>,
}

impl std::fmt::Debug for Entered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entered").finish_non_exhaustive()
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        let removed = STACK
            .try_with(|s| {
                let mut s = s.borrow_mut();
                let is_ours =
                    |x: &SharedSpan| std::sync::Arc::as_ptr(&x.0).cast::<()>() == self.span;
                // Guards almost always drop innermost first.
                if s.last().is_some_and(is_ours) {
                    return s.pop();
                }
                let at = s.iter().rposition(is_ours);
                at.map(|i| s.remove(i))
            })
            .ok()
            .flatten();
        // Dropped here, outside the borrow: this may finish the span.
        drop(removed);
    }
}

impl SharedSpan {
    /// Makes this span the current span until the guard is dropped.
    pub fn enter(&self) -> Entered {
        let _ = STACK.try_with(|s| s.borrow_mut().push(self.clone()));
        Entered {
            span: std::sync::Arc::as_ptr(&self.0).cast::<()>(),
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

impl<F> std::fmt::Debug for WithSpan<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WithSpan")
            .field("span", &self.span)
            .finish_non_exhaustive()
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
    fn guards_dropped_out_of_order_leave_nothing_behind() {
        let tracer = MockTracer::new();
        let a = tracer.span("a").start_shared();
        let b = tracer.span("b").ignore_current_span().start_shared();
        let ga = a.enter();
        let gb = b.enter();
        drop(ga);
        assert!(current_span().is_some_and(|s| s.ptr_eq(&b)));
        drop(gb);
        assert!(current_span().is_none());
    }

    #[test]
    fn starting_children_inside_with_does_not_deadlock() {
        let tracer = MockTracer::new();
        let a = tracer.span("a").start_shared();
        let _g = a.enter();
        let child = a.with(|s| {
            s.set_tag("k", 1);
            let _ = format!("{a:?}");
            tracer.span("c").start()
        });
        assert_eq!(child.context().trace_id(), a.context().trace_id());
        a.in_scope(|| a.finish());
        assert_eq!(tracer.finished_spans().len(), 1);
    }

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
