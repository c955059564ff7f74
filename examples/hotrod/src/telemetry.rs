//! One tracer per service (and per simulated database), configured from the
//! `JAEGER_*` / `OTEL_*` variables, all keeping their spans in the
//! process's [`SpanStore`] for the built-in trace view.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use opentracing_jaeger::{builder_from_vars, ConfigError, Exporter, JaegerTracer};
use opentracing_tower::RpcMetrics;

use crate::store::SpanStore;

/// Variables that choose an exporter. With none of them set, spans stay in
/// the process (the built-in trace view) instead of going to the tracer's
/// default OTLP endpoint, where nothing may be listening.
const EXPORTER_VARS: [&str; 8] = [
    "JAEGER_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "JAEGER_AGENT_HOST",
    "JAEGER_AGENT_PORT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_HEADERS",
];

type Lookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The tracers, span store and RPC metrics of one HotROD process.
#[derive(Clone)]
pub struct Telemetry {
    vars: Lookup,
    store: SpanStore,
    tracers: Arc<Mutex<BTreeMap<String, JaegerTracer>>>,
    rpc: Arc<Mutex<BTreeMap<String, Arc<RpcMetrics>>>>,
    flushes: Arc<FlushGate>,
}

/// Runs blocking flushes one at a time, shared by the callers that wait
/// together: a caller waits for a flush that started after it came (so
/// what it finished before is delivered), and however many callers come,
/// at most one flush runs and one more is wanted.
#[derive(Debug, Default)]
pub(crate) struct FlushGate {
    /// Flushes started so far (each one's number).
    started: AtomicU64,
    /// The number of the last flush completed; held while one runs.
    done: Arc<tokio::sync::Mutex<u64>>,
}

impl FlushGate {
    /// Runs `flush` off the runtime unless a flush that started after this
    /// call came has completed meanwhile. The gate stays held until `flush`
    /// returns, even if this call is dropped first, so callers that give up
    /// cannot pile flushes up.
    pub(crate) async fn run(&self, flush: impl FnOnce() + Send + 'static) {
        let arrived = self.started.load(Ordering::Acquire);
        let mut done = Arc::clone(&self.done).lock_owned().await;
        if *done > arrived {
            return;
        }
        let n = self.started.fetch_add(1, Ordering::AcqRel) + 1;
        let _ = tokio::task::spawn_blocking(move || {
            flush();
            *done = n;
        })
        .await;
    }
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl Telemetry {
    /// Tracers configured from the process environment, keeping up to
    /// [`DEFAULT_MAX_SPANS`](crate::config::DEFAULT_MAX_SPANS) spans per
    /// service in memory.
    pub fn from_env() -> Self {
        Self::with_vars(
            |name| std::env::var(name).ok(),
            crate::config::DEFAULT_MAX_SPANS,
        )
    }

    /// Tracers configured from the variables `vars` returns, keeping up to
    /// `max_spans` spans per service in memory.
    pub fn with_vars(
        vars: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
        max_spans: usize,
    ) -> Self {
        Telemetry {
            vars: Arc::new(vars),
            store: SpanStore::new(max_spans),
            tracers: Arc::default(),
            rpc: Arc::default(),
            flushes: Arc::default(),
        }
    }

    /// The spans kept in memory.
    pub fn store(&self) -> &SpanStore {
        &self.store
    }

    /// The tracer of `service`, built on first use: the environment's
    /// configuration with this service name, the const sampler sampling
    /// everything unless the environment chooses a sampler, and no export
    /// unless the environment names an exporter.
    pub fn tracer(&self, service: &str) -> Result<JaegerTracer, ConfigError> {
        let mut tracers = self.tracers.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(t) = tracers.get(service) {
            return Ok(t.clone());
        }
        let env = &self.vars;
        let sampler_chosen =
            env("JAEGER_SAMPLER_TYPE").is_some() || env("OTEL_TRACES_SAMPLER").is_some();
        let lookup = |name: &str| -> Option<String> {
            match name {
                "JAEGER_SERVICE_NAME" => Some(service.to_owned()),
                "OTEL_SERVICE_NAME" => None,
                "JAEGER_SAMPLER_TYPE" if !sampler_chosen => Some("const".into()),
                "JAEGER_SAMPLER_PARAM" if !sampler_chosen => Some("1".into()),
                // Spans reach the trace view quickly.
                "JAEGER_REPORTER_FLUSH_INTERVAL" => env(name).or_else(|| Some("100ms".into())),
                _ => env(name),
            }
        };
        let mut builder = builder_from_vars(&lookup)?;
        if EXPORTER_VARS.iter().all(|v| env(v).is_none()) {
            builder = builder.exporter(Exporter::None);
        }
        let tracer = builder
            .keep_in_memory(self.store.for_service(service))
            .build()?;
        tracers.insert(service.to_owned(), tracer.clone());
        Ok(tracer)
    }

    /// The RPC metrics of `service`'s server.
    pub fn rpc_metrics(&self, service: &str) -> Arc<RpcMetrics> {
        self.rpc
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(service.to_owned())
            .or_default()
            .clone()
    }

    /// The Prometheus text of `services`: their RPC metrics and their
    /// tracers' own metrics, each sample labelled with its service.
    pub fn prometheus_text(&self, services: &[&str]) -> String {
        let mut texts = Vec::new();
        {
            let rpc = self.rpc.lock().unwrap_or_else(PoisonError::into_inner);
            for s in services {
                if let Some(m) = rpc.get(*s) {
                    texts.push((s.to_string(), m.prometheus_text()));
                }
            }
        }
        {
            let tracers = self.tracers.lock().unwrap_or_else(PoisonError::into_inner);
            for s in services {
                if let Some(t) = tracers.get(*s) {
                    texts.push((s.to_string(), t.metrics().prometheus_text()));
                }
            }
        }
        merge_prometheus(&texts)
    }

    /// Flushes every tracer's queued spans (to the store and the exporter),
    /// waiting at most `timeout` for each. Blocks: call it off the runtime.
    pub fn flush(&self, timeout: Duration) {
        for t in self.all_tracers() {
            let _ = t.flush(timeout);
        }
    }

    /// [`flush`](Self::flush) from async code, for requests that must see
    /// the spans finished before them: off the runtime, and shared, so
    /// that however many requests ask at once, one flush runs at a time
    /// (a request waits for one that started after it came).
    pub async fn flushed(&self, timeout: Duration) {
        let t = self.clone();
        self.flushes.run(move || t.flush(timeout)).await;
    }

    /// Delivers what is queued and stops every tracer. Blocks: call it off
    /// the runtime.
    pub fn close(&self, timeout: Duration) {
        for t in self.all_tracers() {
            let _ = t.close(timeout);
        }
    }

    fn all_tracers(&self) -> Vec<JaegerTracer> {
        self.tracers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }
}

/// Merges Prometheus text expositions into one, adding a `service` label
/// to every sample and keeping each metric family's samples together under
/// one `# TYPE` line.
fn merge_prometheus(texts: &[(String, String)]) -> String {
    // family name -> (TYPE line, samples), in first-seen order.
    let mut families: Vec<(String, String, Vec<String>)> = Vec::new();
    for (service, text) in texts {
        let mut current: Option<usize> = None;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                let i = families
                    .iter()
                    .position(|(n, _, _)| *n == name)
                    .unwrap_or_else(|| {
                        families.push((name, line.to_owned(), Vec::new()));
                        families.len() - 1
                    });
                current = Some(i);
            } else if !line.starts_with('#') && !line.trim().is_empty() {
                let sample = add_label(line, "service", service);
                match current {
                    Some(i) => families[i].2.push(sample),
                    None => families.push((String::new(), String::new(), vec![sample])),
                }
            }
        }
    }
    let mut out = String::new();
    for (_, type_line, samples) in families {
        if !type_line.is_empty() {
            out.push_str(&type_line);
            out.push('\n');
        }
        for s in samples {
            out.push_str(&s);
            out.push('\n');
        }
    }
    out
}

/// `name{a="b"} 1` → `name{service="x",a="b"} 1`.
fn add_label(sample: &str, key: &str, value: &str) -> String {
    let value = value.replace('\\', "\\\\").replace('"', "\\\"");
    match sample.find(['{', ' ']) {
        Some(i) if sample[i..].starts_with("{}") => {
            format!("{}{{{key}=\"{value}\"}}{}", &sample[..i], &sample[i + 2..])
        }
        Some(i) if sample[i..].starts_with('{') => {
            format!("{}{{{key}=\"{value}\",{}", &sample[..i], &sample[i + 1..])
        }
        Some(i) => format!("{}{{{key}=\"{value}\"}}{}", &sample[..i], &sample[i..]),
        None => sample.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_flushes_are_shared_and_cancelled_callers_pile_nothing_up() {
        let gate = Arc::new(FlushGate::default());
        let runs = Arc::new(AtomicU64::new(0));
        let running = Arc::new(AtomicU64::new(0));
        let overlaps = Arc::new(AtomicU64::new(0));
        let flush = {
            let (runs, running, overlaps) = (runs.clone(), running.clone(), overlaps.clone());
            move || {
                if running.fetch_add(1, Ordering::SeqCst) != 0 {
                    overlaps.fetch_add(1, Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_millis(30));
                runs.fetch_add(1, Ordering::SeqCst);
                running.fetch_sub(1, Ordering::SeqCst);
            }
        };
        // Callers that give up at once: whatever they started runs to its
        // end, one flush at a time (checked by `overlaps` below).
        for _ in 0..50 {
            let (gate, f) = (gate.clone(), flush.clone());
            let _ = tokio::time::timeout(Duration::from_millis(1), async move {
                gate.run(f).await;
            })
            .await;
        }
        // 100 callers at once: each sees a flush that started after it came,
        // and they share a few flushes instead of running 100 in a row.
        let before = runs.load(Ordering::SeqCst);
        let callers: Vec<_> = (0..100)
            .map(|_| {
                let (gate, f) = (gate.clone(), flush.clone());
                tokio::spawn(async move {
                    let before = runs_started(&gate);
                    gate.run(f).await;
                    assert!(*gate.done.lock().await > before);
                })
            })
            .collect();
        for c in callers {
            c.await.expect("a caller");
        }
        let shared = runs.load(Ordering::SeqCst) - before;
        assert!(
            (1..=20).contains(&shared),
            "{shared} flushes for 100 callers"
        );
        assert_eq!(overlaps.load(Ordering::SeqCst), 0, "one flush at a time");
    }

    fn runs_started(gate: &FlushGate) -> u64 {
        gate.started.load(Ordering::Acquire)
    }

    #[test]
    fn labels_are_added() {
        assert_eq!(add_label("a 1", "service", "x"), "a{service=\"x\"} 1");
        assert_eq!(add_label("a{} 1", "service", "x"), "a{service=\"x\"} 1");
        assert_eq!(
            add_label("a{b=\"c\"} 1", "service", "x"),
            "a{service=\"x\",b=\"c\"} 1"
        );
    }

    #[test]
    fn families_stay_together() {
        let t = "# TYPE m counter\nm{k=\"1\"} 1\n# TYPE n counter\nn 2\n";
        let merged = merge_prometheus(&[("a".into(), t.into()), ("b".into(), t.into())]);
        assert_eq!(
            merged,
            "# TYPE m counter\nm{service=\"a\",k=\"1\"} 1\nm{service=\"b\",k=\"1\"} 1\n\
             # TYPE n counter\nn{service=\"a\"} 2\nn{service=\"b\"} 2\n"
        );
    }

    #[test]
    fn no_exporter_variables_means_no_export() {
        let telemetry = Telemetry::with_vars(|_| None, 10);
        let tracer = telemetry.tracer("frontend").unwrap();
        assert_eq!(tracer.service_name(), "frontend");
        assert!(telemetry.tracer("frontend").is_ok());
    }
}
