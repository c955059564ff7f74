//! A tracer for tests: records every finished span.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use crate::propagation::Propagator;
use crate::tag::tags;
use crate::{
    B3Propagator, Baggage, CompositePropagator, FinishedSpan, JaegerPropagator, ReferenceKind,
    Span, SpanContext, SpanId, SpanRecorder, StartSpanOptions, TraceContextPropagator, TraceFlags,
    TraceId, Tracer, W3CBaggagePropagator,
};

struct Inner {
    next_id: AtomicU64,
    finished: Mutex<Vec<FinishedSpan>>,
    propagator: Box<dyn Propagator>,
}

impl SpanRecorder for Inner {
    fn record(&self, span: Box<FinishedSpan>) {
        self.finished
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(*span);
    }
}

/// A tracer for users' own tests, like opentracing-go's `mocktracer`: it
/// records every span (sampled or not) with its references, tags, logs and
/// baggage, and hands them back in the order they finished.
///
/// Ids come from a counter starting at 43, so they are predictable. Spans
/// are sampled unless the parent says otherwise or `sampling.priority` is
/// 0. The default propagator injects Jaeger, W3C trace context, W3C baggage
/// and B3 headers, and extracts the first of them present.
///
/// Cloning gives another handle on the same recorded spans.
///
/// ```
/// use opentracing_api::{tags, MockTracer, Tracer, TracerExt};
/// let tracer = MockTracer::new();
/// let parent = tracer.span("parent").start();
/// tracer.span("child").child_of(parent.context()).tag(tags::COMPONENT, "db").start().finish();
/// parent.finish();
/// let spans = tracer.finished_spans();
/// assert_eq!(spans[0].operation_name, "child");
/// assert_eq!(spans[0].parent_span_id(), Some(spans[1].context.span_id()));
/// assert_eq!(spans[0].tag(tags::COMPONENT).and_then(|v| v.as_str()), Some("db"));
/// ```
#[derive(Clone)]
pub struct MockTracer {
    inner: Arc<Inner>,
}

impl Default for MockTracer {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MockTracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockTracer")
            .field(
                "finished",
                &self.inner.finished.lock().map_or(0, |v| v.len()),
            )
            .finish_non_exhaustive()
    }
}

impl MockTracer {
    /// A mock tracer with the default (all-formats) propagator.
    pub fn new() -> Self {
        Self::with_propagator(CompositePropagator::new(vec![
            Box::new(JaegerPropagator::new()),
            Box::new(TraceContextPropagator::new()),
            Box::new(W3CBaggagePropagator::new()),
            Box::new(B3Propagator::new()),
        ]))
    }

    /// A mock tracer using `propagator`.
    pub fn with_propagator(propagator: impl Propagator + 'static) -> Self {
        MockTracer {
            inner: Arc::new(Inner {
                next_id: AtomicU64::new(43),
                finished: Mutex::new(Vec::new()),
                propagator: Box::new(propagator),
            }),
        }
    }

    /// The spans finished so far, in finishing order.
    pub fn finished_spans(&self) -> Vec<FinishedSpan> {
        self.inner
            .finished
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Forgets the finished spans.
    pub fn reset(&self) {
        self.inner
            .finished
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    fn next_id(&self) -> u64 {
        self.inner.next_id.fetch_add(1, Ordering::Relaxed)
    }
}

impl Tracer for MockTracer {
    fn start_span_with_options(
        &self,
        operation_name: Cow<'static, str>,
        options: &mut StartSpanOptions,
    ) -> Span {
        let parent = options
            .references
            .iter()
            .find(|r| r.kind == ReferenceKind::ChildOf && r.context.is_valid())
            .or_else(|| options.references.iter().find(|r| r.context.is_valid()))
            .map(|r| &r.context);
        let mut baggage = Baggage::new();
        for r in &options.references {
            baggage.merge_missing(r.context.baggage());
        }
        let span_id = SpanId::from_u64(self.next_id());
        let (trace_id, mut flags, parent_id) = match parent {
            Some(p) => {
                let flags = if p.is_sampling_decided() {
                    p.flags()
                } else {
                    TraceFlags::SAMPLED
                };
                (p.trace_id(), flags, p.span_id())
            }
            None => (
                TraceId::from_u64(span_id.to_u64()),
                TraceFlags::SAMPLED,
                SpanId::INVALID,
            ),
        };
        if let Some(p) = options
            .tags
            .iter()
            .find(|t| t.key == tags::SAMPLING_PRIORITY)
            .and_then(|t| t.value.as_i64())
        {
            flags = if p > 0 {
                flags.with_sampled(true).with_debug(true)
            } else {
                flags.with_sampled(false)
            };
        }
        let cx = SpanContext::new(trace_id, span_id, flags)
            .with_parent_id(parent_id)
            .with_baggage(baggage)
            .with_trace_state(parent.and_then(SpanContext::trace_state));
        Span::recorded(
            cx,
            operation_name,
            options.start_time.unwrap_or_else(SystemTime::now),
            options.references.drain(..),
            options.tags.drain(..),
            self.inner.clone(),
        )
    }

    fn propagator(&self) -> &dyn Propagator {
        &*self.inner.propagator
    }
}
