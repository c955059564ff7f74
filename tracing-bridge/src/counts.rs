//! Per-span log counts, so that the cap on logs per span holds.
//!
//! The bridge's own spans carry their count with them ([`SpanState`]).
//! Spans started elsewhere (a server span of the HTTP layers, a `#[trace]`
//! span, one the application entered itself) cannot: the bridge never
//! learns when they finish. Their counts live in [`ForeignLogCounts`], a
//! sharded table keyed by trace and span id that forgets spans which have
//! stopped logging, so it stays bounded however many spans come and go.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use opentracing_api::{SharedSpan, SpanId, TraceId};

/// Whether a log may be added to a span.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Under the cap: log it.
    Log,
    /// Over the cap: drop it. `dropped` logs of this span were dropped so
    /// far, this one included.
    Drop { dropped: u64 },
}

impl Admit {
    /// The decision for the `n`th log (from 1) of a span.
    fn nth(n: u64, max: u64) -> Admit {
        if n <= max {
            Admit::Log
        } else {
            Admit::Drop { dropped: n - max }
        }
    }
}

/// An OpenTracing span the bridge started for a `tracing` span, with its
/// log count.
#[derive(Debug)]
pub(crate) struct SpanState {
    pub(crate) span: SharedSpan,
    /// Logs offered to the span, kept and dropped.
    logs: AtomicU64,
}

impl SpanState {
    pub(crate) fn new(span: SharedSpan) -> Self {
        SpanState {
            span,
            logs: AtomicU64::new(0),
        }
    }

    /// Counts a log offered to the span.
    pub(crate) fn admit(&self, max: u64) -> Admit {
        Admit::nth(self.logs.fetch_add(1, Ordering::Relaxed) + 1, max)
    }

    /// How many logs were dropped.
    pub(crate) fn dropped(&self, max: u64) -> u64 {
        self.logs.load(Ordering::Relaxed).saturating_sub(max)
    }
}

type Key = (TraceId, SpanId);

const SHARDS: usize = 16;

/// Log counts of spans the bridge did not start.
///
/// Each shard keeps two generations of counts. A span found in the older
/// one moves to the newer one; when the newer one is full, the older one is
/// dropped and the newer one takes its place. A span that keeps logging
/// therefore keeps its count, and a finished span (which logs no more) is
/// forgotten after two generations. Only a span that logs nothing while
/// `capacity` other spans of its shard start logging loses its count (and
/// may then log up to the cap again).
#[derive(Debug)]
pub(crate) struct ForeignLogCounts {
    shards: [Mutex<Generations>; SHARDS],
    per_generation: usize,
}

#[derive(Debug, Default)]
struct Generations {
    newer: HashMap<Key, u64>,
    older: HashMap<Key, u64>,
}

impl ForeignLogCounts {
    /// Counts for about `capacity` spans logging at the same time.
    pub(crate) fn new(capacity: usize) -> Self {
        ForeignLogCounts {
            shards: std::array::from_fn(|_| Mutex::default()),
            per_generation: (capacity / SHARDS).max(16),
        }
    }

    /// Counts a log offered to the span with `key`.
    pub(crate) fn admit(&self, trace_id: TraceId, span_id: SpanId, max: u64) -> Admit {
        let key = (trace_id, span_id);
        // Span ids are random (or sequential, in tests): either spreads.
        let shard = (span_id.to_u64() ^ trace_id.low()) as usize % SHARDS;
        let mut g = self.shards[shard]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let n = if let Some(n) = g.newer.get_mut(&key) {
            *n += 1;
            *n
        } else {
            let n = g.older.remove(&key).unwrap_or(0) + 1;
            if g.newer.len() >= self.per_generation {
                g.older = std::mem::take(&mut g.newer);
            }
            g.newer.insert(key, n);
            n
        };
        Admit::nth(n, max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(i: u64) -> (TraceId, SpanId) {
        (TraceId::from_u64(1), SpanId::from_u64(i))
    }

    #[test]
    fn counts_each_span_and_drops_over_the_cap() {
        let counts = ForeignLogCounts::new(1024);
        let (t, a) = ids(1);
        let (_, b) = ids(2);
        assert_eq!(counts.admit(t, a, 2), Admit::Log);
        assert_eq!(counts.admit(t, a, 2), Admit::Log);
        assert_eq!(counts.admit(t, b, 2), Admit::Log);
        assert_eq!(counts.admit(t, a, 2), Admit::Drop { dropped: 1 });
        assert_eq!(counts.admit(t, a, 2), Admit::Drop { dropped: 2 });
        assert_eq!(counts.admit(t, b, 2), Admit::Log);
    }

    #[test]
    fn stays_bounded_and_keeps_spans_that_keep_logging() {
        let counts = ForeignLogCounts::new(16 * 16);
        let (t, busy) = ids(7);
        for i in 0..100_000u64 {
            let (_, s) = ids(1_000 + i);
            counts.admit(t, s, 10);
            if i % 8 == 0 {
                counts.admit(t, busy, u64::MAX);
            }
        }
        for shard in &counts.shards {
            let g = shard.lock().unwrap();
            assert!(g.newer.len() <= 16 && g.older.len() <= 16);
        }
        assert_eq!(counts.admit(t, busy, 12_500), Admit::Drop { dropped: 1 });
    }

    #[test]
    fn own_span_counts() {
        let state = SpanState::new(opentracing_api::Span::noop().into_shared());
        assert_eq!(state.admit(1), Admit::Log);
        assert_eq!(state.admit(1), Admit::Drop { dropped: 1 });
        assert_eq!(state.dropped(1), 1);
    }
}
