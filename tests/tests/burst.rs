//! 100 000 spans finished at once from 8 threads on a `JaegerTracer` with a
//! small queue and a live collector that discards what it gets: every span
//! is reported or counted as dropped, exactly once, and what the tracer
//! counts as reported is what the collector received.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod reliability;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Barrier};

use opentracing_api::prelude::*;
use opentracing_jaeger::{Exporter, JaegerTracer};
use reliability::{
    assert_accounted, close, small_queue_tracer, snap, Mode, Protocol, QueueWatch, Sink, UdpSink,
};

const THREADS: usize = 8;
const PER_THREAD: usize = 12_500;
const TOTAL: u64 = (THREADS * PER_THREAD) as u64;
const QUEUE: usize = 256;

/// Finishes `PER_THREAD` spans on each of `THREADS` threads, all released
/// at once; `during` runs on the calling thread once they are released.
fn burst(tracer: &JaegerTracer, during: impl FnOnce()) {
    let start = Arc::new(Barrier::new(THREADS + 1));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (tracer, start) = (tracer.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                for i in 0..PER_THREAD {
                    let mut span = tracer.span("burst").start();
                    if i % 64 == 0 {
                        span.set_tag("thread", i64::try_from(t).unwrap());
                        span.log([("event", "sampled-detail")]);
                    }
                    span.finish();
                }
            })
        })
        .collect();
    start.wait();
    during();
    for t in threads {
        t.join().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_100k_spans_is_fully_accounted_for() {
    let sink = Sink::start(0, Mode::Live, Protocol::OtlpHttp).await;
    let tracer = small_queue_tracer(
        "burst",
        Exporter::OtlpHttp {
            url: format!("http://{}/v1/traces", sink.addr),
            headers: Vec::new(),
        },
        QUEUE,
    );
    let watch = QueueWatch::start(&tracer);
    let t = tracer.clone();
    tokio::task::spawn_blocking(move || burst(&t, || {}))
        .await
        .unwrap();
    close(&tracer).await;
    let (max_queue, _) = watch.max();
    drop(watch);
    let m = snap(&tracer);
    assert_eq!(m.spans_finished, TOTAL, "{m:?}");
    assert_accounted(&m);
    assert_eq!(m.spans_dropped_too_large, 0, "{m:?}");
    assert_eq!(m.spans_failed, 0, "a live collector fails nothing: {m:?}");
    assert_eq!(
        m.spans_dropped_closed, 0,
        "close delivers what is queued: {m:?}"
    );
    assert!(m.spans_reported > 0, "{m:?}");
    assert!(max_queue <= QUEUE, "queue_len() reached {max_queue}");
    assert_eq!(
        sink.counters.spans.load(Ordering::SeqCst) as u64,
        m.spans_reported,
        "the collector received exactly the spans counted as reported"
    );
    assert_eq!(tracer.queue_len(), 0);
}

/// The same burst with `close` called while the threads are finishing
/// spans: those that arrive after it are counted as dropped because the
/// tracer is closed, never lost uncounted or left queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_racing_close_is_fully_accounted_for() {
    let sink = Sink::start(0, Mode::Live, Protocol::OtlpHttp).await;
    let tracer = small_queue_tracer(
        "burst-close",
        Exporter::OtlpHttp {
            url: format!("http://{}/v1/traces", sink.addr),
            headers: Vec::new(),
        },
        QUEUE,
    );
    let t = tracer.clone();
    tokio::task::spawn_blocking(move || {
        let closer = t.clone();
        burst(&t, move || {
            // Once some spans are through, close under the threads' feet.
            while closer.metrics().snapshot().spans_finished < TOTAL / 10 {
                std::thread::yield_now();
            }
            closer.close(std::time::Duration::from_secs(15)).unwrap();
        });
    })
    .await
    .unwrap();
    let m = snap(&tracer);
    assert_eq!(m.spans_finished, TOTAL, "{m:?}");
    assert_accounted(&m);
    assert!(m.spans_dropped_closed > 0, "{m:?}");
    assert_eq!(tracer.queue_len(), 0, "nothing left queued for nobody");
    assert_eq!(
        sink.counters.spans.load(Ordering::SeqCst) as u64,
        m.spans_reported
    );
}

/// The burst through the UDP agent transport, to a socket that discards
/// what it reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_through_the_udp_agent_is_fully_accounted_for() {
    let port = reliability::closed_udp_port();
    let agent = UdpSink::start(port).await;
    let tracer = small_queue_tracer(
        "burst-udp",
        Exporter::UdpAgent {
            addr: format!("127.0.0.1:{port}"),
        },
        QUEUE,
    );
    let t = tracer.clone();
    tokio::task::spawn_blocking(move || burst(&t, || {}))
        .await
        .unwrap();
    close(&tracer).await;
    let m = snap(&tracer);
    assert_eq!(m.spans_finished, TOTAL, "{m:?}");
    assert_accounted(&m);
    assert!(m.spans_reported > 0, "{m:?}");
    assert!(agent.datagrams.load(Ordering::SeqCst) > 0);
}
