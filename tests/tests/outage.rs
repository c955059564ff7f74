//! Collector outages under load, for every exporter and every adapter: a
//! real traced service (axum + `TracingLayer`, tonic + `GrpcServerLayer`,
//! reqwest + `TracingMiddleware`) answers a few thousand requests from
//! concurrent tasks while the collector its `JaegerTracer` exports to is
//! (a) a port nothing listens on, (a') a listener resetting every
//! connection, (b) a listener that accepts and never answers, (c) a
//! collector answering after 2 s, then (d) a live collector.
//!
//! Throughout: no request of the service fails, the queue never holds more
//! than its capacity (sampled on a thread of its own), and after `close`
//! every finished span is reported, dropped or failed, exactly once.
//! During the outage the loss counters rise; once the collector is live
//! spans are reported again, every one of a quiet batch.
//!
//! The exporter's address is fixed when the tracer is built, so the
//! collector is one listener on that port whose behaviour the test switches
//! ([`reliability::Sink`]); the "closed" phase comes first, before it binds
//! the port. Which phases apply per transport:
//!
//! | exporter | (a) closed | (a') reset | (b) never answers | (c) slow | (d) live |
//! | --- | --- | --- | --- | --- | --- |
//! | Jaeger UDP agent | unbound port (ICMP port unreachable) | n/a | n/a: UDP has no answer to wait for | n/a | a bound socket |
//! | Jaeger HTTP collector | yes | yes | yes | yes | yes (202) |
//! | OTLP/HTTP | yes | yes | yes | yes | yes |
//! | OTLP/gRPC | yes | yes | yes | yes | yes (tonic `TraceService`) |
//!
//! UDP cannot tell a lost datagram from a delivered one: while no agent
//! listens, a send draws an ICMP port unreachable that the *next* send on
//! the socket reports, and the transport retries on a new socket, whose
//! first datagram "succeeds". So for UDP the outage shows in
//! `batch_retries`, not in `spans_failed`; the spans sent into the void are
//! counted as reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod reliability;

use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use grpc_echo_proto::EchoRequest;
use http_body_util::{BodyExt, Full};
use opentracing_jaeger::transport::CollectorAuth;
use opentracing_jaeger::{Exporter, JaegerTracer, MetricsSnapshot};
use opentracing_reqwest::TracingMiddleware;
use opentracing_tonic::GrpcServerLayer;
use opentracing_tower::TracingLayer;
use reliability::{
    assert_accounted, close, closed_tcp_port, closed_udp_port, drive, flush, small_queue_tracer,
    snap, wait_until, Call, Mode, Protocol, QueueWatch, Serving, Sink, SinkCounters, UdpSink,
};

/// Queue capacity of the tracer under test.
const QUEUE: usize = 256;
/// Requests per phase.
const N: usize = 1000;
/// Concurrent callers.
const CALLERS: usize = 16;
/// Requests of the quiet batch that must all be reported once live.
const QUIET: usize = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Export {
    UdpAgent,
    JaegerHttp,
    OtlpHttp,
    OtlpGrpc,
}

impl Export {
    fn exporter(self, port: u16) -> Exporter {
        match self {
            Export::UdpAgent => Exporter::UdpAgent {
                addr: format!("127.0.0.1:{port}"),
            },
            Export::JaegerHttp => Exporter::HttpCollector {
                url: format!("http://127.0.0.1:{port}/api/traces"),
                auth: CollectorAuth::None,
            },
            Export::OtlpHttp => Exporter::OtlpHttp {
                url: format!("http://127.0.0.1:{port}/v1/traces"),
                headers: Vec::new(),
            },
            Export::OtlpGrpc => Exporter::OtlpGrpc {
                endpoint: format!("http://127.0.0.1:{port}"),
                headers: Vec::new(),
            },
        }
    }

    fn protocol(self) -> Protocol {
        match self {
            Export::UdpAgent => unreachable!("no TCP collector for UDP"),
            Export::JaegerHttp => Protocol::JaegerThrift,
            Export::OtlpHttp => Protocol::OtlpHttp,
            Export::OtlpGrpc => Protocol::OtlpGrpc,
        }
    }
}

/// The traced service put under load; each call makes exactly one sampled
/// span.
#[derive(Clone, Copy, Debug)]
enum Adapter {
    /// axum with `TracingLayer`, called over HTTP/1: one server span.
    HttpServer,
    /// tonic `bench.Echo` with `GrpcServerLayer`: one server span.
    GrpcServer,
    /// reqwest with `TracingMiddleware` (root spans on) calling an untraced
    /// axum server: one client span.
    ReqwestClient,
}

async fn start(adapter: Adapter, tracer: &JaegerTracer) -> (Call, Serving) {
    match adapter {
        Adapter::HttpServer => {
            let app = Router::new()
                .route("/work", get(|| async { "done" }))
                .layer(TracingLayer::new(tracer.clone()));
            let (addr, serving) = reliability::serve_axum(app).await;
            let client = reliability::http_client();
            let url: http::Uri = format!("http://{addr}/work").parse().unwrap();
            let call: Call = Arc::new(move || {
                let (client, url) = (client.clone(), url.clone());
                Box::pin(async move {
                    let req = http::Request::get(url)
                        .body(Full::new(Bytes::new()))
                        .unwrap();
                    let resp = client.request(req).await.map_err(|e| e.to_string())?;
                    let status = resp.status();
                    let body = resp
                        .into_body()
                        .collect()
                        .await
                        .map_err(|e| e.to_string())?;
                    if status != http::StatusCode::OK || body.to_bytes() != "done" {
                        return Err(format!("HTTP {status}"));
                    }
                    Ok(())
                })
            });
            (call, serving)
        }
        Adapter::GrpcServer => {
            let (addr, serving) = reliability::serve_grpc(
                GrpcServerLayer::new(tracer.clone()),
                reliability::PlainEcho,
            )
            .await;
            let client = reliability::echo_client(reliability::channel(addr).await);
            let call: Call = Arc::new(move || {
                let mut client = client.clone();
                Box::pin(async move {
                    let reply = client
                        .unary(EchoRequest {
                            message: "ping".into(),
                            code: 0,
                        })
                        .await
                        .map_err(|s| format!("{s:?}"))?;
                    if reply.get_ref().message != "ping" {
                        return Err(format!("{reply:?}"));
                    }
                    Ok(())
                })
            });
            (call, serving)
        }
        Adapter::ReqwestClient => {
            let app = Router::new().route("/work", get(|| async { "done" }));
            let (addr, serving) = reliability::serve_axum(app).await;
            let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
                .with(TracingMiddleware::new(tracer.clone()).with_root_spans(true))
                .build();
            let url = format!("http://{addr}/work");
            let call: Call = Arc::new(move || {
                let (client, url) = (client.clone(), url.clone());
                Box::pin(async move {
                    let resp = client.get(&url).send().await.map_err(|e| e.to_string())?;
                    let status = resp.status();
                    let body = resp.text().await.map_err(|e| e.to_string())?;
                    if status != reqwest::StatusCode::OK || body != "done" {
                        return Err(format!("HTTP {status}"));
                    }
                    Ok(())
                })
            });
            (call, serving)
        }
    }
}

/// The run so far: requests made (each one span) and the errors seen.
struct Run {
    tracer: JaegerTracer,
    call: Call,
    requests: usize,
    errors: Vec<String>,
}

impl Run {
    async fn load(&mut self, n: usize, callers: usize) {
        self.errors.extend(drive(&self.call, n, callers).await);
        self.requests += n;
        // Server spans finish as their response bodies end, which may be a
        // moment after the client has read them.
        let (tracer, want) = (self.tracer.clone(), self.requests as u64);
        wait_until("every request's span to finish", || {
            snap(&tracer).spans_finished >= want
        })
        .await;
        assert_eq!(
            snap(&self.tracer).spans_finished,
            want,
            "one sampled span per request"
        );
    }

    fn m(&self) -> MetricsSnapshot {
        snap(&self.tracer)
    }

    /// Logs the counters at a phase boundary (shown with `--nocapture`).
    fn log(&self, phase: &str) {
        let m = self.m();
        eprintln!(
            "{phase}: finished {} reported {} queue_full {} closed {} failed {} retries {} queue {}",
            m.spans_finished,
            m.spans_reported,
            m.spans_dropped_queue_full,
            m.spans_dropped_closed,
            m.spans_failed,
            m.batch_retries,
            self.tracer.queue_len()
        );
    }
}

#[allow(clippy::too_many_lines)] // one scenario, phase by phase
async fn outage(export: Export, adapter: Adapter) {
    let port = if export == Export::UdpAgent {
        closed_udp_port()
    } else {
        closed_tcp_port()
    };
    let tracer = small_queue_tracer("outage", export.exporter(port), QUEUE);
    let watch = QueueWatch::start(&tracer);
    let (call, _serving) = start(adapter, &tracer).await;
    let mut run = Run {
        tracer: tracer.clone(),
        call,
        requests: 0,
        errors: Vec::new(),
    };

    // (a) Nothing listens.
    let a = run.m();
    run.load(N, CALLERS).await;
    if export == Export::UdpAgent {
        wait_until("a refused datagram to be retried", || {
            snap(&tracer).batch_retries > a.batch_retries
        })
        .await;
    } else {
        wait_until("batches to fail while nothing listens", || {
            snap(&tracer).spans_failed > a.spans_failed
        })
        .await;
    }

    run.log("after (a) closed");
    let m_live_start;
    let sink_spans: Option<Arc<SinkCounters>>;
    let udp;
    let _sink;
    if export == Export::UdpAgent {
        // (d) An agent listens. (No reset, hang or slow phase: see above.)
        let sink = UdpSink::start(port).await;
        m_live_start = run.m();
        run.load(N, CALLERS).await;
        let d = sink.datagrams.clone();
        wait_until("datagrams to reach the agent", || {
            d.load(std::sync::atomic::Ordering::SeqCst) > 0
        })
        .await;
        udp = Some(sink);
        sink_spans = None;
        _sink = None;
    } else {
        let sink = Sink::start(port, Mode::Reset, export.protocol()).await;

        // (a') The port answers every connection with a reset.
        let a2 = run.m();
        run.load(N, CALLERS).await;
        wait_until("resets, and batches failing on them", || {
            sink.get(|c| &c.resets) > 0 && snap(&tracer).spans_failed > a2.spans_failed
        })
        .await;

        run.log("after (a') reset");
        // (b) Connections are accepted and never answered: the reporter is
        // stuck on one batch, the queue fills, new spans are dropped.
        sink.set_mode(Mode::Hang);
        run.load(QUEUE, 4).await;
        wait_until("the exporter to hang on a held connection", || {
            sink.get(|c| &c.held) > 0
        })
        .await;
        let b = run.m();
        run.load(N, CALLERS).await;
        let b_end = run.m();
        assert_eq!(
            b_end.spans_reported, b.spans_reported,
            "nothing is reported while the collector never answers"
        );
        assert!(
            b_end.spans_dropped_queue_full - b.spans_dropped_queue_full >= (N - 2 * QUEUE) as u64,
            "a stuck exporter costs dropped spans, not memory: {b:?} -> {b_end:?}"
        );

        run.log("after (b) hang");
        // (c) The collector answers, slowly. Held connections are dropped
        // as the mode changes: the stuck request fails and is retried.
        sink.set_mode(Mode::Slow);
        let c = run.m();
        run.load(N, CALLERS).await;
        wait_until("a slow collector to take a batch", || {
            snap(&tracer).spans_reported > c.spans_reported
        })
        .await;
        assert!(sink.get(|c| &c.answered) > 0);

        run.log("after (c) slow");
        // (d) Live.
        sink.set_mode(Mode::Live);
        m_live_start = run.m();
        run.load(N, CALLERS).await;
        sink_spans = Some(sink.counters.clone());
        udp = None;
        _sink = Some(sink);
    }
    run.log("after (d) live");
    // Whatever the slow phase left in flight is answered; then a quiet
    // batch is delivered in full.
    flush(&tracer).await;
    let d = run.m();
    assert!(
        d.spans_reported > m_live_start.spans_reported,
        "spans flow again once the collector is live: {m_live_start:?} -> {d:?}"
    );
    run.load(QUIET, 4).await;
    let want = d.spans_reported + QUIET as u64;
    wait_until("the quiet batch to be reported", || {
        snap(&tracer).spans_reported >= want
    })
    .await;
    let quiet = run.m();
    assert_eq!(quiet.spans_reported, want, "{d:?} -> {quiet:?}");
    assert_eq!(
        (
            quiet.spans_dropped_queue_full,
            quiet.spans_failed,
            quiet.spans_dropped_closed
        ),
        (
            d.spans_dropped_queue_full,
            d.spans_failed,
            d.spans_dropped_closed
        ),
        "nothing of the quiet batch is lost"
    );

    run.log("after the quiet batch");
    close(&tracer).await;
    run.log("after close");
    let m = run.m();
    let (max_queue, samples) = watch.max();
    drop(watch);
    assert!(
        run.errors.is_empty(),
        "{} of {} requests failed: {:?}",
        run.errors.len(),
        run.requests,
        &run.errors[..run.errors.len().min(5)]
    );
    assert!(samples > 10, "the queue was sampled ({samples} samples)");
    assert!(
        max_queue <= QUEUE,
        "queue_len() reached {max_queue}, over its capacity {QUEUE}"
    );
    assert_eq!(m.spans_finished, run.requests as u64, "{m:?}");
    assert_accounted(&m);
    if export == Export::UdpAgent {
        assert!(m.batch_retries > 0, "{m:?}");
        assert!(
            udp.unwrap()
                .datagrams
                .load(std::sync::atomic::Ordering::SeqCst)
                > 0
        );
    } else {
        assert!(m.spans_failed > 0, "{m:?}");
        assert!(m.spans_dropped_queue_full > 0, "{m:?}");
    }
    if let (Some(c), Export::OtlpHttp | Export::OtlpGrpc) = (sink_spans, export) {
        assert_eq!(
            c.spans.load(std::sync::atomic::Ordering::SeqCst) as u64,
            m.spans_reported,
            "the collector got exactly the spans counted as reported"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_server_survives_a_udp_agent_outage() {
    outage(Export::UdpAgent, Adapter::HttpServer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_server_survives_a_jaeger_collector_outage() {
    outage(Export::JaegerHttp, Adapter::HttpServer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_server_survives_an_otlp_http_outage() {
    outage(Export::OtlpHttp, Adapter::HttpServer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_server_survives_an_otlp_grpc_outage() {
    outage(Export::OtlpGrpc, Adapter::HttpServer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_server_survives_an_otlp_http_outage() {
    outage(Export::OtlpHttp, Adapter::GrpcServer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reqwest_client_survives_an_otlp_http_outage() {
    outage(Export::OtlpHttp, Adapter::ReqwestClient).await;
}

/// One span exported to a collector that holds the connection and then
/// drops it as it comes back live: the batch must be retried on a new
/// connection and reported, not lost.
async fn batch_survives_a_broken_connection(export: Export) {
    let sink = Sink::start(0, Mode::Hang, export.protocol()).await;
    let tracer = JaegerTracer::builder("broken-connection")
        .exporter(export.exporter(sink.addr.port()))
        .flush_interval(std::time::Duration::from_secs(3600))
        .max_retries(3)
        .build()
        .unwrap();
    opentracing_api::TracerExt::span(&tracer, "op")
        .start()
        .finish();
    let flushing = {
        let t = tracer.clone();
        tokio::task::spawn_blocking(move || t.flush(std::time::Duration::from_secs(15)))
    };
    wait_until("the export to hang", || sink.get(|c| &c.held) > 0).await;
    // The collector comes back: the held connection is dropped.
    sink.set_mode(Mode::Live);
    flushing.await.unwrap().unwrap();
    close(&tracer).await;
    let m = snap(&tracer);
    assert_eq!(
        (m.spans_reported, m.spans_failed),
        (1, 0),
        "{export:?}: the batch is retried on a new connection: {m:?}"
    );
    assert_eq!(sink.get(|c| &c.answered), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_exporters_retry_a_batch_whose_connection_broke() {
    batch_survives_a_broken_connection(Export::OtlpHttp).await;
    batch_survives_a_broken_connection(Export::JaegerHttp).await;
}

/// A collector that drops an established connection mid-request (a
/// restart, a load balancer closing idle connections) is a transient
/// failure: every transport retries the batch on a new connection. (For
/// OTLP/gRPC, tonic reports it as `Unknown: transport error`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_grpc_retries_a_batch_whose_connection_broke() {
    batch_survives_a_broken_connection(Export::OtlpGrpc).await;
}
