//! Building a tracer: in code, or from the `JAEGER_*` / `OTEL_*`
//! environment variables.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentracing_api::Propagator;
use opentracing_api::{
    B3Encoding, B3Propagator, BaggageLimits, CompositePropagator, ExtractPolicy, JaegerPropagator,
    Tag, TagValue, TraceContextPropagator, W3CBaggagePropagator,
};
use tokio::sync::mpsc;

use crate::metrics::Metrics;
use crate::process::Process;
use crate::reporter::{self, Reporter, Retry};
use crate::sampler::{ConstSampler, RateLimiter, RemoteSampler, Sampler};
use crate::tracer::{
    client_version, BaggageRestrictions, GuardedPropagator, Inner, JaegerTracer, Worker,
};
use crate::transport::local::{
    CompositeTransport, InMemoryTransport, LoggingTransport, NullTransport,
};
use crate::transport::{
    http_client, CollectorAuth, HttpCollectorTransport, OtlpHttpTransport, Transport,
    UdpAgentTransport,
};

/// A configuration error, naming the setting or variable at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// An environment variable has a value that cannot be used.
    #[error("{var}={value:?}: {reason}")]
    InvalidVar {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An environment variable that the configuration reads is set to a
    /// value that is not valid UTF-8 (the value is not shown: it may be a
    /// credential).
    #[error("{var} is set to a value that is not valid UTF-8")]
    NotUnicode {
        /// The variable.
        var: String,
    },
    /// A setting is invalid or unsupported.
    #[error("{0}")]
    Invalid(String),
    /// The background reporter thread could not start.
    #[error("starting the reporter thread: {0}")]
    Worker(#[from] std::io::Error),
}

/// Where finished spans go.
#[non_exhaustive]
pub enum Exporter {
    /// OTLP over HTTP/protobuf to a full traces URL
    /// (`http://localhost:4318/v1/traces`).
    OtlpHttp {
        /// The URL.
        url: String,
        /// Extra headers (`OTEL_EXPORTER_OTLP_HEADERS`).
        headers: Vec<(String, String)>,
    },
    /// OTLP over gRPC (`http://localhost:4317`); needs the `otlp-grpc`
    /// feature.
    OtlpGrpc {
        /// The endpoint.
        endpoint: String,
        /// Extra metadata.
        headers: Vec<(String, String)>,
    },
    /// A Jaeger agent over UDP (`localhost:6831`).
    UdpAgent {
        /// `host:port`.
        addr: String,
    },
    /// A Jaeger collector over HTTP (`http://localhost:14268/api/traces`).
    HttpCollector {
        /// The URL.
        url: String,
        /// Authentication.
        auth: CollectorAuth,
    },
    /// Any transport.
    Custom(Box<dyn Transport>),
    /// Nowhere (spans are still sampled, propagated and counted).
    None,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exporter::OtlpHttp { url, .. } => write!(f, "OtlpHttp({url})"),
            Exporter::OtlpGrpc { endpoint, .. } => write!(f, "OtlpGrpc({endpoint})"),
            Exporter::UdpAgent { addr } => write!(f, "UdpAgent({addr})"),
            Exporter::HttpCollector { url, .. } => write!(f, "HttpCollector({url})"),
            Exporter::Custom(t) => write!(f, "Custom({})", t.name()),
            Exporter::None => f.write_str("None"),
        }
    }
}

/// The default exporter: OTLP/HTTP to `localhost:4318`, which Jaeger v2,
/// Tempo and every OpenTelemetry collector accept.
pub const DEFAULT_OTLP_HTTP_URL: &str = "http://localhost:4318/v1/traces";
/// The Jaeger agent's compact-Thrift UDP port.
pub const DEFAULT_AGENT_ADDR: &str = "localhost:6831";
/// The Jaeger agent's sampling endpoint.
pub const DEFAULT_SAMPLING_ENDPOINT: &str = "http://127.0.0.1:5778/sampling";

/// Builds a [`JaegerTracer`].
///
/// Defaults, with nothing configured: sample every trace that has no
/// upstream decision and respect upstream decisions (OpenTelemetry's
/// `parentbased_always_on`, and never jaeger-client-go's "sample nothing
/// until the first successful poll"), export over OTLP/HTTP to
/// `http://localhost:4318/v1/traces`, queue 2048 spans, send batches of up
/// to 512 spans at least every second, extract Jaeger, W3C and B3 headers
/// and inject Jaeger and W3C ones (trace context and baggage: B3 is
/// understood from Zipkin-instrumented callers but not sent on), and
/// 128-bit trace ids, as W3C and OTLP expect.
#[must_use]
pub struct JaegerTracerBuilder {
    service_name: String,
    sampler: Option<Arc<dyn Sampler>>,
    remote: Option<(String, Duration, Arc<dyn Sampler>)>,
    exporter: Exporter,
    log_spans: bool,
    in_memory: Option<InMemoryTransport>,
    queue_size: usize,
    batch_size: usize,
    flush_interval: Duration,
    retry: Retry,
    propagator: Option<Box<dyn Propagator>>,
    tags: Vec<Tag>,
    trace_id_128bit: bool,
    policy: ExtractPolicy,
    debug_per_second: f64,
    baggage: BaggageRestrictions,
    max_operations: usize,
}

impl JaegerTracer {
    /// A builder for a tracer of `service_name`.
    pub fn builder(service_name: impl Into<String>) -> JaegerTracerBuilder {
        JaegerTracerBuilder {
            service_name: service_name.into(),
            sampler: None,
            remote: None,
            exporter: Exporter::OtlpHttp {
                url: DEFAULT_OTLP_HTTP_URL.to_owned(),
                headers: Vec::new(),
            },
            log_spans: false,
            in_memory: None,
            queue_size: 2048,
            batch_size: 512,
            flush_interval: Duration::from_secs(1),
            retry: Retry::default(),
            propagator: None,
            tags: Vec::new(),
            trace_id_128bit: true,
            policy: ExtractPolicy::default(),
            debug_per_second: 10.0,
            baggage: BaggageRestrictions::default(),
            max_operations: 2000,
        }
    }
}

/// The propagation formats of `JAEGER_PROPAGATION` / `OTEL_PROPAGATORS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PropagationFormat {
    /// `uber-trace-id`, `uberctx-*`.
    Jaeger,
    /// W3C `traceparent` / `tracestate`.
    TraceContext,
    /// W3C `baggage`.
    Baggage,
    /// B3 single header.
    B3Single,
    /// B3 multi-header.
    B3Multi,
}

/// A composite propagator for these formats, extracting in this order.
pub fn propagator_for(formats: &[PropagationFormat]) -> CompositePropagator {
    CompositePropagator::new(
        formats
            .iter()
            .map(|f| -> Box<dyn Propagator> {
                match f {
                    PropagationFormat::Jaeger => Box::new(JaegerPropagator::new()),
                    PropagationFormat::TraceContext => Box::new(TraceContextPropagator::new()),
                    PropagationFormat::Baggage => Box::new(W3CBaggagePropagator::new()),
                    PropagationFormat::B3Single => {
                        Box::new(B3Propagator::with_encoding(B3Encoding::SingleHeader))
                    }
                    PropagationFormat::B3Multi => {
                        Box::new(B3Propagator::with_encoding(B3Encoding::MultiHeader))
                    }
                }
            })
            .collect(),
    )
}

impl JaegerTracerBuilder {
    /// Uses this sampler for new traces.
    pub fn sampler(mut self, sampler: impl Sampler + 'static) -> Self {
        self.sampler = Some(Arc::new(sampler));
        self
    }

    /// Polls `endpoint` (`http://agent:5778/sampling`) every `refresh` for
    /// the strategy, starting with `initial` and keeping the last good
    /// strategy when the endpoint fails.
    pub fn remote_sampler(
        mut self,
        endpoint: impl Into<String>,
        refresh: Duration,
        initial: impl Sampler + 'static,
    ) -> Self {
        self.remote = Some((endpoint.into(), refresh, Arc::new(initial)));
        self
    }

    /// Where spans go.
    pub fn exporter(mut self, exporter: Exporter) -> Self {
        self.exporter = exporter;
        self
    }

    /// Sends spans through `transport`.
    pub fn transport(self, transport: impl Transport) -> Self {
        self.exporter(Exporter::Custom(Box::new(transport)))
    }

    /// Also logs every span (`JAEGER_REPORTER_LOG_SPANS`).
    pub fn log_spans(mut self, on: bool) -> Self {
        self.log_spans = on;
        self
    }

    /// Also keeps reported spans in `store` (for an in-process trace view).
    pub fn keep_in_memory(mut self, store: InMemoryTransport) -> Self {
        self.in_memory = Some(store);
        self
    }

    /// Queue capacity in spans (default 2048, at most 1 048 576: the slots
    /// are allocated up front); beyond it spans are dropped and counted.
    pub fn queue_size(mut self, n: usize) -> Self {
        self.queue_size = n;
        self
    }

    /// Spans per batch (default 512; at most the queue size).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n;
        self
    }

    /// Longest a span waits before being sent (default 1 s; kept between
    /// 1 ms and 24 h).
    pub fn flush_interval(mut self, d: Duration) -> Self {
        self.flush_interval = d;
        self
    }

    /// Retries of retryable send errors (default 3, backoff from 100 ms
    /// doubling to at most 2 s). Memory stays bounded: while retrying, new
    /// spans wait in the bounded queue.
    pub fn max_retries(mut self, n: u32) -> Self {
        self.retry.max_retries = n;
        self
    }

    /// Uses this propagator (default: see [`JaegerTracerBuilder`]).
    pub fn propagator(mut self, p: impl Propagator + 'static) -> Self {
        self.propagator = Some(Box::new(p));
        self
    }

    /// Uses these formats, extracting in this order and injecting all.
    pub fn propagation(self, formats: &[PropagationFormat]) -> Self {
        self.propagator(propagator_for(formats))
    }

    /// Adds a process tag.
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<TagValue>) -> Self {
        self.tags.push(Tag::new(key.into(), value));
        self
    }

    /// 128-bit (default) or 64-bit trace ids for new traces.
    pub fn trace_id_128bit(mut self, on: bool) -> Self {
        self.trace_id_128bit = on;
        self
    }

    /// What to trust in incoming contexts.
    pub fn extract_policy(mut self, policy: ExtractPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Most debug traces (`jaeger-debug-id`) per second (default 10).
    pub fn debug_traces_per_second(mut self, n: f64) -> Self {
        self.debug_per_second = n;
        self
    }

    /// Baggage limits for spans and incoming contexts.
    pub fn baggage_limits(mut self, limits: BaggageLimits) -> Self {
        self.baggage.limits = limits;
        self
    }

    /// Only these baggage keys are accepted from callers.
    pub fn baggage_allowlist(mut self, keys: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.baggage.allowed_keys = Some(keys.into_iter().map(Into::into).collect());
        self
    }

    fn make_transport(
        exporter: Exporter,
        metrics: &Arc<Metrics>,
    ) -> Result<Option<Box<dyn Transport>>, ConfigError> {
        let invalid = |e: crate::transport::TransportError| ConfigError::Invalid(e.to_string());
        Ok(match exporter {
            Exporter::OtlpHttp { url, headers } => {
                let mut t = OtlpHttpTransport::new(&url).map_err(invalid)?;
                for (k, v) in headers {
                    let (k, v) = header(&k, &v)?;
                    t = t.with_header(k, v);
                }
                Some(Box::new(t))
            }
            #[cfg(feature = "otlp-grpc")]
            Exporter::OtlpGrpc { endpoint, headers } => {
                let mut t = crate::transport::OtlpGrpcTransport::new(&endpoint).map_err(invalid)?;
                for (k, v) in headers {
                    t = t.with_header(&k, &v).map_err(invalid)?;
                }
                Some(Box::new(t))
            }
            #[cfg(not(feature = "otlp-grpc"))]
            Exporter::OtlpGrpc { .. } => {
                return Err(ConfigError::Invalid(
                    "OTLP over gRPC needs the `otlp-grpc` feature of opentracing-jaeger".into(),
                ))
            }
            Exporter::UdpAgent { addr } => {
                let mut t = UdpAgentTransport::new(addr);
                t.set_metrics(metrics.clone());
                Some(Box::new(t))
            }
            Exporter::HttpCollector { url, auth } => Some(Box::new(
                HttpCollectorTransport::new(&url, auth).map_err(invalid)?,
            )),
            Exporter::Custom(t) => Some(t),
            Exporter::None => None,
        })
    }

    /// Builds the tracer and starts its background reporter thread.
    pub fn build(self) -> Result<JaegerTracer, ConfigError> {
        if self.service_name.trim().is_empty() {
            return Err(ConfigError::Invalid("the service name is empty".into()));
        }
        let metrics = Arc::new(Metrics::default());
        let mut transports: Vec<Box<dyn Transport>> = Vec::new();
        if let Some(t) = Self::make_transport(self.exporter, &metrics)? {
            transports.push(t);
        }
        if self.log_spans {
            transports.push(Box::new(LoggingTransport));
        }
        if let Some(m) = self.in_memory {
            transports.push(Box::new(m));
        }
        let transport: Box<dyn Transport> = match transports.len() {
            0 => Box::new(NullTransport),
            1 => transports.remove(0),
            _ => Box::new(CompositeTransport(transports)),
        };
        let reporter = Arc::new(Reporter::new(
            self.queue_size,
            self.batch_size,
            metrics.clone(),
            self.baggage.clone(),
        ));
        if let Some((endpoint, _, _)) = &self.remote {
            crate::transport::check_http_url(endpoint).map_err(|e| {
                ConfigError::Invalid(format!("invalid sampling server URL {endpoint:?}: {e}"))
            })?;
        }
        let remote = self.remote.map(|(endpoint, refresh, initial)| {
            // Polling more than once a second would hammer the agent.
            let refresh = refresh.clamp(Duration::from_secs(1), Duration::from_secs(24 * 3600));
            (
                Arc::new(RemoteSampler::new(
                    &endpoint,
                    &self.service_name,
                    initial,
                    self.max_operations,
                    metrics.clone(),
                )),
                refresh,
            )
        });
        let sampler: Arc<dyn Sampler> = match (&remote, self.sampler) {
            (Some((r, _)), _) => r.clone(),
            (None, Some(s)) => s,
            (None, None) => Arc::new(ConstSampler(true)),
        };
        let process = Process {
            service_name: self.service_name.clone(),
            tags: process_tags(self.tags),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        // tokio's interval panics on zero and overflows on huge periods.
        let flush_interval = self
            .flush_interval
            .clamp(Duration::from_millis(1), Duration::from_secs(24 * 3600));
        let thread = spawn_worker(
            &self.service_name,
            WorkerSetup {
                reporter: reporter.clone(),
                transport,
                process,
                flush_interval,
                retry: self.retry,
                remote,
                commands: rx,
            },
        )?;
        let propagator = self.propagator.unwrap_or_else(|| {
            Box::new(
                propagator_for(&[
                    PropagationFormat::Jaeger,
                    PropagationFormat::TraceContext,
                    PropagationFormat::Baggage,
                ])
                .extracting_also(vec![Box::new(B3Propagator::new())]),
            )
        });
        Ok(JaegerTracer {
            inner: Arc::new(Inner {
                service_name: self.service_name,
                sampler,
                propagator: GuardedPropagator {
                    formats: propagator,
                    policy: self.policy,
                    baggage: self.baggage.clone(),
                    metrics: metrics.clone(),
                },
                reporter,
                metrics,
                trace_id_128bit: self.trace_id_128bit,
                debug_throttle: RateLimiter::new(self.debug_per_second),
                baggage: self.baggage,
                worker: Some(Worker {
                    commands: tx,
                    thread: Mutex::new(Some(thread)),
                }),
            }),
        })
    }
}

/// What the reporter thread runs with.
struct WorkerSetup {
    reporter: Arc<Reporter>,
    transport: Box<dyn Transport>,
    process: Process,
    flush_interval: Duration,
    retry: Retry,
    remote: Option<(Arc<RemoteSampler>, Duration)>,
    commands: mpsc::UnboundedReceiver<crate::reporter::Command>,
}

/// Starts the reporter thread (and the remote sampler's polling on it).
fn spawn_worker(
    service_name: &str,
    w: WorkerSetup,
) -> Result<std::thread::JoinHandle<()>, ConfigError> {
    // Made here so that a runtime that cannot start fails the build,
    // instead of a reporter that silently never sends.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let thread = std::thread::Builder::new()
        .name(format!("jaeger-reporter-{service_name}"))
        .spawn(move || {
            let _stopped = StoppedGuard(w.reporter.clone());
            rt.block_on(async move {
                if let Some((sampler, refresh)) = w.remote {
                    tokio::spawn(poll_sampler(sampler, refresh));
                }
                reporter::run(
                    w.reporter,
                    w.transport,
                    w.process,
                    w.flush_interval,
                    w.retry,
                    w.commands,
                )
                .await;
            });
            // A DNS lookup still running on a blocking thread (a resolver
            // timing out) must not hold up `close`.
            rt.shutdown_background();
        })?;
    Ok(thread)
}

/// Marks the reporter stopped if its thread unwinds (a bug, or a panicking
/// custom sampler poll), so spans are counted as dropped, not queued for a
/// worker that is gone.
struct StoppedGuard(Arc<Reporter>);

impl Drop for StoppedGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            log::error!("the Jaeger reporter thread panicked: spans are dropped from now on");
            self.0.stop_taking_spans();
        }
    }
}

async fn poll_sampler(sampler: Arc<RemoteSampler>, refresh: Duration) {
    let client = http_client();
    loop {
        if let Err(e) = sampler.poll_once(&client, Duration::from_secs(10)).await {
            log::info!("keeping the current sampler: {e}");
        }
        tokio::time::sleep(refresh).await;
    }
}

fn header(k: &str, v: &str) -> Result<(http::HeaderName, http::HeaderValue), ConfigError> {
    let name = http::HeaderName::from_bytes(k.trim().as_bytes())
        .map_err(|e| ConfigError::Invalid(format!("header name {k:?}: {e}")))?;
    let value = http::HeaderValue::from_str(v.trim())
        .map_err(|e| ConfigError::Invalid(format!("header {k:?}: {e}")))?;
    Ok((name, value))
}

/// `hostname`, `ip`, `jaeger.version`, `client-uuid`, then the user's tags
/// (which win over the defaults).
fn process_tags(user: Vec<Tag>) -> Vec<Tag> {
    let mut tags = vec![
        Tag::new("jaeger.version", client_version()),
        Tag::new("hostname", hostname()),
        Tag::new("ip", local_ip()),
        Tag::new(
            "client-uuid",
            format!(
                "{:016x}{:016x}",
                crate::ids::random_u64(),
                crate::ids::random_u64()
            ),
        ),
    ];
    for t in user {
        tags.retain(|d| d.key != t.key);
        tags.push(t);
    }
    tags
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|s| s.trim().to_owned())
        })
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The address this host would use to reach others: "connecting" a UDP
/// socket only picks a route, it sends nothing.
fn local_ip() -> String {
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| {
            s.connect("10.255.255.255:9")?;
            s.local_addr()
        })
        .map_or_else(|_| "127.0.0.1".to_owned(), |a| a.ip().to_string())
}

pub(crate) mod env;
pub use env::{builder_from_env, builder_from_vars};

impl JaegerTracer {
    /// A tracer configured from the `JAEGER_*` and `OTEL_*` environment
    /// variables; see [`builder_from_env`].
    pub fn from_env() -> Result<JaegerTracer, ConfigError> {
        builder_from_env()?.build()
    }
}
