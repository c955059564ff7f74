//! The span context: what crosses process boundaries.

use std::sync::Arc;

use crate::{Baggage, SpanId, TraceFlags, TraceId};

/// The part of a span that propagates: ids, flags, baggage, and the
/// format-specific state that must be carried through untouched.
///
/// A context with no baggage, trace state or debug id holds no heap memory,
/// and cloning one is cheap in every case (reference counts only).
///
/// A context may be *invalid* (zero trace or span id) yet still carry
/// something a tracer must honour: a `jaeger-debug-id` (force a sampled,
/// debug trace), baggage that arrived on its own (W3C `baggage` without
/// `traceparent`), or a bare sampling decision (B3 `b3: 0`). Check
/// [`is_valid`](Self::is_valid) before using it as a parent.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SpanContext {
    trace_id: TraceId,
    span_id: SpanId,
    parent_id: SpanId,
    flags: TraceFlags,
    baggage: Baggage,
    trace_state: Option<Arc<str>>,
    debug_id: Option<Arc<str>>,
    sampling_decided: bool,
}

impl SpanContext {
    /// A context with the given ids and flags, no parent id and no baggage.
    ///
    /// ```
    /// use opentracing_api::{SpanContext, SpanId, TraceFlags, TraceId};
    /// let cx = SpanContext::new(TraceId::from_u64(1), SpanId::from_u64(2), TraceFlags::SAMPLED);
    /// assert!(cx.is_valid() && cx.is_sampled());
    /// ```
    #[inline]
    pub fn new(trace_id: TraceId, span_id: SpanId, flags: TraceFlags) -> Self {
        SpanContext {
            trace_id,
            span_id,
            flags,
            sampling_decided: true,
            ..Default::default()
        }
    }

    /// A context with every field given, in one move (for tracers starting
    /// spans on a hot path).
    pub fn from_parts(
        trace_id: TraceId,
        span_id: SpanId,
        parent_id: SpanId,
        flags: TraceFlags,
        baggage: Baggage,
        trace_state: Option<Arc<str>>,
    ) -> Self {
        SpanContext {
            trace_id,
            span_id,
            parent_id,
            flags,
            baggage,
            trace_state,
            debug_id: None,
            sampling_decided: true,
        }
    }

    /// The W3C `tracestate`, shared (cloning it is a reference count).
    #[inline]
    pub fn trace_state_arc(&self) -> Option<&Arc<str>> {
        self.trace_state.as_ref()
    }

    /// An empty, invalid context (what the no-op tracer's spans carry).
    pub const fn empty() -> Self {
        SpanContext {
            trace_id: TraceId::INVALID,
            span_id: SpanId::INVALID,
            parent_id: SpanId::INVALID,
            flags: TraceFlags::NONE,
            baggage: Baggage::new(),
            trace_state: None,
            debug_id: None,
            sampling_decided: false,
        }
    }

    /// The trace id.
    #[inline]
    pub fn trace_id(&self) -> TraceId {
        self.trace_id
    }

    /// The span id.
    #[inline]
    pub fn span_id(&self) -> SpanId {
        self.span_id
    }

    /// The parent span id Jaeger's `uber-trace-id` and B3 carry (deprecated
    /// on the wire, zero when unknown).
    #[inline]
    pub fn parent_id(&self) -> SpanId {
        self.parent_id
    }

    /// The flags.
    #[inline]
    pub fn flags(&self) -> TraceFlags {
        self.flags
    }

    /// Whether the trace is sampled.
    #[inline]
    pub fn is_sampled(&self) -> bool {
        self.flags.is_sampled()
    }

    /// Whether the debug (forced sampling) flag is set.
    #[inline]
    pub fn is_debug(&self) -> bool {
        self.flags.is_debug()
    }

    /// Whether both ids are non-zero, so this context can be a parent.
    #[inline]
    pub fn is_valid(&self) -> bool {
        self.trace_id.is_valid() && self.span_id.is_valid()
    }

    /// Whether the flags carry a sampling decision made upstream. False for
    /// an extracted B3 context without `X-B3-Sampled` (the receiver decides)
    /// and for empty contexts.
    #[inline]
    pub fn is_sampling_decided(&self) -> bool {
        self.sampling_decided
    }

    /// The baggage.
    #[inline]
    pub fn baggage(&self) -> &Baggage {
        &self.baggage
    }

    /// Mutable access to the baggage.
    #[inline]
    pub fn baggage_mut(&mut self) -> &mut Baggage {
        &mut self.baggage
    }

    /// One baggage item.
    #[inline]
    pub fn baggage_item(&self, key: &str) -> Option<&str> {
        self.baggage.get(key)
    }

    /// The W3C `tracestate` carried through from the caller, if any.
    #[inline]
    pub fn trace_state(&self) -> Option<&str> {
        self.trace_state.as_deref()
    }

    /// The `jaeger-debug-id` the caller sent, if any.
    #[inline]
    pub fn debug_id(&self) -> Option<&str> {
        self.debug_id.as_deref()
    }

    /// This context with another trace id.
    #[inline]
    pub fn with_trace_id(mut self, id: TraceId) -> Self {
        self.trace_id = id;
        self
    }

    /// This context with another span id.
    #[inline]
    pub fn with_span_id(mut self, id: SpanId) -> Self {
        self.span_id = id;
        self
    }

    /// This context with a parent span id.
    #[inline]
    pub fn with_parent_id(mut self, id: SpanId) -> Self {
        self.parent_id = id;
        self
    }

    /// This context with other flags (and the sampling decision marked as
    /// taken).
    #[inline]
    pub fn with_flags(mut self, flags: TraceFlags) -> Self {
        self.flags = flags;
        self.sampling_decided = true;
        self
    }

    /// This context with the sampling decision marked as taken or not.
    #[inline]
    pub fn with_sampling_decided(mut self, decided: bool) -> Self {
        self.sampling_decided = decided;
        self
    }

    /// This context with other baggage.
    #[inline]
    pub fn with_baggage(mut self, baggage: Baggage) -> Self {
        self.baggage = baggage;
        self
    }

    /// This context with a W3C trace state (`None` removes it).
    #[inline]
    pub fn with_trace_state(mut self, state: Option<&str>) -> Self {
        self.trace_state = state.map(Arc::from);
        self
    }

    /// This context with a Jaeger debug id (`None` removes it).
    #[inline]
    pub fn with_debug_id(mut self, id: Option<&str>) -> Self {
        self.debug_id = id.map(Arc::from);
        self
    }

    pub(crate) fn set_flags(&mut self, flags: TraceFlags) {
        self.flags = flags;
    }
}

#[allow(clippy::missing_fields_in_debug)] // sampling_decided is implied by flags in practice
impl std::fmt::Debug for SpanContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("SpanContext");
        d.field("trace_id", &self.trace_id)
            .field("span_id", &self.span_id)
            .field("parent_id", &self.parent_id)
            .field("flags", &self.flags);
        if !self.baggage.is_empty() {
            d.field("baggage", &self.baggage);
        }
        if let Some(ts) = &self.trace_state {
            d.field("trace_state", ts);
        }
        if let Some(id) = &self.debug_id {
            d.field("debug_id", id);
        }
        d.finish()
    }
}
