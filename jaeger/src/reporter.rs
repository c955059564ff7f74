//! The finished-span pipeline: a bounded lock-free queue filled by request
//! threads, drained by one background task that batches, encodes and sends.

use std::future::Future;
use std::pin::Pin;
use std::sync::{mpsc as std_mpsc, Arc};
use std::task::Poll;
use std::time::Duration;

use crossbeam_queue::ArrayQueue;
use opentracing_api::{FinishedSpan, SpanRecorder};
use tokio::sync::{mpsc, Notify};

use crate::metrics::Metrics;
use crate::process::Process;
use crate::transport::{SendOutcome, Transport, TransportError};

/// Takes finished spans on request threads: never blocks, never takes a
/// lock; a full queue drops the span and counts it.
pub(crate) struct Reporter {
    queue: ArrayQueue<Box<FinishedSpan>>,
    /// Delivered spans, emptied, for new spans to reuse (see
    /// [`SpanRecorder::recycled`]).
    recycle: ArrayQueue<Box<FinishedSpan>>,
    batch_size: usize,
    notify: Notify,
    /// A wake-up is pending (so concurrent pushes past the batch size wake
    /// the worker once, and none is missed).
    notified: std::sync::atomic::AtomicBool,
    /// The worker has stopped: spans are dropped (and counted).
    closed: std::sync::atomic::AtomicBool,
    pub(crate) metrics: Arc<Metrics>,
    /// The tracer's baggage allowlist, applied to recorded spans' items.
    pub(crate) baggage: crate::tracer::BaggageRestrictions,
}

impl Reporter {
    /// No span is taken any more (closed, or the worker thread is gone):
    /// from now on spans are dropped and counted, and so are those still
    /// queued, rather than left for nobody.
    pub(crate) fn stop_taking_spans(&self) {
        // SeqCst, with the load in `record` after its push: either that
        // load sees `closed`, or this drain sees the pushed span (see
        // `record`). Nothing is left in the queue uncounted.
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        self.drop_queued();
    }

    /// Whether the reporter was closed, read after a push. Paired with the
    /// fence in `stop_taking_spans` (store `closed`, fence, drain): either
    /// this load sees `closed`, or that drain sees the pushed span. On x86
    /// the push's compare-exchange is already a full barrier, so the fence
    /// costs little.
    fn closed_after_push(&self) -> bool {
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        self.closed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Drops every queued span, counting it as dropped because the
    /// reporter is closed.
    fn drop_queued(&self) {
        while self.queue.pop().is_some() {
            Metrics::inc(&self.metrics.spans_dropped_closed);
        }
    }

    pub(crate) fn new(
        queue_size: usize,
        batch_size: usize,
        metrics: Arc<Metrics>,
        baggage: crate::tracer::BaggageRestrictions,
    ) -> Self {
        let queue_size = queue_size.clamp(1, MAX_QUEUE_SIZE);
        Reporter {
            queue: ArrayQueue::new(queue_size),
            recycle: ArrayQueue::new(queue_size.min(RECYCLE_CAPACITY)),
            // A batch can never hold more than the queue does.
            batch_size: batch_size.clamp(1, queue_size),
            notify: Notify::new(),
            notified: std::sync::atomic::AtomicBool::new(false),
            closed: std::sync::atomic::AtomicBool::new(false),
            metrics,
            baggage,
        }
    }

    pub(crate) fn queue_len(&self) -> usize {
        self.queue.len()
    }
}

/// Largest queue (its slots are allocated up front).
pub(crate) const MAX_QUEUE_SIZE: usize = 1 << 20;

/// Most emptied spans kept for reuse.
const RECYCLE_CAPACITY: usize = 512;

impl Reporter {
    /// Offers a delivered span for reuse; spans whose vectors grew unusually
    /// large are freed instead, to keep the pool's memory bounded.
    ///
    /// A span's values (operation name, tag and log strings) stay in the
    /// pool until a request thread reuses the box and `Span::recorded`
    /// clears it: glibc's allocator frees memory much faster on the thread
    /// that allocated it (freed here, each string would go through the
    /// shared arena, and the request thread's next allocation after it).
    /// The values were already sent; spans holding more than
    /// `RECYCLE_KEEP_BYTES` of them are emptied here, so the pool holds at
    /// most `RECYCLE_CAPACITY` times that.
    fn recycle(&self, mut span: Box<FinishedSpan>) {
        if span.tags.capacity() > 32 || span.logs.capacity() > 16 || span.references.capacity() > 8
        {
            return;
        }
        if retained_bytes(&span) > RECYCLE_KEEP_BYTES {
            span.tags.clear();
            span.logs.clear();
            span.references.clear();
            span.context = opentracing_api::SpanContext::empty();
            span.operation_name = std::borrow::Cow::Borrowed("");
        }
        let _ = self.recycle.push(span);
    }
}

thread_local! {
    /// The boxes [`Reporter::recycled`] has taken from a pool ahead of use,
    /// on this thread, by stage. (Boxes are plain memory: one taken from
    /// one tracer's pool may serve a span of another.)
    static STAGED: [std::cell::Cell<Option<Box<FinishedSpan>>>; 3] = const {
        [
            std::cell::Cell::new(None),
            std::cell::Cell::new(None),
            std::cell::Cell::new(None),
        ]
    };
}

/// What a recycled span may keep of its values until reuse.
const RECYCLE_KEEP_BYTES: usize = 2048;

/// The heap bytes a finished span's values hold (strings, log fields).
fn retained_bytes(span: &FinishedSpan) -> usize {
    let value = |v: &opentracing_api::TagValue| v.as_str().map_or(0, str::len);
    let tags: usize = span
        .tags
        .iter()
        .map(|t| t.key.len() + value(&t.value))
        .sum();
    let logs: usize = span
        .logs
        .iter()
        .flat_map(|l| &l.fields)
        .map(|f| f.key.len() + value(&f.value) + 64)
        .sum();
    span.operation_name.len() + tags + logs
}

impl SpanRecorder for Reporter {
    /// Boxes go through three per-thread slots before use, one span apart:
    /// taken from the pool (the box is prefetched), then their vectors are
    /// prefetched, then the strings reuse frees, and then they are used. A
    /// recycled box was last touched by the reporter long before, and each
    /// of those loads depends on the one before: without this, a span's
    /// start waits on several cache misses in a row.
    fn recycled(&self) -> Option<Box<FinishedSpan>> {
        let staged = STAGED.try_with(|[fetched, vectors, ready]| {
            let out = ready.take();
            if let Some(b) = vectors.take() {
                crate::prefetch::strings_to_free(&b);
                ready.set(Some(b));
            }
            if let Some(b) = fetched.take() {
                crate::prefetch::vectors(&b);
                vectors.set(Some(b));
            }
            if let Some(b) = self.recycle.pop() {
                crate::prefetch::span(&b);
                fetched.set(Some(b));
            }
            out
        });
        match staged {
            Ok(Some(b)) => Some(b),
            _ => self.recycle.pop(),
        }
    }

    fn allows_baggage(&self, key: &str) -> bool {
        self.baggage.allows(key)
    }

    fn baggage_refused(&self) {
        Metrics::inc(&self.metrics.baggage_dropped);
    }

    fn baggage_limits(&self) -> opentracing_api::BaggageLimits {
        self.baggage.limits
    }

    fn record(&self, span: Box<FinishedSpan>) {
        // `sampling.priority = 0` may have unsampled the span after it started.
        if !span.context.is_sampled() {
            return;
        }
        Metrics::inc(&self.metrics.spans_finished);
        if self.closed.load(std::sync::atomic::Ordering::Relaxed) {
            Metrics::inc(&self.metrics.spans_dropped_closed);
        } else if self.queue.push(span).is_err() {
            Metrics::inc(&self.metrics.spans_dropped_queue_full);
        } else if self.closed_after_push() {
            // `close` ran between the check above and the push, and its
            // drain may have missed this span: drop what is queued (each
            // span is popped, and counted, once, here or there).
            self.drop_queued();
        } else if self.queue.len() >= self.batch_size
            && !self
                .notified
                .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            // Wake the worker once per full batch; waking it on every push
            // beyond that costs a futex call per span.
            self.notify.notify_one();
        }
    }
}

/// Messages from the tracer's handle to the background task.
pub(crate) enum Command {
    /// Send everything queued, then answer.
    Flush(std_mpsc::Sender<()>),
    /// Send everything queued, answer, and stop.
    Close(std_mpsc::Sender<()>),
}

/// Retry policy for retryable transport errors.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Retry {
    pub(crate) max_retries: u32,
    pub(crate) initial_backoff: Duration,
    pub(crate) max_backoff: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            max_retries: 3,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
        }
    }
}

/// The background task: drains the queue every `flush_interval`, or as soon
/// as a full batch is waiting, and on `Flush` / `Close`.
pub(crate) async fn run(
    reporter: Arc<Reporter>,
    mut transport: Box<dyn Transport>,
    process: Process,
    flush_interval: Duration,
    retry: Retry,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    // The first tick one interval from now: `interval`'s immediate first
    // tick would drain whatever the first spans happened to be, at start.
    let mut ticker =
        tokio::time::interval_at(tokio::time::Instant::now() + flush_interval, flush_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let command = tokio::select! {
            _ = ticker.tick() => None,
            () = reporter.notify.notified() => None,
            c = commands.recv() => Some(c),
        };
        reporter
            .notified
            .store(false, std::sync::atomic::Ordering::Release);
        drain(&reporter, transport.as_mut(), &process, retry).await;
        match command {
            None => {}
            Some(Some(Command::Flush(reply))) => {
                let _ = reply.send(());
            }
            Some(Some(Command::Close(reply))) => {
                // Spans that raced with the close are counted as dropped.
                reporter.stop_taking_spans();
                let _ = reply.send(());
                return;
            }
            // Every handle is gone: nothing can be queued any more.
            Some(None) => {
                reporter.stop_taking_spans();
                return;
            }
        }
    }
}

/// Sends what was queued when it started (not what arrives meanwhile: on a
/// busy service the queue may never be empty, and `flush`/`close` must
/// still be answered).
async fn drain(
    reporter: &Reporter,
    transport: &mut dyn Transport,
    process: &Process,
    retry: Retry,
) {
    let mut batch = Vec::with_capacity(reporter.batch_size.min(1024));
    let mut remaining = reporter.queue.len();
    loop {
        while batch.len() < reporter.batch_size && remaining > 0 {
            remaining -= 1;
            match reporter.queue.pop() {
                Some(s) => batch.push(s),
                None => break,
            }
        }
        if batch.is_empty() {
            return;
        }
        send_with_retry(reporter, transport, process, &batch, retry).await;
        // The send's I/O has evicted the spans again.
        crate::prefetch::start_back(&batch);
        while let Some(span) = batch.pop() {
            crate::prefetch::layout_behind(&batch, batch.len());
            reporter.recycle(span);
        }
    }
}

/// Runs `fut`, turning a panic in it into `Err`.
async fn catch_unwind<T>(
    mut fut: Pin<Box<dyn Future<Output = T> + Send + '_>>,
) -> std::thread::Result<T> {
    std::future::poll_fn(move |cx| {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(Err(panic)),
        }
    })
    .await
}

async fn send_with_retry(
    reporter: &Reporter,
    transport: &mut dyn Transport,
    process: &Process,
    batch: &[Box<FinishedSpan>],
    retry: Retry,
) {
    let m = &reporter.metrics;
    let mut backoff = retry.initial_backoff;
    let mut attempt = 0;
    loop {
        let fut = if attempt == 0 {
            transport.send(process, batch)
        } else {
            transport.resend(process, batch)
        };
        // A transport that panics (a user's own) loses this batch, not the
        // reporter: every later span would be lost with it.
        let result = catch_unwind(fut).await.unwrap_or_else(|_| {
            Err(TransportError::Permanent(
                "the transport panicked while sending".into(),
            ))
        });
        match result {
            Ok(SendOutcome {
                sent,
                too_large,
                failed,
            }) => {
                Metrics::add(&m.spans_reported, sent);
                Metrics::add(&m.spans_dropped_too_large, too_large);
                Metrics::add(&m.spans_failed, failed);
                Metrics::inc(if failed > 0 {
                    &m.batches_failed
                } else {
                    &m.batches_sent
                });
                if too_large > 0 {
                    log::warn!(
                        "{too_large} spans too large for one {} packet were dropped",
                        transport.name()
                    );
                }
                return;
            }
            Err(TransportError::Retryable(e)) if attempt < retry.max_retries => {
                attempt += 1;
                Metrics::inc(&m.batch_retries);
                log::debug!(
                    "{} transport: {e}; retry {attempt} in {backoff:?}",
                    transport.name()
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(retry.max_backoff);
            }
            Err(e) => {
                Metrics::inc(&m.batches_failed);
                Metrics::add(&m.spans_failed, batch.len());
                log::warn!(
                    "{} transport: dropping a batch of {} spans: {e}",
                    transport.name(),
                    batch.len()
                );
                return;
            }
        }
    }
}
