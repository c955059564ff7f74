//! Spans: starting, tagging, logging, baggage, finishing exactly once.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use crate::tag::{log_fields, tags};
use crate::{BaggageError, BaggageLimits, Field, SpanContext, Tag, TagValue};

/// How a span relates to another one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReferenceKind {
    /// The parent depends on the child's result (an RPC and its server side).
    ChildOf,
    /// The parent does not wait for the child (a message and its consumer).
    FollowsFrom,
}

/// A reference from a span to another span's context.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// The kind of relation.
    pub kind: ReferenceKind,
    /// The referenced context.
    pub context: SpanContext,
}

impl Reference {
    /// A `ChildOf` reference.
    pub fn child_of(context: SpanContext) -> Self {
        Reference {
            kind: ReferenceKind::ChildOf,
            context,
        }
    }

    /// A `FollowsFrom` reference.
    pub fn follows_from(context: SpanContext) -> Self {
        Reference {
            kind: ReferenceKind::FollowsFrom,
            context,
        }
    }
}

/// A timestamped structured log of a span.
#[derive(Clone, Debug, PartialEq)]
pub struct LogRecord {
    /// When the event happened.
    pub timestamp: SystemTime,
    /// Its fields.
    pub fields: Vec<Field>,
}

/// A finished span as handed to a [`SpanRecorder`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct FinishedSpan {
    /// The span's context (final flags and baggage).
    pub context: SpanContext,
    /// The operation name.
    pub operation_name: Cow<'static, str>,
    /// References to other spans, in the order given at start.
    pub references: Vec<Reference>,
    /// Start time.
    pub start_time: SystemTime,
    /// Finish time.
    pub finish_time: SystemTime,
    /// Tags; each key at most once (a later `set_tag` replaces).
    pub tags: Vec<Tag>,
    /// Logs, in the order they were made.
    pub logs: Vec<LogRecord>,
}

impl FinishedSpan {
    /// The value of a tag.
    pub fn tag(&self, key: &str) -> Option<&TagValue> {
        self.tags.iter().find(|t| t.key == key).map(|t| &t.value)
    }

    /// The span id of the first `ChildOf` reference, else of the first
    /// reference, as Jaeger chooses a parent.
    pub fn parent_span_id(&self) -> Option<crate::SpanId> {
        self.references
            .iter()
            .find(|r| r.kind == ReferenceKind::ChildOf)
            .or_else(|| self.references.first())
            .map(|r| r.context.span_id())
    }

    /// The duration (zero if the clock went backwards).
    pub fn duration(&self) -> std::time::Duration {
        self.finish_time
            .duration_since(self.start_time)
            .unwrap_or_default()
    }
}

/// Where a tracer's recorded spans go when they finish.
///
/// Implemented by tracers (the Jaeger tracer's reporter, the mock tracer).
/// `record` is called exactly once per recorded span, from the thread that
/// finished it, so it must not block.
///
/// The span arrives boxed: it was built in that box when it started, so
/// handing it over (to a queue, say) moves a pointer, not the span.
pub trait SpanRecorder: Send + Sync {
    /// Takes a finished span.
    fn record(&self, span: Box<FinishedSpan>);

    /// A box from a span already delivered, for the next span to reuse
    /// (its vectors keep their capacity). Recorders that hand spans to
    /// another thread should offer them back: allocating on one thread and
    /// freeing on another makes both contend on the allocator's locks.
    /// The default is none: new spans allocate.
    #[doc(hidden)]
    fn recycled(&self) -> Option<Box<FinishedSpan>> {
        None
    }

    /// Whether a recorded span may set this baggage item (a tracer's key
    /// allowlist). Called by [`Span::set_baggage_item`] before the limits
    /// are checked; the default allows every key.
    fn allows_baggage(&self, key: &str) -> bool {
        let _ = key;
        true
    }

    /// A recorded span refused a baggage item (key not allowed, or over a
    /// limit): for the tracer's metrics. The default does nothing.
    fn baggage_refused(&self) {}

    /// The limits [`Span::set_baggage_item`] applies on the spans of this
    /// recorder (recorded ones, and unrecorded ones that carry it as their
    /// baggage policy, [`Span::unrecorded_with_policy`]). Default
    /// [`BaggageLimits::DEFAULT`].
    fn baggage_limits(&self) -> BaggageLimits {
        BaggageLimits::DEFAULT
    }
}

// Kept small: a `Span` is moved a few times on every request, and its size
// decides whether those moves are a few registers or a `memcpy` call. The
// baggage limits are the recorder's to say, not stored per span.
struct Recording {
    /// Filled in as the span runs; handed to the recorder as it is.
    data: Box<FinishedSpan>,
    recorder: Arc<dyn SpanRecorder>,
}

/// A span: one named, timed operation of a trace.
///
/// A `Span` is owned; it finishes exactly once, either when
/// [`finish`](Self::finish) is called or when it is dropped. Spans that are
/// not recorded (the no-op tracer's, a sampler's unsampled ones) carry only
/// their context, hold no heap memory, and ignore tags and logs. Use
/// [`into_shared`](Self::into_shared) to hand a span to several owners, or
/// to make it the current span.
///
/// ```
/// use opentracing_api::{tags, MockTracer, Tracer, TracerExt};
/// let tracer = MockTracer::new();
/// let mut span = tracer.span("get_customer").start();
/// span.set_tag(tags::SPAN_KIND, tags::SPAN_KIND_CLIENT);
/// span.log([("event", "cache miss")]);
/// span.finish();
/// assert_eq!(tracer.finished_spans()[0].operation_name, "get_customer");
/// ```
pub struct Span {
    context: SpanContext,
    recording: Option<Recording>,
    /// For unrecorded spans of a tracer with baggage restrictions: where
    /// `set_baggage_item` checks them.
    policy: Option<Arc<dyn SpanRecorder>>,
}

impl Span {
    /// A span that records nothing and only carries `context` (for tracers
    /// that decided not to sample). Does not allocate.
    #[inline]
    pub const fn unrecorded(context: SpanContext) -> Self {
        Span {
            context,
            recording: None,
            policy: None,
        }
    }

    /// A span that records nothing but applies `policy`'s baggage
    /// restrictions (allowlist, limits, refusal counting) in
    /// [`set_baggage_item`](Self::set_baggage_item). Does not allocate.
    pub fn unrecorded_with_policy(context: SpanContext, policy: Arc<dyn SpanRecorder>) -> Self {
        Span {
            context,
            recording: None,
            policy: Some(policy),
        }
    }

    /// The no-op span: empty context, records nothing.
    pub const fn noop() -> Self {
        Span::unrecorded(SpanContext::empty())
    }

    /// A recorded span, for tracer implementations: on finish, `recorder`
    /// receives it as a [`FinishedSpan`].
    pub fn recorded(
        context: SpanContext,
        operation_name: Cow<'static, str>,
        start_time: SystemTime,
        references: impl IntoIterator<Item = Reference>,
        tags: impl IntoIterator<Item = Tag>,
        recorder: Arc<dyn SpanRecorder>,
    ) -> Self {
        let tags = tags.into_iter();
        let data = match recorder.recycled() {
            Some(mut data) => {
                data.operation_name = operation_name;
                data.references.clear();
                data.references.extend(references);
                data.start_time = start_time;
                data.finish_time = start_time;
                data.tags.clear();
                data.logs.clear();
                data
            }
            None => Box::new(FinishedSpan {
                context: SpanContext::empty(),
                operation_name,
                references: references.into_iter().collect(),
                start_time,
                finish_time: start_time,
                // Room for the usual handful without growing.
                tags: Vec::with_capacity(tags.size_hint().0.max(8)),
                logs: Vec::new(),
            }),
        };
        let mut span = Span {
            recording: Some(Recording { data, recorder }),
            context,
            policy: None,
        };
        for t in tags {
            span.set_tag(t.key, t.value);
        }
        span
    }

    /// The span's context.
    #[inline]
    pub fn context(&self) -> &SpanContext {
        &self.context
    }

    /// Whether tags, logs and the span itself are recorded.
    #[inline]
    pub fn is_recording(&self) -> bool {
        self.recording.is_some()
    }

    /// How many logs the span holds, or `None` when it records nothing
    /// (instrumentation that caps logs per span reads it).
    #[inline]
    pub fn log_count(&self) -> Option<usize> {
        self.recording.as_ref().map(|r| r.data.logs.len())
    }

    /// The value of one of the span's tags, if recorded.
    pub fn tag(&self, key: &str) -> Option<&TagValue> {
        let r = self.recording.as_ref()?;
        r.data.tags.iter().find(|t| t.key == key).map(|t| &t.value)
    }

    /// The operation name, if recorded.
    pub fn operation_name(&self) -> Option<&str> {
        self.recording.as_ref().map(|r| &*r.data.operation_name)
    }

    /// Renames the operation (for example once the route is known).
    pub fn set_operation_name(&mut self, name: impl Into<Cow<'static, str>>) {
        if let Some(r) = &mut self.recording {
            r.data.operation_name = name.into();
        }
    }

    /// Sets a tag, replacing an earlier value for the same key.
    ///
    /// `sampling.priority` is interpreted as the OpenTracing conventions
    /// say: 0 clears the sampled flag, a positive value sets sampled and
    /// debug. It can only upgrade a span that is being recorded; set it in
    /// the [`SpanBuilder`](crate::SpanBuilder) to influence the sampler.
    pub fn set_tag(&mut self, key: impl Into<Cow<'static, str>>, value: impl Into<TagValue>) {
        let Some(r) = &mut self.recording else {
            return;
        };
        let key = key.into();
        let value = value.into();
        if key == tags::SAMPLING_PRIORITY {
            if let Some(p) = value.as_i64() {
                let flags = self.context.flags();
                self.context.set_flags(if p > 0 {
                    flags.with_sampled(true).with_debug(true)
                } else {
                    flags.with_sampled(false)
                });
            }
        }
        if let Some(t) = r.data.tags.iter_mut().find(|t| same_key(&t.key, &key)) {
            t.value = value;
        } else {
            r.data.tags.push(Tag { key, value });
        }
    }

    /// Logs structured fields at the current time.
    ///
    /// ```
    /// # use opentracing_api::{MockTracer, Tag, Tracer, TracerExt};
    /// # let tracer = MockTracer::new();
    /// let mut span = tracer.span("op").start();
    /// span.log([("event", "retry")]);
    /// span.log([Tag::new("event", "timeout"), Tag::new("attempt", 2)]);
    /// ```
    pub fn log<I>(&mut self, fields: I)
    where
        I: IntoIterator,
        I::Item: Into<Field>,
    {
        if self.recording.is_some() {
            self.log_at(SystemTime::now(), fields);
        }
    }

    /// Logs structured fields with an explicit timestamp.
    pub fn log_at<I>(&mut self, timestamp: SystemTime, fields: I)
    where
        I: IntoIterator,
        I::Item: Into<Field>,
    {
        if let Some(r) = &mut self.recording {
            r.data.logs.push(LogRecord {
                timestamp,
                fields: fields.into_iter().map(Into::into).collect(),
            });
        }
    }

    /// Marks the span failed: `error=true`, and a log with `event=error`,
    /// `error.kind` (the error's type name) and `error.object` (its
    /// `Display` form).
    pub fn set_error<E: fmt::Display + ?Sized>(&mut self, err: &E) {
        if self.recording.is_none() {
            return;
        }
        self.set_tag(tags::ERROR, true);
        self.log([
            Tag::new(log_fields::EVENT, log_fields::EVENT_ERROR),
            Tag::new(log_fields::ERROR_KIND, std::any::type_name::<E>()),
            Tag::new(log_fields::ERROR_OBJECT, err.to_string()),
        ]);
    }

    /// Sets a baggage item that will travel with this span's context to its
    /// children and over the wire. Refused items leave the baggage as is.
    pub fn set_baggage_item(
        &mut self,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<(), BaggageError> {
        let key = key.into();
        let (recorder, limits) = match (&self.recording, &self.policy) {
            (Some(r), _) => (&r.recorder, r.recorder.baggage_limits()),
            (None, Some(p)) => (p, p.baggage_limits()),
            (None, None) => {
                return self.context.baggage_mut().insert_with_limits(
                    key,
                    value.into(),
                    &BaggageLimits::DEFAULT,
                );
            }
        };
        if !recorder.allows_baggage(&key) {
            recorder.baggage_refused();
            return Err(BaggageError::KeyNotAllowed);
        }
        let result = self
            .context
            .baggage_mut()
            .insert_with_limits(key, value.into(), &limits);
        if result.is_err() {
            recorder.baggage_refused();
        }
        result
    }

    /// One baggage item.
    pub fn baggage_item(&self, key: &str) -> Option<&str> {
        self.context.baggage_item(key)
    }

    /// Finishes the span now.
    pub fn finish(mut self) {
        self.finish_inner(None);
    }

    /// Finishes the span at the given time.
    pub fn finish_at(mut self, time: SystemTime) {
        self.finish_inner(Some(time));
    }

    /// Turns the span into a cheaply cloned handle shared by several owners.
    #[inline]
    pub fn into_shared(self) -> SharedSpan {
        SharedSpan::new(self)
    }

    #[inline]
    fn finish_inner(&mut self, time: Option<SystemTime>) {
        if self.recording.is_some() {
            self.record(time);
        }
    }

    #[inline(never)]
    fn record(&mut self, time: Option<SystemTime>) {
        if let Some((recorder, span)) = self.take_finished(time) {
            recorder.record(span);
        }
    }

    /// Ends the recording and returns what to hand to the recorder, so that
    /// a caller holding a lock can release it before calling out.
    fn take_finished(
        &mut self,
        time: Option<SystemTime>,
    ) -> Option<(Arc<dyn SpanRecorder>, Box<FinishedSpan>)> {
        let Recording {
            mut data, recorder, ..
        } = self.recording.take()?;
        data.context = self.context.clone();
        data.finish_time = time.unwrap_or_else(SystemTime::now);
        Some((recorder, data))
    }
}

/// `a == b`, rejecting most different keys without a `memcmp` call (a
/// span's tag keys often share a length: `span.kind`, `component`).
#[inline]
fn same_key(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len()
        && (std::ptr::eq(a, b) || (a.first() == b.first() && a.last() == b.last() && a == b))
}

impl Drop for Span {
    fn drop(&mut self) {
        self.finish_inner(None);
    }
}

impl fmt::Debug for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Span")
            .field("context", &self.context)
            .field("operation_name", &self.operation_name())
            .field("recording", &self.is_recording())
            .field("baggage_policy", &self.policy.is_some())
            .finish()
    }
}

/// A span shared by several owners: a middleware and a handler, the current
/// span and its future, a spawned task.
///
/// Cloning is a reference-count increment. The span finishes on the first
/// [`finish`](Self::finish), or when the last handle is dropped; calls after
/// that are ignored. A panic while the span is locked does not lose it.
///
/// The span's context is kept apart from the span itself, so that reading
/// it (which every child span start does, through the current span) never
/// waits for, or deadlocks with, code holding the span in
/// [`with`](Self::with).
#[derive(Clone)]
pub struct SharedSpan(pub(crate) Arc<SharedInner>);

pub(crate) struct SharedInner {
    span: Mutex<Span>,
    context: Mutex<SpanContext>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not lose the span: take it even if poisoned.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SharedSpan {
    fn new(span: Span) -> Self {
        let context = span.context.clone();
        SharedSpan(Arc::new(SharedInner {
            span: Mutex::new(span),
            context: Mutex::new(context),
        }))
    }

    /// Runs `f` with exclusive access to the span.
    ///
    /// Do not use this same `SharedSpan` (other than reading its
    /// [`context`](Self::context)) inside `f`: the span is locked.
    pub fn with<R>(&self, f: impl FnOnce(&mut Span) -> R) -> R {
        let mut span = lock(&self.0.span);
        let r = f(&mut span);
        self.sync_context(&span);
        r
    }

    fn sync_context(&self, span: &Span) {
        let mut cx = lock(&self.0.context);
        if *cx != span.context {
            *cx = span.context.clone();
        }
    }

    /// A copy of the span's context. ([`Span::context`] lends it: a span
    /// with one owner cannot change while it is borrowed, a shared one can,
    /// through another handle, so it hands out a snapshot.)
    #[inline]
    pub fn context(&self) -> SpanContext {
        lock(&self.0.context).clone()
    }

    /// Whether two handles share the same span.
    pub fn ptr_eq(&self, other: &SharedSpan) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Whether the span is recorded and not finished yet.
    #[inline]
    pub fn is_recording(&self) -> bool {
        lock(&self.0.span).is_recording()
    }

    /// See [`Span::log_count`].
    #[inline]
    pub fn log_count(&self) -> Option<usize> {
        lock(&self.0.span).log_count()
    }

    /// See [`Span::set_operation_name`].
    pub fn set_operation_name(&self, name: impl Into<Cow<'static, str>>) {
        lock(&self.0.span).set_operation_name(name);
    }

    /// See [`Span::set_tag`].
    pub fn set_tag(&self, key: impl Into<Cow<'static, str>>, value: impl Into<TagValue>) {
        let key = key.into();
        // Only `sampling.priority` can change the context: other tags need
        // no re-sync of the context copy.
        if key == tags::SAMPLING_PRIORITY {
            self.with(|s| s.set_tag(key, value));
        } else {
            lock(&self.0.span).set_tag(key, value);
        }
    }

    /// See [`Span::log`].
    pub fn log<I>(&self, fields: I)
    where
        I: IntoIterator,
        I::Item: Into<Field>,
    {
        lock(&self.0.span).log(fields);
    }

    /// See [`Span::set_error`].
    pub fn set_error<E: fmt::Display + ?Sized>(&self, err: &E) {
        lock(&self.0.span).set_error(err);
    }

    /// See [`Span::set_baggage_item`].
    pub fn set_baggage_item(
        &self,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<(), BaggageError> {
        self.with(|s| s.set_baggage_item(key, value))
    }

    /// One baggage item, copied for the same reason as
    /// [`context`](Self::context).
    pub fn baggage_item(&self, key: &str) -> Option<String> {
        lock(&self.0.context).baggage_item(key).map(str::to_owned)
    }

    /// Finishes the span now, unless it already finished.
    pub fn finish(&self) {
        self.finish_inner(None);
    }

    /// Finishes the span at `time`, unless it already finished.
    pub fn finish_at(&self, time: SystemTime) {
        self.finish_inner(Some(time));
    }

    fn finish_inner(&self, time: Option<SystemTime>) {
        // The recorder is called after the lock is released: it may start
        // spans or read the current context.
        let finished = lock(&self.0.span).take_finished(time);
        if let Some((recorder, span)) = finished {
            recorder.record(span);
        }
    }
}

impl From<Span> for SharedSpan {
    fn from(span: Span) -> Self {
        span.into_shared()
    }
}

impl fmt::Debug for SharedSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.span.try_lock() {
            Ok(span) => f.debug_tuple("SharedSpan").field(&*span).finish(),
            Err(_) => f.debug_tuple("SharedSpan").field(&"<locked>").finish(),
        }
    }
}

impl<K: Into<Cow<'static, str>>, V: Into<TagValue>> From<(K, V)> for Tag {
    fn from((k, v): (K, V)) -> Self {
        Tag::new(k, v)
    }
}
