//! The `tracing_subscriber` layer.

use std::cell::RefCell;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use opentracing_api::Entered;
use opentracing_api::{current_span, tags, Field, SharedSpan, Tracer, TracerExt};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::{LookupSpan, SpanRef};
use tracing_subscriber::Layer;

use crate::fields::FieldVisitor;

/// How many logs a span keeps by default; later ones are dropped and
/// counted (see [`OpenTracingLayer::with_max_logs_per_span`]).
pub const DEFAULT_MAX_LOGS_PER_SPAN: usize = 128;

/// The tag set on a span that dropped logs over the cap: how many it
/// dropped.
pub const LOGS_DROPPED_TAG: &str = "logs.dropped";

/// The log field holding the event's message.
pub const EVENT_FIELD: &str = "event";

/// The log field holding the event's level (`ERROR`, `WARN`, `INFO`,
/// `DEBUG`, `TRACE`).
pub const LEVEL_FIELD: &str = "level";

/// The log field holding the event's target (by default its module path).
pub const TARGET_FIELD: &str = "target";

/// A [`Layer`] that bridges `tracing` onto OpenTracing: events become logs
/// on the current OpenTracing span, and `tracing` spans inside a trace
/// become child spans.
///
/// See the [crate documentation](crate) for what it records and how to
/// filter it.
///
/// ```
/// use opentracing_api::MockTracer;
/// use opentracing_tracing_bridge::OpenTracingLayer;
/// use tracing_subscriber::layer::SubscriberExt;
///
/// let tracer = MockTracer::new();
/// let layer = OpenTracingLayer::new(tracer.clone())
///     .with_max_logs_per_span(64)
///     .with_spans(true);
/// let dropped = layer.dropped_logs_counter();
/// let subscriber = tracing_subscriber::registry().with(layer);
/// # drop(subscriber);
/// assert_eq!(dropped.get(), 0);
/// ```
pub struct OpenTracingLayer<T> {
    tracer: T,
    /// Tells this layer's entries of the thread's entered spans from those
    /// of other layers (span ids are per subscriber).
    id: u64,
    max_logs: u64,
    spans: bool,
    root_spans: bool,
    span_filter: Option<Targets>,
    dropped: Arc<AtomicU64>,
}

/// The number of logs an [`OpenTracingLayer`] dropped because a span had
/// reached its cap. A handle that stays usable once the layer has moved
/// into a subscriber (for a metrics endpoint, say).
#[derive(Clone, Debug, Default)]
pub struct DroppedLogs(Arc<AtomicU64>);

impl DroppedLogs {
    /// The logs dropped so far, over all spans.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

fn next_layer_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl<T: Tracer + 'static> OpenTracingLayer<T> {
    /// A layer starting its spans with `tracer` (any [`Tracer`]: the Jaeger
    /// tracer, `Arc<dyn Tracer>`, the mock tracer in tests).
    ///
    /// By default: events inside a span become logs, at most
    /// [`DEFAULT_MAX_LOGS_PER_SPAN`] per span; `tracing` spans become child
    /// spans inside a trace, never roots.
    pub fn new(tracer: T) -> Self {
        OpenTracingLayer {
            tracer,
            id: next_layer_id(),
            max_logs: DEFAULT_MAX_LOGS_PER_SPAN as u64,
            spans: true,
            root_spans: false,
            span_filter: None,
            dropped: Arc::default(),
        }
    }

    /// Keeps at most `max` logs per span; later events are dropped (and
    /// counted, see [`dropped_logs`](Self::dropped_logs)), and the span gets
    /// a [`LOGS_DROPPED_TAG`] tag with how many it lost. The cap holds for
    /// every span the layer logs on, whoever started it, so a loop cannot
    /// grow a span without bound. `usize::MAX` lifts it.
    ///
    /// The cap is checked without holding the span while an event's fields
    /// are formatted (a field's `Debug` may log an event itself), so
    /// threads logging on one span at the same moment, or an event logged
    /// while another is being formatted, can each pass it by one log.
    pub fn with_max_logs_per_span(mut self, max: usize) -> Self {
        self.max_logs = u64::try_from(max).unwrap_or(u64::MAX);
        self
    }

    /// Whether `tracing` spans become OpenTracing spans (default `true`).
    /// With `false`, only events are bridged: they land on the enclosing
    /// OpenTracing span.
    pub fn with_spans(mut self, spans: bool) -> Self {
        self.spans = spans;
        self
    }

    /// Whether a `tracing` span created outside any trace starts a new
    /// trace (a root span), as the tracer's sampler decides (default
    /// `false`: outside a trace, `tracing` spans are left alone).
    pub fn with_root_spans(mut self, root_spans: bool) -> Self {
        self.root_spans = root_spans;
        self
    }

    /// Only `tracing` spans this filter enables become OpenTracing spans;
    /// events are not affected by it. Use it to keep the spans of libraries
    /// that instrument heavily out of traces while still logging their
    /// warnings; use a per-layer filter (`.with_filter(..)`) to filter
    /// events and spans alike.
    ///
    /// ```
    /// # use opentracing_api::MockTracer;
    /// use opentracing_tracing_bridge::OpenTracingLayer;
    /// use tracing::Level;
    /// use tracing_subscriber::filter::Targets;
    ///
    /// // Spans from the application only, none from `h2`, `hyper` or `sqlx`.
    /// let layer = OpenTracingLayer::new(MockTracer::new())
    ///     .with_span_filter(Targets::new().with_target("my_app", Level::TRACE));
    /// ```
    pub fn with_span_filter(mut self, filter: Targets) -> Self {
        self.span_filter = Some(filter);
        self
    }

    /// The logs dropped so far because a span had reached its cap, over all
    /// spans.
    pub fn dropped_logs(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// A handle on the [`dropped_logs`](Self::dropped_logs) count that
    /// outlives the move of the layer into a subscriber.
    pub fn dropped_logs_counter(&self) -> DroppedLogs {
        DroppedLogs(self.dropped.clone())
    }

    /// The tracer.
    pub fn tracer(&self) -> &T {
        &self.tracer
    }
}

impl<T: Clone> Clone for OpenTracingLayer<T> {
    /// Another layer with the same tracer and settings, sharing the dropped
    /// log count.
    fn clone(&self) -> Self {
        OpenTracingLayer {
            tracer: self.tracer.clone(),
            id: next_layer_id(),
            max_logs: self.max_logs,
            spans: self.spans,
            root_spans: self.root_spans,
            span_filter: self.span_filter.clone(),
            dropped: self.dropped.clone(),
        }
    }
}

impl<T> fmt::Debug for OpenTracingLayer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenTracingLayer")
            .field("max_logs_per_span", &self.max_logs)
            .field("spans", &self.spans)
            .field("root_spans", &self.root_spans)
            .field("span_filter", &self.span_filter)
            .field("dropped_logs", &self.dropped.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// What the layer keeps in the extensions of a `tracing` span it started an
/// OpenTracing span for.
#[derive(Clone, Debug)]
pub(crate) struct BridgedSpan(pub(crate) SharedSpan);

/// The OpenTracing span of a `tracing` span or its nearest ancestor that
/// has one.
pub(crate) fn bridged_in_scope<'a, R: LookupSpan<'a>>(
    span: &SpanRef<'a, R>,
) -> Option<BridgedSpan> {
    span.scope()
        .find_map(|s| s.extensions().get::<BridgedSpan>().cloned())
}

/// A `tracing` span entered on this thread, whose OpenTracing span is
/// current until it is exited.
struct EnteredSpan {
    layer: u64,
    id: Id,
    _entered: Entered,
}

thread_local! {
    /// The bridged spans entered on this thread, innermost last. `tracing`
    /// enters and exits a span on the same thread (its guards are not
    /// `Send`, and `Instrumented` futures enter and exit within each poll),
    /// so a thread-local stack follows it.
    static ENTERED: RefCell<Vec<EnteredSpan>> = const { RefCell::new(Vec::new()) };
}

// `ENTERED` is borrowed only inside this module and never while user code
// runs: removed entries are dropped after the borrow ends.

/// The OpenTracing span a new `tracing` span is a child of.
fn parent_of<S>(attrs: &Attributes<'_>, ctx: &Context<'_, S>) -> Option<SharedSpan>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    if attrs.is_root() {
        return None;
    }
    if let Some(parent) = attrs.parent().and_then(|id| ctx.span(id)) {
        if let Some(b) = bridged_in_scope(&parent) {
            return Some(b.0);
        }
    }
    current_span()
}

/// The span an event is logged on: its explicit parent's, or the current
/// span.
fn target_of<S>(event: &Event<'_>, ctx: &Context<'_, S>) -> Option<SharedSpan>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    if event.is_root() {
        return None;
    }
    if let Some(parent) = event.parent().and_then(|id| ctx.span(id)) {
        if let Some(b) = bridged_in_scope(&parent) {
            return Some(b.0);
        }
    }
    current_span()
}

impl<T: Tracer + 'static> OpenTracingLayer<T> {
    /// Whether `span` records and may take one more log. A log over the
    /// cap is counted, here and on the span's [`LOGS_DROPPED_TAG`]. Two
    /// threads logging on one span at once may pass the cap by a log each:
    /// the bound holds, without a lock of its own.
    fn admit(&self, span: &SharedSpan) -> bool {
        let Some(logs) = span.log_count() else {
            // Unrecorded spans cost this check and nothing more.
            return false;
        };
        if (logs as u64) < self.max_logs {
            return true;
        }
        self.dropped.fetch_add(1, Ordering::Relaxed);
        span.with(|s| {
            let dropped = s
                .tag(LOGS_DROPPED_TAG)
                .and_then(opentracing_api::TagValue::as_i64)
                .unwrap_or(0);
            s.set_tag(LOGS_DROPPED_TAG, dropped.saturating_add(1));
        });
        false
    }
}

impl<S, T> Layer<S> for OpenTracingLayer<T>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    T: Tracer + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if !self.spans {
            return;
        }
        let meta = attrs.metadata();
        if let Some(filter) = &self.span_filter {
            if !filter.would_enable(meta.target(), meta.level()) {
                return;
            }
        }
        let builder = match parent_of(attrs, &ctx) {
            // Nothing under a span that is not recorded would be: its
            // context, current already, is what outgoing calls carry.
            Some(parent) if !parent.is_recording() => return,
            Some(parent) => self.tracer.span(meta.name()).child_of(&parent.context()),
            None if self.root_spans => self.tracer.span(meta.name()).ignore_current_span(),
            None => return,
        };
        let mut builder = Some(builder);
        attrs.record(&mut FieldVisitor::tags(|key, value| {
            builder = builder.take().map(|b| b.tag(key, value));
        }));
        let (Some(builder), Some(span)) = (builder, ctx.span(id)) else {
            return;
        };
        span.extensions_mut()
            .insert(BridgedSpan(builder.start_shared()));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(state) = ctx
            .span(id)
            .and_then(|s| s.extensions().get::<BridgedSpan>().cloned())
        else {
            return;
        };
        let span = &state.0;
        if span.is_recording() {
            values.record(&mut FieldVisitor::tags(|key, value| {
                span.set_tag(key, value);
            }));
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(BridgedSpan(span)) = ctx
            .span(id)
            .and_then(|s| s.extensions().get::<BridgedSpan>().cloned())
        else {
            return;
        };
        let entered = EnteredSpan {
            layer: self.id,
            id: id.clone(),
            _entered: span.enter(),
        };
        let _ = ENTERED.try_with(|e| e.borrow_mut().push(entered));
    }

    fn on_exit(&self, id: &Id, _ctx: Context<'_, S>) {
        let removed = ENTERED
            .try_with(|e| {
                let mut e = e.borrow_mut();
                let at = e.iter().rposition(|e| e.layer == self.id && e.id == *id)?;
                Some(e.remove(at))
            })
            .ok()
            .flatten();
        // Dropped here, outside the borrow: this leaves the span.
        drop(removed);
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        if let Some(BridgedSpan(span)) = ctx
            .span(&id)
            .and_then(|s| s.extensions_mut().remove::<BridgedSpan>())
        {
            span.finish();
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(span) = target_of(event, &ctx) else {
            return;
        };
        if !self.admit(&span) {
            return;
        }
        let meta = event.metadata();
        let mut fields: Vec<Field> = Vec::with_capacity(meta.fields().len() + 2);
        event.record(&mut FieldVisitor::event(EVENT_FIELD, |key, value| {
            let field = Field { key, value };
            // The message first, as an `event` field conventionally is.
            if field.key == EVENT_FIELD {
                fields.insert(0, field);
            } else {
                fields.push(field);
            }
        }));
        fields.push(Field::new(LEVEL_FIELD, meta.level().as_str()));
        fields.push(Field::new(TARGET_FIELD, meta.target()));
        span.log(fields);
        if *meta.level() == Level::ERROR {
            span.set_tag(tags::ERROR, true);
        }
    }
}
