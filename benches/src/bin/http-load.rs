//! An HTTP/1.1 load generator for `http-bench-server`: `GET URL` from N
//! concurrent tasks over hyper-util's client (HTTP/1.1, keep-alive, a
//! connection per task: N connections, at times N + 1 in the open loop when
//! a connection is not back in the pool yet), each request carrying a sampled
//! `uber-trace-id` and `traceparent` (the headers `benches/common.sh` gives
//! wrk).
//!
//! ```text
//! http-load --url http://127.0.0.1:PORT/PATH [--concurrency N] [--duration SECS]
//!           [--warmup SECS] [--rate RPS [--tick-us US]]
//! ```
//!
//! Defaults: 32 tasks, 10 s, no warm-up. Without `--rate` the load is
//! closed-loop (like wrk): each task sends its next request as soon as the
//! last one answered, and a request's latency runs from its send. With
//! `--rate` it is open-loop: a pacer releases requests at a constant total
//! rate whatever the server does, the tasks take them from a queue (at most
//! N in flight), and a request's latency runs from its release, its
//! intended send time: the time it waits in the queue for a free
//! connection while the server lags is counted (no coordinated omission).
//!
//! The pacer is a thread of its own: it sleeps until the next request is
//! due, but at least `--tick-us` (default 500 µs), then releases every
//! request that is due. tokio's timer has a 1 ms granularity, which would
//! release bursts of rate/1000; waking for every request (`--tick-us 0`)
//! costs the load generator's core two thread switches and a wake-up of
//! the server per request, which on a 2-vCPU VM makes the load generator,
//! not the server, the limit at half the closed-loop peak. At 50 000
//! requests/s the default releases bursts of about 25. The release time is
//! taken when the pacer wakes, so the pacer's own lateness is not counted
//! as server latency. Everything else (the requests, the connections, the
//! timers) runs on one thread (a current-thread tokio runtime); pin the
//! process to one core with `taskset`.
//!
//! A request fails if it is not answered with a 2xx within 5 s of its send
//! (closed loop) or of its release (open loop); in the open loop a request
//! that waited that long in the queue is not sent and counts as failed.
//! The warm-up's requests are not counted. A request counts when it was
//! sent (released) within the measured `--duration`; the load stops
//! sending at its end and waits for the requests in flight. Before the run
//! one uncounted request checks that the server answers. Prints one line:
//!
//! ```text
//! calls=<completed OK> errors=<failed> rps=<calls / duration> p50_us=<..> p99_us=<..>
//! ```
//!
//! and, on standard error, how many connections it opened (N when every
//! connection was kept alive). Exits with status 1 if no request
//! succeeded, 2 on bad arguments.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use benchmarks::load::{self, Tally, Window, TRACEPARENT, UBER_TRACE_ID};
use bytes::Bytes;
use http::header::HeaderName;
use http::{HeaderValue, Request, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Mutex};
use tokio::time::Instant;
use tower::util::MapResponse;
use tower::ServiceBuilder;

const USAGE: &str = "usage: http-load --url http://127.0.0.1:PORT/PATH [--concurrency N] [--duration SECS] [--warmup SECS] [--rate RPS [--tick-us US]]";

/// A request not answered within this time of its send (closed loop) or
/// release (open loop) fails.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// The highest `--rate`: the pacer queues every due request, so an
/// unreachable rate must not fill memory.
const MAX_RATE: f64 = 1_000_000.0;

/// Connections the client opened.
static CONNECTIONS: AtomicU64 = AtomicU64::new(0);

fn counted(io: TokioIo<TcpStream>) -> TokioIo<TcpStream> {
    CONNECTIONS.fetch_add(1, Ordering::Relaxed);
    io
}

type Connector = MapResponse<HttpConnector, fn(TokioIo<TcpStream>) -> TokioIo<TcpStream>>;
type HttpClient = Client<Connector, Empty<Bytes>>;

struct Args {
    url: Uri,
    concurrency: usize,
    duration: Duration,
    warmup: Duration,
    rate: Option<f64>,
    tick: Duration,
}

fn url(v: &str) -> Result<Uri, String> {
    let uri: Uri = v
        .parse()
        .map_err(|e| format!("--url: {v} is not a URL: {e}"))?;
    match (uri.scheme_str(), uri.authority()) {
        (Some("http"), Some(_)) => Ok(uri),
        (Some("https"), _) => Err(format!("--url: {v}: only http:// is supported")),
        _ => Err(format!(
            "--url: {v} is not an absolute http:// URL (http://HOST:PORT/PATH)"
        )),
    }
}

fn args() -> Result<Args, String> {
    let mut target = None;
    let mut concurrency = 32;
    let mut duration = Duration::from_secs(10);
    let mut warmup = Duration::ZERO;
    let mut rate = None;
    let mut tick = Duration::from_micros(500);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => target = Some(url(&value()?)?),
            "--concurrency" => {
                let v = value()?;
                concurrency = match v.parse() {
                    Ok(n) if (1..=10_000).contains(&n) => n,
                    _ => {
                        return Err(format!(
                            "--concurrency: {v} is not a number from 1 to 10000"
                        ))
                    }
                };
            }
            "--duration" => duration = load::seconds("--duration", &value()?)?,
            "--warmup" => warmup = load::seconds("--warmup", &value()?)?,
            "--rate" => {
                let v = value()?;
                // At least one request per hour; at most MAX_RATE.
                rate = match v.parse::<f64>() {
                    Ok(r) if r.is_finite() && r * 3600.0 >= 1.0 && r <= MAX_RATE => Some(r),
                    _ => {
                        return Err(format!(
                            "--rate: {v} is not a rate in requests/s (1/3600 to {MAX_RATE})"
                        ))
                    }
                };
            }
            "--tick-us" => {
                let v = value()?;
                tick = match v.parse::<u64>() {
                    Ok(us) if us <= 100_000 => Duration::from_micros(us),
                    _ => {
                        return Err(format!(
                            "--tick-us: {v} is not a number of microseconds from 0 to 100000"
                        ))
                    }
                };
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    let url = target.ok_or_else(|| format!("--url is needed\n{USAGE}"))?;
    if duration.is_zero() {
        return Err("--duration: must be more than 0 s".into());
    }
    // Instants are added to these; a week is plenty.
    if duration + warmup > Duration::from_secs(7 * 86_400) {
        return Err("--warmup + --duration: at most a week".into());
    }
    Ok(Args {
        url,
        concurrency,
        duration,
        warmup,
        rate,
        tick,
    })
}

/// `GET url` with the trace headers.
fn request(url: &Uri) -> Request<Empty<Bytes>> {
    let mut req = Request::new(Empty::new());
    url.clone_into(req.uri_mut());
    let headers = req.headers_mut();
    headers.insert(
        HeaderName::from_static("uber-trace-id"),
        HeaderValue::from_static(UBER_TRACE_ID),
    );
    headers.insert(
        HeaderName::from_static("traceparent"),
        HeaderValue::from_static(TRACEPARENT),
    );
    req
}

/// An error and its causes, on one line.
fn describe(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

/// One request, its body read to the end, answered by `deadline`: its
/// status if it was answered, else why not.
async fn call(
    client: &HttpClient,
    url: &Uri,
    deadline: Instant,
) -> Result<http::StatusCode, String> {
    let exchange = async {
        let resp = client
            .request(request(url))
            .await
            .map_err(|e| describe(&e))?;
        let status = resp.status();
        resp.into_body().collect().await.map_err(|e| describe(&e))?;
        Ok(status)
    };
    tokio::time::timeout_at(deadline, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {} s", CALL_TIMEOUT.as_secs())))
}

/// Whether one request succeeded (a 2xx within its deadline).
async fn ok(client: &HttpClient, url: &Uri, deadline: Instant) -> bool {
    matches!(call(client, url, deadline).await, Ok(s) if s.is_success())
}

/// Lets the connection the last response came on go back to the pool
/// before this task asks for one: hyper-util returns an HTTP/1 connection
/// from a task of its own once the response is read, and a checkout that
/// finds the pool empty opens a new connection.
async fn settle() {
    tokio::task::yield_now().await;
}

/// Closed loop: the next request as soon as the last one answered.
async fn closed_loop(client: HttpClient, url: Arc<Uri>, w: Window) -> Tally {
    let mut t = Tally::default();
    loop {
        let sent = Instant::now();
        if sent >= w.end {
            return t;
        }
        let ok = ok(&client, &url, sent + CALL_TIMEOUT).await;
        if sent >= w.measure {
            t.record(ok, sent.elapsed());
        }
        settle().await;
    }
}

/// A released request: when it was due, and when the pacer released it.
type Release = (Instant, Instant);

/// The pacer (a thread of its own): releases requests at `rate` per
/// second from `start` until `end`, each as soon as it is due, catching up
/// on any that fell due while it slept.
fn pace(
    tx: &mpsc::UnboundedSender<Release>,
    rate: f64,
    tick: Duration,
    start: std::time::Instant,
    end: std::time::Instant,
) {
    let mut n: u64 = 0;
    loop {
        #[allow(clippy::cast_precision_loss)] // exact up to 2^53 requests
        let due = start + Duration::from_secs_f64(n as f64 / rate);
        if due >= end {
            return;
        }
        let now = std::time::Instant::now();
        if due > now {
            std::thread::sleep((due - now).max(tick));
            continue;
        }
        if tx
            .send((Instant::from_std(due), Instant::from_std(now)))
            .is_err()
        {
            return;
        }
        n += 1;
    }
}

/// Open loop: the requests the pacer releases, one at a time; latency
/// from the release.
async fn open_loop(
    client: HttpClient,
    url: Arc<Uri>,
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
        let deadline = released + CALL_TIMEOUT;
        if Instant::now() >= deadline {
            // Waited too long for a free connection: not sent, failed.
            if counted {
                t.errors += 1;
            }
            continue;
        }
        let ok = ok(&client, &url, deadline).await;
        if counted {
            t.record(ok, released.elapsed());
        }
        settle().await;
    }
}

async fn run(args: Args) -> Result<(u64, String), String> {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.set_connect_timeout(Some(CALL_TIMEOUT));
    let connector: Connector = ServiceBuilder::new()
        .map_response(counted as fn(_) -> _)
        .service(http);
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(None)
        .pool_max_idle_per_host(args.concurrency)
        .build(connector);
    let url = Arc::new(args.url);

    // One request first, so that an unreachable or failing server is a
    // clear error rather than a run of failures.
    match call(&client, &url, Instant::now() + CALL_TIMEOUT).await {
        Ok(s) if s.is_success() => {}
        Ok(s) => return Err(format!("GET {url}: the server answered {s}")),
        Err(e) => return Err(format!("GET {url}: {e}")),
    }
    settle().await;

    let start = Instant::now();
    let w = Window::after(start, args.warmup, args.duration);
    let mut tasks = Vec::with_capacity(args.concurrency);
    let mut pacer = None;
    match args.rate {
        None => {
            for _ in 0..args.concurrency {
                tasks.push(tokio::spawn(closed_loop(client.clone(), url.clone(), w)));
            }
        }
        Some(rate) => {
            let (tx, rx) = mpsc::unbounded_channel();
            let queue = Arc::new(Mutex::new(rx));
            let (s, e, tick) = (start.into_std(), w.end.into_std(), args.tick);
            pacer = Some(
                std::thread::Builder::new()
                    .name("pacer".into())
                    .spawn(move || pace(&tx, rate, tick, s, e))
                    .map_err(|e| format!("starting the pacer thread: {e}"))?,
            );
            for _ in 0..args.concurrency {
                tasks.push(tokio::spawn(open_loop(
                    client.clone(),
                    url.clone(),
                    queue.clone(),
                    w,
                )));
            }
        }
    }
    let tally = Tally::gather(tasks).await?;
    if let Some(p) = pacer {
        p.join()
            .map_err(|_| "the pacer thread panicked".to_owned())?;
    }
    eprintln!(
        "http-load: {} connection(s) opened for {} task(s)",
        CONNECTIONS.load(Ordering::Relaxed),
        args.concurrency
    );
    Ok(tally.summary(args.duration))
}

fn main() {
    load::main_with("http-load", args(), run);
}
