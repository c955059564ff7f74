//! RPC metrics from server spans, like the Jaeger client's `rpcmetrics`:
//! request counts, error counts and a latency histogram per endpoint.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use crate::observer::{Observer, RequestOutcome};

/// Latency bucket bounds, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

#[derive(Default)]
struct Endpoint {
    ok: AtomicU64,
    errors: AtomicU64,
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
    status_classes: [AtomicU64; 5],
}

/// Per-endpoint request counts, error counts, HTTP status classes and a
/// latency histogram, exported in the Prometheus text format. Plug it into
/// [`TracingLayer::with_observer`](crate::TracingLayer::with_observer).
///
/// At most `max_endpoints` (default 200) distinct operation names are kept;
/// later ones are counted under `other`, so unbounded names cannot grow
/// memory.
pub struct RpcMetrics {
    endpoints: RwLock<HashMap<String, Arc<Endpoint>>>,
    max_endpoints: usize,
}

impl Default for RpcMetrics {
    fn default() -> Self {
        Self::new(200)
    }
}

impl std::fmt::Debug for RpcMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcMetrics")
            .field("max_endpoints", &self.max_endpoints)
            .finish_non_exhaustive()
    }
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl RpcMetrics {
    /// Metrics keeping at most `max_endpoints` endpoints.
    pub fn new(max_endpoints: usize) -> Self {
        RpcMetrics {
            endpoints: RwLock::default(),
            max_endpoints,
        }
    }

    fn endpoint(&self, name: &str) -> Arc<Endpoint> {
        {
            let map = self
                .endpoints
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(e) = map.get(name) {
                return e.clone();
            }
            // Full: names beyond the bound count as `other` without taking
            // the write lock on every such request.
            if map.len() >= self.max_endpoints {
                if let Some(e) = map.get("other") {
                    return e.clone();
                }
            }
        }
        let mut map = self
            .endpoints
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let key = if map.len() >= self.max_endpoints && !map.contains_key(name) {
            "other"
        } else {
            name
        };
        map.entry(key.to_owned()).or_default().clone()
    }

    /// `(requests, errors)` of one endpoint.
    pub fn counts(&self, endpoint: &str) -> Option<(u64, u64)> {
        let map = self
            .endpoints
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        map.get(endpoint).map(|e| {
            let errors = e.errors.load(Ordering::Relaxed);
            (e.ok.load(Ordering::Relaxed) + errors, errors)
        })
    }

    /// All metrics in the Prometheus text exposition format.
    pub fn prometheus_text(&self) -> String {
        let map = self
            .endpoints
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let mut names: Vec<&String> = map.keys().collect();
        names.sort();
        let mut out = String::new();
        let _ = writeln!(out, "# TYPE rpc_requests_total counter");
        for n in &names {
            let e = &map[*n];
            let n = escape(n);
            let _ = writeln!(
                out,
                "rpc_requests_total{{endpoint=\"{n}\",error=\"false\"}} {}",
                e.ok.load(Ordering::Relaxed)
            );
            let _ = writeln!(
                out,
                "rpc_requests_total{{endpoint=\"{n}\",error=\"true\"}} {}",
                e.errors.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(out, "# TYPE rpc_http_requests_total counter");
        for n in &names {
            let e = &map[*n];
            for (i, class) in ["1xx", "2xx", "3xx", "4xx", "5xx"].iter().enumerate() {
                let v = e.status_classes[i].load(Ordering::Relaxed);
                if v > 0 {
                    let _ = writeln!(
                        out,
                        "rpc_http_requests_total{{endpoint=\"{}\",status_code=\"{class}\"}} {v}",
                        escape(n)
                    );
                }
            }
        }
        let _ = writeln!(out, "# TYPE rpc_request_duration_seconds histogram");
        for n in &names {
            let e = &map[*n];
            let n = escape(n);
            let mut cumulative = 0;
            for (i, le) in BUCKETS.iter().enumerate() {
                cumulative += e.buckets[i].load(Ordering::Relaxed);
                let _ = writeln!(out, "rpc_request_duration_seconds_bucket{{endpoint=\"{n}\",le=\"{le}\"}} {cumulative}");
            }
            // A request finishing during the scrape may be in its bucket
            // and not yet in `count`: `+Inf` is never below a bucket.
            let count = e.count.load(Ordering::Relaxed).max(cumulative);
            let _ = writeln!(
                out,
                "rpc_request_duration_seconds_bucket{{endpoint=\"{n}\",le=\"+Inf\"}} {count}"
            );
            #[allow(clippy::cast_precision_loss)]
            let sum = e.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(
                out,
                "rpc_request_duration_seconds_sum{{endpoint=\"{n}\"}} {sum}"
            );
            let _ = writeln!(
                out,
                "rpc_request_duration_seconds_count{{endpoint=\"{n}\"}} {count}"
            );
        }
        out
    }
}

impl Observer for RpcMetrics {
    fn on_finish(&self, o: &RequestOutcome<'_>) {
        let e = self.endpoint(o.operation);
        if o.error {
            e.errors.fetch_add(1, Ordering::Relaxed);
        } else {
            e.ok.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(status) = o.status {
            if let Some(c) = e
                .status_classes
                .get(usize::from(status / 100).wrapping_sub(1))
            {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
        let secs = o.duration.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            e.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        e.count.fetch_add(1, Ordering::Relaxed);
        e.sum_micros.fetch_add(
            u64::try_from(o.duration.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }
}
