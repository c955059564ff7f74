//! The tracer's own metrics: what it started, sampled, reported and lost.

use std::fmt::Write as _;

use crate::counter::LocalCounter;

macro_rules! metrics {
    ($( $(#[$doc:meta])* $field:ident => $name:literal, $labels:literal; )*) => {
        /// Counters of the tracer and its reporting pipeline, kept per
        /// thread so that counting costs request threads no atomic
        /// read-modify-write and no shared cache line. Read them with
        /// [`snapshot`](Self::snapshot) or export them with
        /// [`prometheus_text`](Self::prometheus_text).
        #[derive(Debug, Default)]
        pub struct Metrics {
            $( $(#[$doc])* pub(crate) $field: LocalCounter, )*
        }

        /// A copy of the counters at one instant.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        #[non_exhaustive]
        pub struct MetricsSnapshot {
            $( $(#[$doc])* pub $field: u64, )*
        }

        impl Metrics {
            /// The current values.
            pub fn snapshot(&self) -> MetricsSnapshot {
                MetricsSnapshot { $( $field: self.$field.get(), )* }
            }

            /// The counters in the Prometheus text exposition format, named
            /// as the Jaeger clients name them (`jaeger_tracer_*`).
            pub fn prometheus_text(&self) -> String {
                let s = self.snapshot();
                let mut out = String::new();
                let mut last = "";
                $(
                    if last != $name {
                        let _ = writeln!(out, "# TYPE {} counter", $name);
                        last = $name;
                    }
                    let _ = writeln!(out, "{}{} {}", $name, $labels, s.$field);
                )*
                let _ = last;
                out
            }
        }
    };
}

metrics! {
    /// Root spans whose trace was sampled.
    traces_started_sampled => "jaeger_tracer_traces_total", "{state=\"started\",sampled=\"y\"}";
    /// Root spans whose trace was not sampled.
    traces_started_unsampled => "jaeger_tracer_traces_total", "{state=\"started\",sampled=\"n\"}";
    /// Sampled spans started.
    spans_started_sampled => "jaeger_tracer_started_spans_total", "{sampled=\"y\"}";
    /// Unsampled spans started.
    spans_started_unsampled => "jaeger_tracer_started_spans_total", "{sampled=\"n\"}";
    /// Sampled spans finished (handed to the reporter).
    spans_finished => "jaeger_tracer_finished_spans_total", "{sampled=\"y\"}";
    /// Spans delivered to the backend.
    spans_reported => "jaeger_tracer_reporter_spans_total", "{result=\"ok\"}";
    /// Spans dropped because the queue was full (not those dropped because
    /// the tracer was closed: see `spans_dropped_closed`). Every finished
    /// span ends up in exactly one of `spans_reported`, the
    /// `spans_dropped_*` counters or `spans_failed`.
    spans_dropped_queue_full => "jaeger_tracer_reporter_spans_total", "{result=\"dropped\",reason=\"queue_full\"}";
    /// Spans dropped because the reporter had stopped: finished after
    /// `close` (or racing with it), or after the reporter thread died.
    spans_dropped_closed => "jaeger_tracer_reporter_spans_total", "{result=\"dropped\",reason=\"closed\"}";
    /// Spans dropped because one span alone exceeded the UDP packet size.
    spans_dropped_too_large => "jaeger_tracer_reporter_spans_total", "{result=\"dropped\",reason=\"too_large\"}";
    /// Spans lost in batches the transport failed to send.
    spans_failed => "jaeger_tracer_reporter_spans_total", "{result=\"err\"}";
    /// Batches sent successfully.
    batches_sent => "jaeger_tracer_reporter_batches_total", "{result=\"ok\"}";
    /// Batches that failed after retries.
    batches_failed => "jaeger_tracer_reporter_batches_total", "{result=\"err\"}";
    /// Send attempts retried after a retryable error.
    batch_retries => "jaeger_tracer_reporter_retries_total", "";
    /// Successful polls of the remote sampling endpoint.
    sampler_queries_ok => "jaeger_tracer_sampler_queries_total", "{result=\"ok\"}";
    /// Failed polls of the remote sampling endpoint.
    sampler_queries_err => "jaeger_tracer_sampler_queries_total", "{result=\"err\"}";
    /// Sampling strategies applied.
    sampler_updates_ok => "jaeger_tracer_sampler_updates_total", "{result=\"ok\"}";
    /// Sampling strategies rejected (unparseable or unsupported).
    sampler_updates_err => "jaeger_tracer_sampler_updates_total", "{result=\"err\"}";
    /// Baggage items dropped by the restrictions (key not allowed, too
    /// long, too many).
    baggage_dropped => "jaeger_tracer_baggage_updates_total", "{result=\"err\"}";
    /// Debug (`jaeger-debug-id`) traces refused by the throttle.
    throttled_debug_spans => "jaeger_tracer_throttled_debug_spans_total", "";
    /// Incoming span contexts that failed to decode.
    span_context_decoding_errors => "jaeger_tracer_span_context_decoding_errors_total", "";
}

impl Metrics {
    #[inline]
    pub(crate) fn inc(counter: &LocalCounter) {
        counter.inc();
    }

    #[inline]
    pub(crate) fn add(counter: &LocalCounter, n: usize) {
        counter.add(n as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_groups_by_name() {
        let m = Metrics::default();
        Metrics::add(&m.spans_reported, 3);
        let text = m.prometheus_text();
        assert!(text.contains("jaeger_tracer_reporter_spans_total{result=\"ok\"} 3\n"));
        assert_eq!(
            text.matches("# TYPE jaeger_tracer_reporter_spans_total counter")
                .count(),
            1
        );
        assert_eq!(m.snapshot().spans_reported, 3);
        Metrics::inc(&m.spans_dropped_closed);
        assert!(m.prometheus_text().contains(
            "jaeger_tracer_reporter_spans_total{result=\"dropped\",reason=\"closed\"} 1\n"
        ));
    }
}
