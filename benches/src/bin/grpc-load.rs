//! A gRPC load generator for `grpc-bench-server`: `bench.Echo/Unary` calls
//! from N concurrent tasks over one tonic channel (one HTTP/2 connection,
//! the calls multiplexed on it), each call carrying a sampled `traceparent`
//! and `uber-trace-id` (the headers `benches/common.sh` gives wrk).
//!
//! ```text
//! grpc-load --target http://127.0.0.1:PORT [--concurrency N] [--duration SECS]
//!           [--warmup SECS] [--rate RPS]
//! ```
//!
//! Defaults: 16 tasks, 10 s, no warm-up. Without `--rate` the load is
//! closed-loop: each task sends its next call as soon as the last one
//! answered, and a call's latency runs from its send. With `--rate` it is
//! open-loop: a pacer releases calls at a constant total rate whatever the
//! server does, the tasks take them from a queue (at most N in flight), and
//! a call's latency runs from its release, so the time it waits in the
//! queue for a free task while the server lags is counted (no coordinated
//! omission). The pacer runs on tokio's timer (1 ms granularity): it wakes
//! at most 1 ms late and then releases every call that is due, and a call's
//! intended send time is that release, so the timer's own lateness is not
//! counted as server latency. Calls still queued 5 s after the end count as
//! errors.
//!
//! The warm-up's calls are not counted. A call counts when it was sent
//! (released) within the measured `--duration`; the load stops sending at
//! its end and waits for the calls in flight. Prints one line:
//!
//! ```text
//! calls=<completed OK> errors=<failed> rps=<calls / duration> p50_us=<..> p99_us=<..>
//! ```
//!
//! and exits with status 1 if no call succeeded. Runs on one thread (a
//! current-thread runtime), so it stays on the core it is pinned to.

use std::sync::Arc;
use std::time::Duration;

use benchmarks::load::{self, Tally, Window, TRACEPARENT, UBER_TRACE_ID};
use grpc_echo_proto::{EchoClient, EchoRequest};
use tokio::sync::{mpsc, Mutex};
use tokio::time::Instant;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};

const USAGE: &str = "usage: grpc-load --target http://127.0.0.1:PORT [--concurrency N] [--duration SECS] [--warmup SECS] [--rate RPS]";

/// A call not answered by then fails.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Open loop: how long after the end queued calls are still sent.
const DRAIN: Duration = Duration::from_secs(5);

struct Args {
    target: String,
    concurrency: usize,
    duration: Duration,
    warmup: Duration,
    rate: Option<f64>,
}

fn args() -> Result<Args, String> {
    let mut target = None;
    let mut a = Args {
        target: String::new(),
        concurrency: 16,
        duration: Duration::from_secs(10),
        warmup: Duration::ZERO,
        rate: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--target" => target = Some(value()?),
            "--concurrency" => {
                let v = value()?;
                a.concurrency = match v.parse() {
                    Ok(n) if n >= 1 => n,
                    _ => return Err(format!("--concurrency: {v} is not a number >= 1")),
                };
            }
            "--duration" => a.duration = load::seconds("--duration", &value()?)?,
            "--warmup" => a.warmup = load::seconds("--warmup", &value()?)?,
            "--rate" => {
                let v = value()?;
                // At least one call per hour; the pacer's interval must fit a Duration.
                a.rate = match v.parse::<f64>() {
                    Ok(r) if r.is_finite() && r * 3600.0 >= 1.0 => Some(r),
                    _ => return Err(format!("--rate: {v} is not a rate in calls/s")),
                };
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    a.target = target.ok_or_else(|| format!("--target is needed\n{USAGE}"))?;
    if a.duration.is_zero() {
        return Err("--duration: must be more than 0 s".into());
    }
    Ok(a)
}

/// One `Unary` call with the trace headers: whether it succeeded.
async fn call(client: &mut EchoClient<Channel>) -> bool {
    let mut req = tonic::Request::new(EchoRequest {
        message: "hello".into(),
        code: 0,
    });
    let md = req.metadata_mut();
    md.insert("traceparent", MetadataValue::from_static(TRACEPARENT));
    md.insert("uber-trace-id", MetadataValue::from_static(UBER_TRACE_ID));
    client.unary(req).await.is_ok()
}

/// Closed loop: the next call as soon as the last one answered.
async fn closed_loop(mut client: EchoClient<Channel>, w: Window) -> Tally {
    let mut t = Tally::default();
    loop {
        let sent = Instant::now();
        if sent >= w.end {
            return t;
        }
        let ok = call(&mut client).await;
        if sent >= w.measure {
            t.record(ok, sent.elapsed());
        }
    }
}

/// A released call: when it was due, and when the pacer released it.
type Release = (Instant, Instant);

/// Releases calls at `rate` per second from `start` until `end`, each as
/// soon as it is due (on tokio's timer), catching up on any that fell due
/// while it slept.
async fn pace(tx: mpsc::UnboundedSender<Release>, rate: f64, start: Instant, end: Instant) {
    let mut n: u64 = 0;
    loop {
        #[allow(clippy::cast_precision_loss)] // exact up to 2^53 calls
        let due = start + Duration::from_secs_f64(n as f64 / rate);
        if due >= end {
            return;
        }
        let now = Instant::now();
        if due > now {
            tokio::time::sleep_until(due).await;
            continue;
        }
        if tx.send((due, now)).is_err() {
            return;
        }
        n += 1;
    }
}

/// Open loop: the calls the pacer releases, one at a time; latency from
/// the release.
async fn open_loop(
    mut client: EchoClient<Channel>,
    queue: Arc<Mutex<mpsc::UnboundedReceiver<Release>>>,
    w: Window,
) -> Tally {
    let mut t = Tally::default();
    loop {
        let next = queue.lock().await.recv().await;
        let Some((due, released)) = next else {
            return t;
        };
        let counted = due >= w.measure;
        if Instant::now() > w.end + DRAIN {
            // Too far behind: not sent, counted as failed.
            if counted {
                t.errors += 1;
            }
            continue;
        }
        let ok = call(&mut client).await;
        if counted {
            t.record(ok, released.elapsed());
        }
    }
}

async fn run(args: Args) -> Result<(u64, String), String> {
    let channel = Endpoint::from_shared(args.target.clone())
        .map_err(|e| format!("--target {}: {e}", args.target))?
        .timeout(CALL_TIMEOUT)
        .connect_timeout(CALL_TIMEOUT)
        .connect()
        .await
        .map_err(|e| format!("connecting to {}: {e}", args.target))?;
    let client = EchoClient::new(channel);

    let start = Instant::now();
    let w = Window::after(start, args.warmup, args.duration);
    let mut tasks = Vec::with_capacity(args.concurrency);
    match args.rate {
        None => {
            for _ in 0..args.concurrency {
                tasks.push(tokio::spawn(closed_loop(client.clone(), w)));
            }
        }
        Some(rate) => {
            let (tx, rx) = mpsc::unbounded_channel();
            let queue = Arc::new(Mutex::new(rx));
            tokio::spawn(pace(tx, rate, start, w.end));
            for _ in 0..args.concurrency {
                tasks.push(tokio::spawn(open_loop(client.clone(), queue.clone(), w)));
            }
        }
    }
    let tally = Tally::gather(tasks).await?;
    Ok(tally.summary(args.duration))
}

fn main() {
    load::main_with("grpc-load", args(), run);
}
