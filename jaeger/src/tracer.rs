//! The Jaeger tracer: ids, sampling, recording into the reporter.

use std::borrow::Cow;
use std::sync::{mpsc as std_mpsc, Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use opentracing_api::{
    tags, Baggage, BaggageLimits, ExtractPolicy, Extractor, Format, Injector, ReferenceKind, Span,
    SpanContext, SpanId, SpanRecorder, StartSpanOptions, Tag, TagValue, TraceFlags, TraceId,
    Tracer,
};
use opentracing_api::{ExtractError, InjectError, Propagator};
use tokio::sync::mpsc;

use crate::ids::random_u64;
use crate::metrics::Metrics;
use crate::reporter::{Command, Reporter};
use crate::sampler::{RateLimiter, Sampler};

/// The tag a forced debug trace carries, with the caller's debug id.
pub const DEBUG_ID_TAG: &str = "jaeger-debug-id";

/// Baggage restrictions: limits always, and optionally an allowlist of keys.
#[derive(Clone, Debug, Default)]
pub struct BaggageRestrictions {
    /// Count and size limits.
    pub limits: BaggageLimits,
    /// When set, only these keys are kept.
    pub allowed_keys: Option<Vec<String>>,
}

pub(crate) struct Worker {
    pub(crate) commands: mpsc::UnboundedSender<Command>,
    pub(crate) thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

pub(crate) struct Inner {
    pub(crate) service_name: String,
    pub(crate) sampler: Arc<dyn Sampler>,
    pub(crate) propagator: GuardedPropagator,
    pub(crate) reporter: Arc<Reporter>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) trace_id_128bit: bool,
    pub(crate) debug_throttle: RateLimiter,
    pub(crate) baggage: BaggageRestrictions,
    pub(crate) worker: Option<Worker>,
}

impl BaggageRestrictions {
    pub(crate) fn allows(&self, key: &str) -> bool {
        self.allowed_keys
            .as_ref()
            .is_none_or(|keys| keys.iter().any(|a| a == key))
    }

    /// The items of `baggage` these restrictions keep; each dropped item
    /// is counted.
    fn restrict(&self, baggage: &Baggage, metrics: &Metrics) -> Baggage {
        let mut out = Baggage::new();
        for (k, v) in baggage.iter() {
            if !self.allows(k)
                || out
                    .insert_with_limits(k.to_owned(), v.to_owned(), &self.limits)
                    .is_err()
            {
                Metrics::inc(&metrics.baggage_dropped);
            }
        }
        out
    }
}

/// The tracer's propagator: the configured formats, with the extraction
/// policy, the baggage restrictions and the decode-error counter applied
/// to whatever comes in, by whichever path.
#[derive(Debug)]
pub(crate) struct GuardedPropagator {
    pub(crate) formats: Box<dyn Propagator>,
    pub(crate) policy: ExtractPolicy,
    pub(crate) baggage: BaggageRestrictions,
    pub(crate) metrics: Arc<Metrics>,
}

impl GuardedPropagator {
    /// Applies the policy and the restrictions; counts and logs (at debug
    /// level) a malformed context, which the caller then ignores.
    fn guard(
        &self,
        extracted: Result<Option<SpanContext>, ExtractError>,
    ) -> Result<Option<SpanContext>, ExtractError> {
        // What the propagators dropped for their limits while reading the
        // carrier (see `extract`) counts like what the restrictions drop.
        let dropped = opentracing_api::take_dropped_baggage();
        if dropped > 0 {
            Metrics::add(&self.metrics.baggage_dropped, dropped as usize);
        }
        match extracted {
            Ok(cx) => {
                let mut cx = self.policy.apply(cx);
                if let Some(cx) = cx.as_mut().filter(|cx| !cx.baggage().is_empty()) {
                    let kept = self.baggage.restrict(cx.baggage(), &self.metrics);
                    *cx.baggage_mut() = kept;
                }
                Ok(cx)
            }
            Err(e @ ExtractError::UnsupportedFormat { .. }) => Err(e),
            Err(e) => {
                Metrics::inc(&self.metrics.span_context_decoding_errors);
                log::debug!("ignoring a malformed incoming span context: {e}");
                Err(e)
            }
        }
    }
}

impl Propagator for GuardedPropagator {
    fn inject(&self, cx: &SpanContext, format: Format, carrier: &mut dyn Injector) {
        self.formats.inject(cx, format, carrier);
    }

    fn extract(
        &self,
        format: Format,
        carrier: &dyn Extractor,
    ) -> Result<Option<SpanContext>, ExtractError> {
        // A count left by extractions that did not go through a tracer.
        let _ = opentracing_api::take_dropped_baggage();
        self.guard(self.formats.extract(format, carrier))
    }

    fn inject_binary(&self, cx: &SpanContext, out: &mut Vec<u8>) -> Result<(), InjectError> {
        self.formats.inject_binary(cx, out)
    }

    fn extract_binary(&self, data: &[u8]) -> Result<Option<SpanContext>, ExtractError> {
        let _ = opentracing_api::take_dropped_baggage();
        self.guard(self.formats.extract_binary(data))
    }

    fn name(&self) -> &'static str {
        self.formats.name()
    }

    fn extracts_extras(&self) -> bool {
        self.formats.extracts_extras()
    }

    fn fields(&self) -> &'static [&'static str] {
        self.formats.fields()
    }

    fn is_field(&self, name: &str) -> bool {
        self.formats.is_field(name)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Ask the worker to send what is queued; do not wait in a destructor
        // (it may run on an async runtime). `close` waits.
        if let Some(w) = &self.worker {
            let (tx, _rx) = std_mpsc::channel();
            let _ = w.commands.send(Command::Close(tx));
        }
    }
}

/// A Jaeger-compatible tracer.
///
/// Cheap to clone (one `Arc`). Build it with [`JaegerTracer::builder`] or
/// from the standard environment variables with
/// [`JaegerTracer::from_env`](crate::JaegerTracer::from_env). Sampled spans
/// go, on finish, into a bounded queue that a background thread drains,
/// encodes and sends; unsampled spans record nothing and allocate nothing.
///
/// ```
/// use opentracing_api::prelude::*;
/// use opentracing_jaeger::{InMemoryTransport, JaegerTracer};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let spans = InMemoryTransport::new();
/// let tracer = JaegerTracer::builder("frontend").transport(spans.clone()).build()?;
/// tracer.span("HTTP GET /dispatch").start().finish();
/// tracer.flush(std::time::Duration::from_secs(5))?;
/// assert_eq!(spans.spans()[0].operation_name, "HTTP GET /dispatch");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct JaegerTracer {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for JaegerTracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JaegerTracer")
            .field("service_name", &self.inner.service_name)
            .field("sampler", &self.inner.sampler)
            .field("propagator", &self.inner.propagator)
            .finish_non_exhaustive()
    }
}

/// `flush` or `close` did not complete in time, or the worker is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FlushError {
    /// The deadline passed first.
    #[error("the reporter did not finish within the deadline")]
    Timeout,
    /// The background worker has stopped (the tracer was closed).
    #[error("the reporter is closed")]
    Closed,
}

impl JaegerTracer {
    /// The service name.
    pub fn service_name(&self) -> &str {
        &self.inner.service_name
    }

    /// The tracer's self-metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Spans waiting in the queue.
    pub fn queue_len(&self) -> usize {
        self.inner.reporter.queue_len()
    }

    fn command(
        &self,
        make: impl FnOnce(std_mpsc::Sender<()>) -> Command,
        timeout: Duration,
    ) -> Result<(), FlushError> {
        let Some(w) = &self.inner.worker else {
            return Err(FlushError::Closed);
        };
        let (tx, rx) = std_mpsc::channel();
        w.commands.send(make(tx)).map_err(|_| FlushError::Closed)?;
        rx.recv_timeout(timeout).map_err(|e| match e {
            std_mpsc::RecvTimeoutError::Timeout => FlushError::Timeout,
            std_mpsc::RecvTimeoutError::Disconnected => FlushError::Closed,
        })
    }

    /// Sends every span finished so far, waiting at most `timeout`.
    ///
    /// Blocks the calling thread; from async code call it through
    /// `tokio::task::spawn_blocking`.
    pub fn flush(&self, timeout: Duration) -> Result<(), FlushError> {
        self.command(Command::Flush, timeout)
    }

    /// Sends every span finished so far and stops the background worker,
    /// waiting at most `timeout`. Spans finished afterwards, or racing
    /// with the close, are dropped and counted in
    /// [`MetricsSnapshot::spans_dropped_closed`](crate::MetricsSnapshot::spans_dropped_closed)
    /// (`jaeger_tracer_reporter_spans_total{result="dropped",reason="closed"}`).
    pub fn close(&self, timeout: Duration) -> Result<(), FlushError> {
        // `None`: no deadline (`Duration::MAX` means "wait for it").
        let deadline = std::time::Instant::now().checked_add(timeout);
        let result = self.command(Command::Close, timeout);
        if result.is_ok() {
            if let Some(w) = &self.inner.worker {
                if let Some(t) = w
                    .thread
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take()
                {
                    // The worker has answered; its thread only has its
                    // runtime to drop. Joined within the time left, or left
                    // to end on its own: `close` never waits past `timeout`.
                    while !t.is_finished() && deadline.is_none_or(|d| std::time::Instant::now() < d)
                    {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    if t.is_finished() {
                        let _ = t.join();
                    }
                }
            }
        }
        result
    }

    fn new_trace_id(&self) -> TraceId {
        if self.inner.trace_id_128bit {
            TraceId::from_parts(random_u64(), random_u64())
        } else {
            TraceId::from_u64(random_u64())
        }
    }
}

impl JaegerTracer {
    /// Starts a span: ids and baggage from the references, the sampling
    /// decision, then a recorded or an unrecorded span.
    fn start<F: FnOnce() -> Cow<'static, str>>(
        &self,
        mut name: LazyName<F>,
        options: &mut StartSpanOptions,
    ) -> Span {
        let refs = &options.references;
        let parent = refs
            .iter()
            .find(|r| r.kind == ReferenceKind::ChildOf && r.context.is_valid())
            .or_else(|| refs.iter().find(|r| r.context.is_valid()))
            .map(|r| &r.context);
        let baggage = merged_baggage(refs);
        let priority = options
            .tags
            .iter()
            .find(|t| t.key == tags::SAMPLING_PRIORITY)
            .and_then(|t| t.value.as_i64());
        let span_id = SpanId::from_u64(random_u64());
        let mut extra_tags: [Option<Tag>; 2] = [None, None];
        let (trace_id, parent_id, flags) = if let Some(p) = parent {
            let flags = self.child_flags(p, priority, &mut name);
            (p.trace_id(), p.span_id(), flags)
        } else {
            let trace_id = self.new_trace_id();
            let flags = self.root_flags(trace_id, refs, priority, &mut name, &mut extra_tags);
            (trace_id, SpanId::INVALID, flags)
        };
        let trace_state = parent.and_then(SpanContext::trace_state_arc).cloned();
        let cx = SpanContext::from_parts(trace_id, span_id, parent_id, flags, baggage, trace_state);
        if flags.is_sampled() {
            self.recorded(cx, name, options, extra_tags)
        } else {
            self.unrecorded(cx)
        }
    }

    /// The flags of a span continuing `parent`'s trace: an explicit
    /// `sampling.priority`, else the caller's decision, else the sampler's.
    fn child_flags<F: FnOnce() -> Cow<'static, str>>(
        &self,
        parent: &SpanContext,
        priority: Option<i64>,
        name: &mut LazyName<F>,
    ) -> TraceFlags {
        let sampler = &*self.inner.sampler;
        match priority {
            Some(p0) if p0 <= 0 => parent.flags().with_sampled(false),
            Some(_) => parent.flags().with_sampled(true).with_debug(true),
            None if parent.is_sampling_decided() => parent.flags(),
            None => {
                let d = sampler.sample(parent.trace_id(), name.for_sampler(sampler));
                TraceFlags::NONE.with_sampled(d.sampled)
            }
        }
    }

    /// The flags of a new trace: a debug id (within the throttle), an
    /// explicit `sampling.priority`, a decision an extraction carried, or
    /// the sampler's (which tags the span with its type and parameter).
    fn root_flags<F: FnOnce() -> Cow<'static, str>>(
        &self,
        trace_id: TraceId,
        refs: &[opentracing_api::Reference],
        priority: Option<i64>,
        name: &mut LazyName<F>,
        extra_tags: &mut [Option<Tag>; 2],
    ) -> TraceFlags {
        let inner = &*self.inner;
        let m = &inner.metrics;
        let debug_id = refs.iter().find_map(|r| r.context.debug_id());
        let upstream = refs
            .iter()
            .find(|r| r.context.is_sampling_decided())
            .map(|r| r.context.flags());
        let flags = if let Some(id) = debug_id.filter(|_| inner.debug_throttle.check_credit()) {
            extra_tags[0] = Some(Tag::new(DEBUG_ID_TAG, id.to_owned()));
            TraceFlags::SAMPLED.with_debug(true)
        } else {
            if debug_id.is_some() {
                Metrics::inc(&m.throttled_debug_spans);
            }
            match (priority, upstream) {
                (Some(p0), _) if p0 <= 0 => TraceFlags::NONE,
                (Some(_), _) => TraceFlags::SAMPLED.with_debug(true),
                (None, Some(f)) => f,
                (None, None) => {
                    let sampler = &*inner.sampler;
                    let d = sampler.sample(trace_id, name.for_sampler(sampler));
                    if d.sampled {
                        extra_tags[0] = Some(Tag::new("sampler.type", d.sampler_type));
                        extra_tags[1] = Some(Tag::new("sampler.param", TagValue::from(d.param)));
                    }
                    TraceFlags::NONE.with_sampled(d.sampled)
                }
            }
        };
        Metrics::inc(if flags.is_sampled() {
            &m.traces_started_sampled
        } else {
            &m.traces_started_unsampled
        });
        flags
    }

    /// A span that records nothing but carries its context on.
    fn unrecorded(&self, cx: SpanContext) -> Span {
        let inner = &*self.inner;
        Metrics::inc(&inner.metrics.spans_started_unsampled);
        // Baggage restrictions must hold whether or not the trace is
        // sampled; the handle costs a reference count, so only spans of a
        // tracer that has restrictions beyond the defaults carry it.
        if inner.baggage.allowed_keys.is_some() || inner.baggage.limits != BaggageLimits::DEFAULT {
            let policy: Arc<dyn SpanRecorder> = inner.reporter.clone();
            return Span::unrecorded_with_policy(cx, policy);
        }
        Span::unrecorded(cx)
    }

    /// A span recorded into the reporter when it finishes.
    fn recorded<F: FnOnce() -> Cow<'static, str>>(
        &self,
        cx: SpanContext,
        name: LazyName<F>,
        options: &mut StartSpanOptions,
        mut extra_tags: [Option<Tag>; 2],
    ) -> Span {
        let inner = &*self.inner;
        Metrics::inc(&inner.metrics.spans_started_sampled);
        // Drained in place: moving the inline vectors out would copy a few
        // hundred bytes per span.
        let references = options
            .references
            .drain(..)
            .filter(|r| r.context.is_valid());
        let tags = options
            .tags
            .drain(..)
            .chain(extra_tags.iter_mut().filter_map(Option::take));
        let recorder: Arc<dyn SpanRecorder> = inner.reporter.clone();
        Span::recorded(
            cx,
            name.into_name(),
            options.start_time.unwrap_or_else(SystemTime::now),
            references,
            tags,
            recorder,
        )
    }
}

/// Baggage from every reference (in practice: the parent's, or the
/// baggage-only context an extraction produced).
fn merged_baggage(refs: &[opentracing_api::Reference]) -> Baggage {
    match refs {
        [] => Baggage::new(),
        [only] => only.context.baggage().clone(),
        _ => {
            let mut b = Baggage::new();
            for r in refs {
                b.merge_missing(r.context.baggage());
            }
            b
        }
    }
}

/// A span's operation name, built when first needed.
struct LazyName<F> {
    make: Option<F>,
    name: Option<Cow<'static, str>>,
}

impl<F: FnOnce() -> Cow<'static, str>> LazyName<F> {
    fn new(make: F) -> Self {
        LazyName {
            make: Some(make),
            name: None,
        }
    }

    /// The name for `sampler`: built only if the sampler reads it.
    fn for_sampler(&mut self, sampler: &dyn Sampler) -> &str {
        if sampler.uses_operation_name() {
            self.get()
        } else {
            ""
        }
    }

    fn get(&mut self) -> &str {
        if self.name.is_none() {
            self.name = self.make.take().map(|make| make());
        }
        self.name.as_deref().unwrap_or_default()
    }

    fn into_name(mut self) -> Cow<'static, str> {
        self.get();
        self.name.unwrap_or_default()
    }
}

impl Tracer for JaegerTracer {
    fn start_span_with_options(
        &self,
        operation_name: Cow<'static, str>,
        options: &mut StartSpanOptions,
    ) -> Span {
        self.start(LazyName::new(move || operation_name), options)
    }

    fn start_span_with_lazy_name(
        &self,
        operation_name: &mut dyn FnMut() -> Cow<'static, str>,
        options: &mut StartSpanOptions,
    ) -> Span {
        self.start(LazyName::new(operation_name), options)
    }

    /// The configured propagators, with the extraction policy, the baggage
    /// restrictions and the decode-error counter applied: every path that
    /// extracts (`extract`, `extract_binary`, this propagator used
    /// directly) goes through them.
    fn propagator(&self) -> &dyn Propagator {
        &self.inner.propagator
    }
}

/// `TagValue` for the process tag `jaeger.version`.
pub(crate) fn client_version() -> TagValue {
    TagValue::from(concat!("Rust-", env!("CARGO_PKG_VERSION")))
}
