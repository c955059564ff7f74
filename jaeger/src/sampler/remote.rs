//! The remotely controlled sampler: polls the agent's (or collector's)
//! sampling endpoint and applies the strategy it returns.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use opentracing_api::TraceId;
use serde::Deserialize;

use super::{
    PerOperationSampler, ProbabilisticSampler, RateLimitingSampler, Sampler, SamplingDecision,
};
use crate::metrics::Metrics;

/// Most strategy JSON we read (a per-operation strategy for 2000
/// operations fits comfortably).
const MAX_STRATEGY_BYTES: usize = 1 << 20;

/// A strategy as Jaeger's sampling endpoint returns it
/// (`GET /sampling?service=NAME`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct SamplingStrategy {
    /// `PROBABILISTIC` or `RATE_LIMITING` (or 0 / 1 from older agents).
    #[serde(default)]
    pub strategy_type: Option<serde_json::Value>,
    /// For `PROBABILISTIC`.
    #[serde(default)]
    pub probabilistic_sampling: Option<ProbabilisticStrategy>,
    /// For `RATE_LIMITING`.
    #[serde(default)]
    pub rate_limiting_sampling: Option<RateLimitingStrategy>,
    /// Per-operation rates; takes precedence when present.
    #[serde(default)]
    pub operation_sampling: Option<OperationStrategies>,
}

/// `probabilisticSampling`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ProbabilisticStrategy {
    /// The rate in `[0, 1]`.
    pub sampling_rate: f64,
}

/// `rateLimitingSampling`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct RateLimitingStrategy {
    /// Traces per second.
    pub max_traces_per_second: f64,
}

/// `operationSampling`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
#[allow(clippy::struct_field_names)] // Jaeger's JSON names
pub struct OperationStrategies {
    /// Rate for operations not listed.
    pub default_sampling_probability: f64,
    /// Minimum traces per second per operation.
    #[serde(default)]
    pub default_lower_bound_traces_per_second: f64,
    /// The listed operations.
    #[serde(default)]
    pub per_operation_strategies: Vec<OperationStrategy>,
}

/// One entry of `perOperationStrategies`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct OperationStrategy {
    /// The operation name.
    pub operation: String,
    /// Its rate.
    pub probabilistic_sampling: ProbabilisticStrategy,
}

/// Why a strategy could not be fetched or applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StrategyError {
    /// The endpoint could not be reached or answered with an error status.
    #[error("fetching the sampling strategy failed: {0}")]
    Fetch(String),
    /// The body is not a strategy.
    #[error("invalid sampling strategy JSON: {0}")]
    Parse(#[from] serde_json::Error),
    /// The strategy names no sampler this client knows, or has values out
    /// of range.
    #[error("unsupported sampling strategy: {0}")]
    Unsupported(&'static str),
}

impl SamplingStrategy {
    /// Parses strategy JSON.
    pub fn from_json(json: &[u8]) -> Result<Self, StrategyError> {
        Ok(serde_json::from_slice(json)?)
    }

    /// Builds the sampler this strategy describes.
    pub fn to_sampler(&self, max_operations: usize) -> Result<Arc<dyn Sampler>, StrategyError> {
        let valid_rate = |r: f64| (0.0..=1.0).contains(&r);
        if let Some(ops) = &self.operation_sampling {
            if !valid_rate(ops.default_sampling_probability)
                || ops
                    .per_operation_strategies
                    .iter()
                    .any(|o| !valid_rate(o.probabilistic_sampling.sampling_rate))
            {
                return Err(StrategyError::Unsupported("sampling rate outside [0, 1]"));
            }
            return Ok(Arc::new(PerOperationSampler::new(
                ops.default_sampling_probability,
                ops.default_lower_bound_traces_per_second.max(0.0),
                max_operations,
                ops.per_operation_strategies
                    .iter()
                    .map(|o| (o.operation.clone(), o.probabilistic_sampling.sampling_rate)),
            )));
        }
        let kind = match &self.strategy_type {
            Some(serde_json::Value::String(s)) => s.as_str(),
            Some(serde_json::Value::Number(n)) if n.as_u64() == Some(0) => "PROBABILISTIC",
            Some(serde_json::Value::Number(n)) if n.as_u64() == Some(1) => "RATE_LIMITING",
            _ if self.probabilistic_sampling.is_some() => "PROBABILISTIC",
            _ if self.rate_limiting_sampling.is_some() => "RATE_LIMITING",
            _ => "",
        };
        match (
            kind,
            &self.probabilistic_sampling,
            &self.rate_limiting_sampling,
        ) {
            ("PROBABILISTIC", Some(p), _) if valid_rate(p.sampling_rate) => {
                Ok(Arc::new(ProbabilisticSampler::new(p.sampling_rate)))
            }
            ("PROBABILISTIC", Some(_), _) => {
                Err(StrategyError::Unsupported("sampling rate outside [0, 1]"))
            }
            ("RATE_LIMITING", _, Some(r)) if r.max_traces_per_second >= 0.0 => {
                Ok(Arc::new(RateLimitingSampler::new(r.max_traces_per_second)))
            }
            _ => Err(StrategyError::Unsupported(
                "no probabilistic, rate-limiting or per-operation strategy",
            )),
        }
    }
}

/// A sampler controlled by Jaeger's sampling endpoint.
///
/// It starts with the given initial sampler and keeps the last strategy that
/// applied when the endpoint fails, so a dead agent never turns sampling
/// off. The tracer polls it every refresh interval on its background thread;
/// [`apply_json`](Self::apply_json) applies a strategy by hand.
#[derive(Debug)]
pub struct RemoteSampler {
    url: String,
    max_operations: usize,
    current: RwLock<Arc<dyn Sampler>>,
    /// The strategy `current` was built from: an unchanged strategy keeps
    /// the sampler (and its rate limiters' state).
    last: std::sync::Mutex<Option<SamplingStrategy>>,
    metrics: Arc<Metrics>,
}

impl RemoteSampler {
    /// A sampler polling `endpoint?service=SERVICE`.
    pub(crate) fn new(
        endpoint: &str,
        service: &str,
        initial: Arc<dyn Sampler>,
        max_operations: usize,
        metrics: Arc<Metrics>,
    ) -> Self {
        let sep = if endpoint.contains('?') { '&' } else { '?' };
        let service: String = url_encode(service);
        RemoteSampler {
            url: format!("{endpoint}{sep}service={service}"),
            max_operations,
            current: RwLock::new(initial),
            last: std::sync::Mutex::new(None),
            metrics,
        }
    }

    /// The URL polled.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Applies strategy JSON; on error the current sampler is kept.
    pub fn apply_json(&self, json: &[u8]) -> Result<(), StrategyError> {
        let result = SamplingStrategy::from_json(json).and_then(|s| {
            s.to_sampler(self.max_operations)
                .map(|sampler| (s, sampler))
        });
        match result {
            Ok((strategy, sampler)) => {
                let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
                if last.as_ref() != Some(&strategy) {
                    *self.current.write().unwrap_or_else(PoisonError::into_inner) = sampler;
                    *last = Some(strategy);
                }
                Metrics::inc(&self.metrics.sampler_updates_ok);
                Ok(())
            }
            Err(e) => {
                Metrics::inc(&self.metrics.sampler_updates_err);
                Err(e)
            }
        }
    }

    /// Fetches and applies the strategy once.
    pub(crate) async fn poll_once(
        &self,
        client: &crate::transport::HttpClient,
        timeout: Duration,
    ) -> Result<(), StrategyError> {
        match fetch(client, &self.url, timeout).await {
            Ok(body) => {
                Metrics::inc(&self.metrics.sampler_queries_ok);
                self.apply_json(&body)
            }
            Err(e) => {
                Metrics::inc(&self.metrics.sampler_queries_err);
                Err(e)
            }
        }
    }
}

impl Sampler for RemoteSampler {
    fn sample(&self, trace_id: TraceId, operation: &str) -> SamplingDecision {
        let s = self
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        s.sample(trace_id, operation)
    }

    fn uses_operation_name(&self) -> bool {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .uses_operation_name()
    }
}

async fn fetch(
    client: &crate::transport::HttpClient,
    url: &str,
    timeout: Duration,
) -> Result<Vec<u8>, StrategyError> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| StrategyError::Fetch(e.to_string()))?;
    let req = http::Request::get(uri)
        .body(crate::transport::body(Empty::new()))
        .map_err(|e| StrategyError::Fetch(e.to_string()))?;
    let resp = tokio::time::timeout(timeout, client.request(req))
        .await
        .map_err(|_| StrategyError::Fetch("timed out".into()))?
        .map_err(|e| StrategyError::Fetch(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(StrategyError::Fetch(format!("status {}", resp.status())));
    }
    let body = tokio::time::timeout(
        timeout,
        Limited::new(resp.into_body(), MAX_STRATEGY_BYTES).collect(),
    )
    .await
    .map_err(|_| StrategyError::Fetch("timed out reading the body".into()))?
    .map_err(|e| StrategyError::Fetch(e.to_string()))?;
    Ok(body.to_bytes().to_vec())
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampler::ConstSampler;

    #[test]
    fn parses_the_strategies_jaeger_serves() {
        let p = SamplingStrategy::from_json(
            br#"{"strategyType":"PROBABILISTIC","probabilisticSampling":{"samplingRate":1.0}}"#,
        )
        .unwrap();
        assert!(
            p.to_sampler(10)
                .unwrap()
                .sample(TraceId::from_u64(99), "x")
                .sampled
        );
        let r = SamplingStrategy::from_json(
            br#"{"strategyType":1,"rateLimitingSampling":{"maxTracesPerSecond":3}}"#,
        )
        .unwrap();
        assert_eq!(
            r.to_sampler(10)
                .unwrap()
                .sample(TraceId::from_u64(1), "x")
                .sampler_type,
            "ratelimiting"
        );
        let o = SamplingStrategy::from_json(br#"{"strategyType":"PROBABILISTIC","probabilisticSampling":{"samplingRate":0.001},
            "operationSampling":{"defaultSamplingProbability":0.0,"defaultLowerBoundTracesPerSecond":0.0,
            "perOperationStrategies":[{"operation":"GET /dispatch","probabilisticSampling":{"samplingRate":1.0}}]}}"#).unwrap();
        let s = o.to_sampler(10).unwrap();
        assert!(s.sample(TraceId::from_u64(7), "GET /dispatch").sampled);
        assert!(!s.sample(TraceId::from_u64(7), "other").sampled);
        assert!(SamplingStrategy::from_json(
            br#"{"strategyType":"PROBABILISTIC","probabilisticSampling":{"samplingRate":7}}"#
        )
        .unwrap()
        .to_sampler(1)
        .is_err());
        assert!(SamplingStrategy::from_json(b"{}")
            .unwrap()
            .to_sampler(1)
            .is_err());
        assert!(SamplingStrategy::from_json(b"not json").is_err());
    }

    #[test]
    fn a_bad_strategy_keeps_the_current_sampler() {
        let m = Arc::new(Metrics::default());
        let s = RemoteSampler::new(
            "http://127.0.0.1:5778/sampling",
            "front end",
            Arc::new(ConstSampler(true)),
            10,
            m.clone(),
        );
        assert_eq!(
            s.url(),
            "http://127.0.0.1:5778/sampling?service=front%20end"
        );
        assert!(s.apply_json(b"garbage").is_err());
        assert!(s.sample(TraceId::from_u64(1), "x").sampled);
        s.apply_json(
            br#"{"strategyType":"PROBABILISTIC","probabilisticSampling":{"samplingRate":0}}"#,
        )
        .unwrap();
        assert!(!s.sample(TraceId::from_u64(1), "x").sampled);
        assert_eq!(
            (
                m.snapshot().sampler_updates_ok,
                m.snapshot().sampler_updates_err
            ),
            (1, 1)
        );
    }
}
