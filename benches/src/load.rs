//! What the load generators (`grpc-load`, `http-load`) share: the trace
//! headers they send, the measured window, per-task counts, the summary
//! line and the process's exit.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// The `traceparent` every call carries: sampled (as in `benches/common.sh`).
pub const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
/// The `uber-trace-id` every call carries: the same trace, sampled.
pub const UBER_TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7:0:1";

/// A flag's value as a duration in (fractional) seconds.
pub fn seconds(flag: &str, v: &str) -> Result<Duration, String> {
    v.parse::<f64>()
        .ok()
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| format!("{flag}: {v} is not a number of seconds"))
}

/// When the counted part of the run starts and ends.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    /// The end of the warm-up.
    pub measure: Instant,
    /// The end of the run.
    pub end: Instant,
}

impl Window {
    /// A warm-up of `warmup` from `start`, then `duration` counted.
    pub fn after(start: Instant, warmup: Duration, duration: Duration) -> Self {
        let measure = start + warmup;
        Window {
            measure,
            end: measure + duration,
        }
    }
}

/// One task's counts.
#[derive(Debug, Default)]
pub struct Tally {
    /// Latencies of the calls that succeeded, in nanoseconds.
    pub latencies: Vec<u64>,
    /// Calls that failed.
    pub errors: u64,
}

impl Tally {
    /// Counts one call.
    pub fn record(&mut self, ok: bool, latency: Duration) {
        if ok {
            self.latencies
                .push(u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX));
        } else {
            self.errors += 1;
        }
    }

    /// Waits for every task and adds up their counts.
    pub async fn gather(tasks: Vec<tokio::task::JoinHandle<Tally>>) -> Result<Tally, String> {
        let mut all = Tally::default();
        for task in tasks {
            let t = task.await.map_err(|e| format!("a load task failed: {e}"))?;
            all.latencies.extend(t.latencies);
            all.errors += t.errors;
        }
        all.latencies.sort_unstable();
        Ok(all)
    }

    /// The calls that succeeded, and the summary line
    /// `calls= errors= rps= p50_us= p99_us=` for a run of `duration`.
    /// The latencies must be sorted ([`gather`](Self::gather) sorts them).
    pub fn summary(&self, duration: Duration) -> (u64, String) {
        let calls = self.latencies.len() as u64;
        #[allow(clippy::cast_precision_loss)] // a count of calls
        let rps = calls as f64 / duration.as_secs_f64();
        let line = format!(
            "calls={calls} errors={} rps={rps:.1} p50_us={:.1} p99_us={:.1}",
            self.errors,
            percentile_us(&self.latencies, 50),
            percentile_us(&self.latencies, 99)
        );
        (calls, line)
    }
}

/// The `p`th percentile (nearest rank) of `sorted`, in microseconds.
#[allow(clippy::cast_precision_loss)] // nanoseconds, far below 2^53
pub fn percentile_us(sorted: &[u64], p: usize) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        n => sorted[(n * p).div_ceil(100).max(1) - 1] as f64 / 1000.0,
    }
}

/// A load generator's `main`: parses its arguments (exit 2 with the
/// message on error), runs `run` on a single-thread runtime (so that it
/// stays on the core it is pinned to), prints the summary line, and exits
/// 1 when the run failed or no call succeeded.
pub fn main_with<A, F>(name: &str, args: Result<A, String>, run: impl FnOnce(A) -> F)
where
    F: Future<Output = Result<(u64, String), String>>,
{
    let args = match args {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{name}: {e}");
            std::process::exit(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{name}: runtime: {e}");
            std::process::exit(1);
        }
    };
    match rt.block_on(run(args)) {
        Ok((calls, line)) => {
            println!("{line}");
            if calls == 0 {
                eprintln!("{name}: no call succeeded");
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("{name}: {e}");
            std::process::exit(1);
        }
    }
}
