//! Samplers: which new traces to record.
//!
//! A sampler decides once, on the root span of a trace (or when an incoming
//! context carries no decision); the decision then travels with the trace in
//! the sampled flag. Sampled root spans get the `sampler.type` and
//! `sampler.param` tags, as in the Jaeger clients.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Instant;

use opentracing_api::{TagValue, TraceId};

mod remote;
pub use remote::{RemoteSampler, SamplingStrategy, StrategyError};

/// The `sampler.param` tag's value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SamplerParam {
    /// For `const`.
    Bool(bool),
    /// For the rates.
    Float(f64),
}

impl From<SamplerParam> for TagValue {
    fn from(p: SamplerParam) -> Self {
        match p {
            SamplerParam::Bool(b) => TagValue::Bool(b),
            SamplerParam::Float(f) => TagValue::F64(f),
        }
    }
}

/// A sampling decision and the tags describing it. `Copy`, so deciding
/// "not sampled" costs nothing to build or drop.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplingDecision {
    /// Whether to record the trace.
    pub sampled: bool,
    /// The `sampler.type` tag (`const`, `probabilistic`, `ratelimiting`,
    /// `lowerbound`).
    pub sampler_type: &'static str,
    /// The `sampler.param` tag.
    pub param: SamplerParam,
}

/// Decides whether a new trace is sampled.
pub trait Sampler: Send + Sync + fmt::Debug {
    /// The decision for a new trace with this id, started by `operation`.
    fn sample(&self, trace_id: TraceId, operation: &str) -> SamplingDecision;

    /// Whether decisions depend on the operation name. When they do not,
    /// the tracer need not build the name of a span it will not record
    /// (it passes an empty one). The default, `true`, is always correct.
    fn uses_operation_name(&self) -> bool {
        true
    }
}

impl<S: Sampler + ?Sized> Sampler for Arc<S> {
    fn sample(&self, trace_id: TraceId, operation: &str) -> SamplingDecision {
        (**self).sample(trace_id, operation)
    }

    fn uses_operation_name(&self) -> bool {
        (**self).uses_operation_name()
    }
}

/// Samples all traces or none.
#[derive(Clone, Copy, Debug)]
pub struct ConstSampler(pub bool);

impl Sampler for ConstSampler {
    fn sample(&self, _: TraceId, _: &str) -> SamplingDecision {
        SamplingDecision {
            sampled: self.0,
            sampler_type: "const",
            param: SamplerParam::Bool(self.0),
        }
    }

    fn uses_operation_name(&self) -> bool {
        false
    }
}

/// Samples a fixed fraction of traces, decided from the trace id itself (no
/// random draw), exactly as the Jaeger clients do, so that every service
/// using the same rate agrees on the same traces.
#[derive(Clone, Copy, Debug)]
pub struct ProbabilisticSampler {
    rate: f64,
    boundary: u64,
}

impl ProbabilisticSampler {
    /// A sampler for `rate` in `[0, 1]` (clamped).
    pub fn new(rate: f64) -> Self {
        let rate = if rate.is_nan() {
            0.0
        } else {
            rate.clamp(0.0, 1.0)
        };
        #[allow(clippy::cast_precision_loss, clippy::cast_sign_loss)]
        let boundary = (0x7fff_ffff_ffff_ffff_u64 as f64 * rate) as u64;
        ProbabilisticSampler { rate, boundary }
    }

    /// The sampling rate.
    pub fn rate(&self) -> f64 {
        self.rate
    }
}

impl Sampler for ProbabilisticSampler {
    fn sample(&self, trace_id: TraceId, _: &str) -> SamplingDecision {
        SamplingDecision {
            sampled: self.rate >= 1.0
                || (self.rate > 0.0 && self.boundary >= trace_id.low() & 0x7fff_ffff_ffff_ffff),
            sampler_type: "probabilistic",
            param: SamplerParam::Float(self.rate),
        }
    }

    fn uses_operation_name(&self) -> bool {
        false
    }
}

/// A token bucket: `rate` credits per second, at most `max(rate, 1)` saved,
/// starting full. A rate of 0 never grants a credit (jaeger-client-go still
/// grants one, because its bucket starts at `max(rate, 1)`).
#[derive(Debug)]
pub(crate) struct RateLimiter {
    rate: f64,
    max_balance: f64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    pub(crate) fn new(rate: f64) -> Self {
        let rate = if rate.is_finite() { rate.max(0.0) } else { 0.0 };
        let max_balance = if rate > 0.0 { rate.max(1.0) } else { 0.0 };
        RateLimiter {
            rate,
            max_balance,
            state: Mutex::new((max_balance, Instant::now())),
        }
    }

    /// Takes one credit if there is one.
    pub(crate) fn check_credit(&self) -> bool {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let elapsed = now.duration_since(s.1).as_secs_f64();
        s.1 = now;
        s.0 = (s.0 + elapsed * self.rate).min(self.max_balance);
        if s.0 >= 1.0 {
            s.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Samples at most `max_traces_per_second` new traces per second.
#[derive(Debug)]
pub struct RateLimitingSampler {
    rate: f64,
    limiter: RateLimiter,
}

impl RateLimitingSampler {
    /// A sampler allowing `max_traces_per_second` (the bucket starts full).
    pub fn new(max_traces_per_second: f64) -> Self {
        RateLimitingSampler {
            rate: max_traces_per_second,
            limiter: RateLimiter::new(max_traces_per_second),
        }
    }
}

impl Sampler for RateLimitingSampler {
    fn sample(&self, _: TraceId, _: &str) -> SamplingDecision {
        SamplingDecision {
            sampled: self.limiter.check_credit(),
            sampler_type: "ratelimiting",
            param: SamplerParam::Float(self.rate),
        }
    }

    fn uses_operation_name(&self) -> bool {
        false
    }
}

/// Probabilistic sampling with a guaranteed minimum rate (Jaeger's
/// `lowerbound`): rare operations still get `lower_bound` traces per second.
#[derive(Debug)]
pub struct GuaranteedThroughputSampler {
    probabilistic: ProbabilisticSampler,
    lower_bound: f64,
    limiter: RateLimiter,
}

impl GuaranteedThroughputSampler {
    /// A sampler with the given rate and lower bound (traces per second).
    pub fn new(rate: f64, lower_bound: f64) -> Self {
        GuaranteedThroughputSampler {
            probabilistic: ProbabilisticSampler::new(rate),
            lower_bound,
            limiter: RateLimiter::new(lower_bound),
        }
    }
}

impl Sampler for GuaranteedThroughputSampler {
    fn sample(&self, trace_id: TraceId, op: &str) -> SamplingDecision {
        let d = self.probabilistic.sample(trace_id, op);
        // The lower bound's credit is taken either way, so the lower bound
        // does not add to traffic that probabilistic sampling already covers.
        let credit = self.limiter.check_credit();
        if d.sampled {
            return d;
        }
        SamplingDecision {
            sampled: credit,
            sampler_type: "lowerbound",
            param: SamplerParam::Float(self.lower_bound),
        }
    }
}

/// Per-operation sampling (Jaeger's adaptive strategy): a
/// [`GuaranteedThroughputSampler`] per operation, at most `max_operations`
/// of them; other operations use the default rate.
#[derive(Debug)]
pub struct PerOperationSampler {
    default_rate: f64,
    lower_bound: f64,
    max_operations: usize,
    operations: RwLock<HashMap<String, Arc<GuaranteedThroughputSampler>>>,
    default: ProbabilisticSampler,
}

impl PerOperationSampler {
    /// A sampler with explicit rates for some operations.
    pub fn new(
        default_rate: f64,
        lower_bound: f64,
        max_operations: usize,
        per_operation: impl IntoIterator<Item = (String, f64)>,
    ) -> Self {
        let operations = per_operation
            .into_iter()
            .take(max_operations)
            .map(|(op, rate)| {
                (
                    op,
                    Arc::new(GuaranteedThroughputSampler::new(rate, lower_bound)),
                )
            })
            .collect();
        PerOperationSampler {
            default_rate,
            lower_bound,
            max_operations,
            operations: RwLock::new(operations),
            default: ProbabilisticSampler::new(default_rate),
        }
    }
}

impl Sampler for PerOperationSampler {
    fn sample(&self, trace_id: TraceId, op: &str) -> SamplingDecision {
        {
            let ops = self
                .operations
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(s) = ops.get(op).cloned() {
                drop(ops);
                return s.sample(trace_id, op);
            }
            // Full: names beyond the bound (ids in names, say) are sampled
            // by the default without taking the write lock, which would
            // serialise every request on them.
            if ops.len() >= self.max_operations {
                drop(ops);
                return self.default.sample(trace_id, op);
            }
        }
        let mut ops = self
            .operations
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if ops.len() >= self.max_operations {
            drop(ops);
            return self.default.sample(trace_id, op);
        }
        let s = ops
            .entry(op.to_owned())
            .or_insert_with(|| {
                Arc::new(GuaranteedThroughputSampler::new(
                    self.default_rate,
                    self.lower_bound,
                ))
            })
            .clone();
        drop(ops);
        s.sample(trace_id, op)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probabilistic_uses_the_trace_id() {
        let s = ProbabilisticSampler::new(0.5);
        assert!(s.sample(TraceId::from_u64(1), "op").sampled);
        assert!(
            !s.sample(TraceId::from_u64(0x7fff_ffff_ffff_fff0), "op")
                .sampled
        );
        assert!(
            ProbabilisticSampler::new(1.0)
                .sample(TraceId::from_u64(u64::MAX), "op")
                .sampled
        );
        assert!(
            !ProbabilisticSampler::new(0.0)
                .sample(TraceId::from_u64(1), "op")
                .sampled
        );
        let n = (1..=10_000u64)
            .filter(|i| {
                s.sample(
                    TraceId::from_u64(i.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
                    "op",
                )
                .sampled
            })
            .count();
        assert!((4_000..6_000).contains(&n), "{n}");
    }

    #[test]
    fn rate_limiter_starts_full_and_refills() {
        let s = RateLimitingSampler::new(2.0);
        let first: Vec<bool> = (0..3)
            .map(|_| s.sample(TraceId::from_u64(1), "op").sampled)
            .collect();
        assert_eq!(first, [true, true, false]);
        std::thread::sleep(std::time::Duration::from_millis(600));
        assert!(s.sample(TraceId::from_u64(1), "op").sampled);
        assert_eq!(
            s.sample(TraceId::from_u64(1), "op").sampler_type,
            "ratelimiting"
        );
    }

    #[test]
    fn lower_bound_and_per_operation() {
        let s = GuaranteedThroughputSampler::new(0.0, 1.0);
        let d = s.sample(TraceId::from_u64(1), "op");
        assert!(d.sampled);
        assert_eq!(d.sampler_type, "lowerbound");
        assert!(!s.sample(TraceId::from_u64(1), "op").sampled);
        let p = PerOperationSampler::new(0.0, 0.0, 2, [("always".to_owned(), 1.0)]);
        assert!(p.sample(TraceId::from_u64(5), "always").sampled);
        assert!(!p.sample(TraceId::from_u64(5), "other").sampled);
        assert!(
            !p.sample(TraceId::from_u64(5), "third").sampled,
            "past max_operations: default rate"
        );
    }
}
