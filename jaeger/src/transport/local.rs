//! Transports that stay in the process: in memory (tests, an embedded
//! trace view), the log, several at once, nowhere.

use std::sync::{Arc, Mutex, PoisonError};

use opentracing_api::FinishedSpan;

use super::{SendFuture, SendOutcome, Transport};
use crate::process::Process;

/// Keeps the spans it is sent, for tests and embedded trace views.
/// Cloning gives another handle on the same spans.
#[derive(Clone, Debug, Default)]
pub struct InMemoryTransport {
    spans: Arc<Mutex<Vec<FinishedSpan>>>,
    max_spans: Option<usize>,
}

impl InMemoryTransport {
    /// A transport keeping every span.
    pub fn new() -> Self {
        Self::default()
    }

    /// A transport keeping only the newest `max_spans` spans.
    pub fn bounded(max_spans: usize) -> Self {
        InMemoryTransport {
            spans: Arc::default(),
            max_spans: Some(max_spans),
        }
    }

    /// The spans received so far (call [`JaegerTracer::flush`](crate::JaegerTracer::flush) first).
    pub fn spans(&self) -> Vec<FinishedSpan> {
        self.spans
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Forgets the spans.
    pub fn reset(&self) {
        self.spans
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

impl Transport for InMemoryTransport {
    fn send<'a>(&'a mut self, _: &'a Process, spans: &'a [Box<FinishedSpan>]) -> SendFuture<'a> {
        let mut all = self.spans.lock().unwrap_or_else(PoisonError::into_inner);
        all.extend(spans.iter().map(|s| (**s).clone()));
        if let Some(max) = self.max_spans {
            let excess = all.len().saturating_sub(max);
            all.drain(..excess);
        }
        let n = spans.len();
        Box::pin(async move { Ok(SendOutcome::sent(n)) })
    }

    fn name(&self) -> &'static str {
        "in-memory"
    }
}

/// Logs one line per span (`log` crate, target `opentracing_jaeger`, level
/// info), for development.
#[derive(Clone, Copy, Debug, Default)]
pub struct LoggingTransport;

impl Transport for LoggingTransport {
    fn send<'a>(
        &'a mut self,
        process: &'a Process,
        spans: &'a [Box<FinishedSpan>],
    ) -> SendFuture<'a> {
        for s in spans {
            let tags: Vec<String> = s
                .tags
                .iter()
                .map(|t| format!("{}={}", t.key, t.value))
                .collect();
            log::info!(
                "span {}:{}:{} {} {:?} service={} [{}] {} logs",
                s.context.trace_id(),
                s.context.span_id(),
                s.parent_span_id().unwrap_or_default(),
                s.operation_name,
                s.duration(),
                process.service_name,
                tags.join(" "),
                s.logs.len()
            );
        }
        let n = spans.len();
        Box::pin(async move { Ok(SendOutcome::sent(n)) })
    }

    fn name(&self) -> &'static str {
        "logging"
    }
}

/// Sends every batch through several transports: the first is the
/// exporter, whose outcome is reported; the others (logging, the in-memory
/// view) get each batch once, even when the exporter's send is retried.
pub struct CompositeTransport(pub Vec<Box<dyn Transport>>);

impl Transport for CompositeTransport {
    fn send<'a>(
        &'a mut self,
        process: &'a Process,
        spans: &'a [Box<FinishedSpan>],
    ) -> SendFuture<'a> {
        Box::pin(async move {
            let mut members = self.0.iter_mut();
            let primary = match members.next() {
                Some(p) => p.send(process, spans).await,
                None => Ok(SendOutcome::default()),
            };
            for t in members {
                if let Err(e) = t.send(process, spans).await {
                    log::warn!("{} transport: {e}", t.name());
                }
            }
            primary
        })
    }

    fn resend<'a>(
        &'a mut self,
        process: &'a Process,
        spans: &'a [Box<FinishedSpan>],
    ) -> SendFuture<'a> {
        Box::pin(async move {
            match self.0.first_mut() {
                Some(p) => p.resend(process, spans).await,
                None => Ok(SendOutcome::default()),
            }
        })
    }

    fn name(&self) -> &'static str {
        self.0.first().map_or("composite", |t| t.name())
    }
}

/// Discards every batch ([`Exporter::None`](crate::Exporter::None)).
#[derive(Clone, Copy, Debug, Default)]
pub struct NullTransport;

impl Transport for NullTransport {
    fn send<'a>(&'a mut self, _: &'a Process, _: &'a [Box<FinishedSpan>]) -> SendFuture<'a> {
        Box::pin(async { Ok(SendOutcome::default()) })
    }

    fn name(&self) -> &'static str {
        "none"
    }
}
