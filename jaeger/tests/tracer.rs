//! The tracer end to end: sampling, propagation policy, debug ids, baggage
//! restrictions, the reporting pipeline (queue, flush, close, outage) and
//! the remote sampler, against real sockets where there is a peer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{closed_port, HttpServer};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentracing_api::prelude::*;
use opentracing_api::ExtractPolicy;
use opentracing_api::{Format, TagValue};
use opentracing_jaeger::sampler::{ConstSampler, ProbabilisticSampler};
use opentracing_jaeger::{Exporter, InMemoryTransport, JaegerTracer, DEBUG_ID_TAG};
use prost::Message;

const T: Duration = Duration::from_secs(10);

fn tracer_with(store: &InMemoryTransport) -> opentracing_jaeger::JaegerTracerBuilder {
    JaegerTracer::builder("test-service").transport(store.clone())
}

fn headers(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn sampled_roots_carry_sampler_tags_and_children_join_the_trace() {
    let store = InMemoryTransport::new();
    let tracer = tracer_with(&store)
        .sampler(ProbabilisticSampler::new(1.0))
        .build()
        .unwrap();
    let root = tracer.span("root").start();
    let child = tracer
        .span("child")
        .child_of(root.context())
        .tag(tags::COMPONENT, "db")
        .start();
    assert_eq!(child.context().trace_id(), root.context().trace_id());
    assert!(
        !root.context().trace_id().is_64bit(),
        "128-bit ids by default"
    );
    let (root_id, child_parent) = (root.context().span_id(), child.context().parent_id());
    child.finish();
    root.finish();
    tracer.flush(T).unwrap();
    let spans = store.spans();
    assert_eq!(spans.len(), 2);
    assert_eq!(child_parent, root_id);
    let root = spans.iter().find(|s| s.operation_name == "root").unwrap();
    assert_eq!(
        root.tag("sampler.type"),
        Some(&TagValue::from("probabilistic"))
    );
    assert_eq!(root.tag("sampler.param"), Some(&TagValue::F64(1.0)));
    let child = spans.iter().find(|s| s.operation_name == "child").unwrap();
    assert_eq!(
        child.tag("sampler.type"),
        None,
        "only the root carries sampler tags"
    );
    assert_eq!(child.parent_span_id(), Some(root.context.span_id()));
    let m = tracer.metrics().snapshot();
    assert_eq!(
        (
            m.traces_started_sampled,
            m.spans_started_sampled,
            m.spans_reported
        ),
        (1, 2, 2)
    );
}

#[test]
fn unsampled_traces_propagate_but_report_nothing() {
    let store = InMemoryTransport::new();
    let tracer = tracer_with(&store)
        .sampler(ConstSampler(false))
        .build()
        .unwrap();
    let span = tracer.span("root").start();
    assert!(!span.is_recording());
    assert!(span.context().is_valid() && !span.context().is_sampled());
    let mut h = HashMap::new();
    tracer.inject(span.context(), Format::HttpHeaders, &mut h);
    assert!(h["uber-trace-id"].ends_with(":0"));
    span.finish();
    tracer.flush(T).unwrap();
    assert!(store.spans().is_empty());
    assert_eq!(tracer.metrics().snapshot().spans_started_unsampled, 1);
}

#[test]
fn upstream_decisions_are_respected_or_not_per_policy() {
    let store = InMemoryTransport::new();
    let trusting = tracer_with(&store)
        .sampler(ConstSampler(true))
        .build()
        .unwrap();
    let h = headers(&[("uber-trace-id", "abc:def:0:0"), ("uberctx-tenant", "acme")]);
    let parent = trusting.extract(Format::HttpHeaders, &h).unwrap();
    let s = trusting.span("server").with_extracted(parent).start();
    assert!(!s.context().is_sampled(), "the caller said not sampled");
    assert_eq!(s.context().trace_id().low(), 0xabc);
    assert_eq!(s.baggage_item("tenant"), Some("acme"));

    let untrusting = tracer_with(&store)
        .sampler(ConstSampler(true))
        .extract_policy(ExtractPolicy::untrusted())
        .build()
        .unwrap();
    let parent = untrusting.extract(Format::HttpHeaders, &h).unwrap();
    let s = untrusting.span("server").with_extracted(parent).start();
    assert!(s.context().is_sampled(), "our sampler decided");
    assert_eq!(
        s.context().trace_id().low(),
        0xabc,
        "the trace still continues"
    );
    assert_eq!(
        s.baggage_item("tenant"),
        None,
        "untrusted baggage is dropped"
    );
}

#[test]
fn debug_ids_force_sampling_behind_a_throttle() {
    let store = InMemoryTransport::new();
    let tracer = tracer_with(&store)
        .sampler(ConstSampler(false))
        .debug_traces_per_second(1.0)
        .build()
        .unwrap();
    let h = headers(&[("jaeger-debug-id", "req-42")]);
    for _ in 0..3 {
        let cx = tracer.extract(Format::HttpHeaders, &h).unwrap();
        tracer.span("debugged").with_extracted(cx).start().finish();
    }
    tracer.flush(T).unwrap();
    let spans = store.spans();
    assert_eq!(spans.len(), 1, "one debug trace per second");
    assert!(spans[0].context.is_debug() && spans[0].context.is_sampled());
    assert_eq!(
        spans[0].tag(DEBUG_ID_TAG),
        Some(&TagValue::from("req-42".to_owned()))
    );
    assert_eq!(tracer.metrics().snapshot().throttled_debug_spans, 2);
}

#[test]
fn sampling_priority_overrides_the_sampler() {
    let store = InMemoryTransport::new();
    let tracer = tracer_with(&store)
        .sampler(ConstSampler(false))
        .build()
        .unwrap();
    tracer
        .span("forced")
        .tag(tags::SAMPLING_PRIORITY, 1)
        .start()
        .finish();
    let on = JaegerTracer::builder("x")
        .transport(store.clone())
        .sampler(ConstSampler(true))
        .build()
        .unwrap();
    let mut s = on.span("dropped").start();
    s.set_tag(tags::SAMPLING_PRIORITY, 0);
    s.finish();
    tracer.flush(T).unwrap();
    on.flush(T).unwrap();
    let names: Vec<_> = store
        .spans()
        .into_iter()
        .map(|s| s.operation_name)
        .collect();
    assert_eq!(names, ["forced"]);
}

#[test]
fn baggage_restrictions_drop_and_count() {
    let store = InMemoryTransport::new();
    let tracer = tracer_with(&store)
        .baggage_allowlist(["tenant"])
        .build()
        .unwrap();
    let h = headers(&[
        ("uber-trace-id", "1:2:0:1"),
        ("uberctx-tenant", "acme"),
        ("uberctx-secret", "x"),
    ]);
    let cx = tracer.extract(Format::HttpHeaders, &h).unwrap().unwrap();
    assert_eq!(cx.baggage_item("tenant"), Some("acme"));
    assert_eq!(cx.baggage_item("secret"), None);
    assert_eq!(tracer.metrics().snapshot().baggage_dropped, 1);
}

#[test]
fn malformed_incoming_contexts_are_counted() {
    let tracer = JaegerTracer::builder("x")
        .exporter(Exporter::None)
        .build()
        .unwrap();
    let h = headers(&[("uber-trace-id", "zzz")]);
    assert!(tracer.extract(Format::HttpHeaders, &h).is_err());
    assert_eq!(tracer.metrics().snapshot().span_context_decoding_errors, 1);
}

#[test]
fn a_full_queue_drops_and_counts_and_close_delivers_the_rest() {
    let store = InMemoryTransport::new();
    let tracer = tracer_with(&store)
        .queue_size(10)
        .batch_size(1000)
        .flush_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    // The worker drains once as it starts: let that pass first.
    tracer.flush(T).unwrap();
    // A full queue (10) also wakes the worker, which may drain while the
    // spans are being finished: the bound and the accounting must hold
    // whatever it manages to take.
    for i in 0..1000 {
        tracer.span(format!("span-{i}")).start().finish();
        assert!(tracer.queue_len() <= 10, "the queue is bounded");
    }
    tracer.close(T).unwrap();
    // Everything queued before close is delivered: nothing is dropped as
    // closed, and every span is either reported (and in the store) or was
    // refused by the full queue.
    assert_eq!(tracer.queue_len(), 0);
    let m = tracer.metrics().snapshot();
    assert_eq!(m.spans_finished, 1000);
    assert!(m.spans_dropped_queue_full > 0, "{m:?}");
    assert_eq!(m.spans_dropped_queue_full + m.spans_reported, 1000, "{m:?}");
    assert_eq!(m.spans_dropped_closed, 0, "{m:?}");
    assert_eq!(m.spans_reported as usize, store.spans().len());
    assert!(tracer.flush(T).is_err(), "closed");
}

fn otlp_spans(server: &HttpServer) -> usize {
    server
        .requests()
        .iter()
        .map(|r| {
            let req = ExportTraceServiceRequest::decode(r.body.as_slice()).unwrap();
            req.resource_spans
                .iter()
                .flat_map(|rs| &rs.scope_spans)
                .map(|ss| ss.spans.len())
                .sum::<usize>()
        })
        .sum()
}

#[test]
fn outage_costs_drops_not_blocking_and_reporting_resumes() {
    let port = closed_port();
    let tracer = JaegerTracer::builder("outage")
        .exporter(Exporter::OtlpHttp {
            url: format!("http://127.0.0.1:{port}/v1/traces"),
            headers: vec![],
        })
        .queue_size(1000)
        .batch_size(100)
        .flush_interval(Duration::from_millis(50))
        .max_retries(1)
        .build()
        .unwrap();
    for _ in 0..100_000 {
        tracer.span("during outage").start().finish();
    }
    // Memory stays bounded by the queue; the losses are counted.
    assert!(tracer.queue_len() <= 1000);
    tracer.flush(T).unwrap();
    let m = tracer.metrics().snapshot();
    assert_eq!(m.spans_finished, 100_000);
    assert_eq!(m.spans_reported, 0);
    assert_eq!(m.spans_dropped_queue_full + m.spans_failed, 100_000);
    assert!(m.batches_failed > 0 && m.batch_retries > 0);

    // The collector comes back on the same address.
    let server = HttpServer::start_on(&format!("127.0.0.1:{port}"), 200, "");
    for _ in 0..50 {
        tracer.span("after outage").start().finish();
    }
    tracer.flush(T).unwrap();
    assert_eq!(otlp_spans(&server), 50);
    assert_eq!(tracer.metrics().snapshot().spans_reported, 50);
    let r = &server.requests()[0];
    assert_eq!(r.path, "/v1/traces");
    assert!(r
        .headers
        .contains(&("content-type".into(), "application/x-protobuf".into())));
}

#[test]
fn retryable_statuses_are_retried_and_permanent_ones_are_not() {
    // One span exported over OTLP/HTTP to `server`, with two retries.
    let send_one = |server: &HttpServer| {
        let tracer = JaegerTracer::builder("retry")
            .exporter(Exporter::OtlpHttp {
                url: server.url("/v1/traces"),
                headers: vec![],
            })
            .max_retries(2)
            .build()
            .unwrap();
        tracer.span("x").start().finish();
        tracer.flush(T).unwrap();
        tracer
    };
    let unavailable = HttpServer::start(503, "");
    send_one(&unavailable);
    assert_eq!(unavailable.requests().len(), 3, "1 try + 2 retries");
    let bad = HttpServer::start(400, "");
    let tracer = send_one(&bad);
    assert_eq!(bad.requests().len(), 1, "400 is not retried");
    assert_eq!(tracer.metrics().snapshot().spans_failed, 1);
}

#[test]
fn otlp_http_partial_success_counts_rejected_spans_as_failed() {
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTracePartialSuccess, ExportTraceServiceResponse,
    };
    let reply = ExportTraceServiceResponse {
        partial_success: Some(ExportTracePartialSuccess {
            rejected_spans: 2,
            error_message: "2 spans are too old".into(),
        }),
    }
    .encode_to_vec();
    let server = HttpServer::start_with("127.0.0.1:0", 200, "application/x-protobuf", reply);
    let tracer = JaegerTracer::builder("partial")
        .exporter(Exporter::OtlpHttp {
            url: server.url("/v1/traces"),
            headers: vec![],
        })
        .flush_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    tracer.flush(T).unwrap();
    for _ in 0..5 {
        tracer.span("op").start().finish();
    }
    tracer.flush(T).unwrap();
    assert_eq!(server.requests().len(), 1, "one batch");
    assert_eq!(otlp_spans(&server), 5);
    let m = tracer.metrics().snapshot();
    assert_eq!((m.spans_reported, m.spans_failed), (3, 2), "{m:?}");
    assert_eq!((m.batches_sent, m.batches_failed), (0, 1), "{m:?}");
    assert_eq!(m.batch_retries, 0, "a partial success is not retried");
    assert_accounted(&m);
}

#[test]
fn otlp_http_replies_that_do_not_decode_count_the_batch_as_sent() {
    for (content_type, body) in [
        ("application/x-protobuf", vec![0x0a, 0x05, 0x08]),
        ("application/x-protobuf", vec![0xff; 12]),
        (
            "application/x-protobuf",
            b"<html>bad gateway</html>".to_vec(),
        ),
        ("text/plain", vec![0x0a, 0x02, 0x08, 0x02]),
    ] {
        let server = HttpServer::start_with("127.0.0.1:0", 200, content_type, body);
        let tracer = JaegerTracer::builder("garbage")
            .exporter(Exporter::OtlpHttp {
                url: server.url("/v1/traces"),
                headers: vec![],
            })
            .build()
            .unwrap();
        for _ in 0..3 {
            tracer.span("op").start().finish();
        }
        tracer.flush(T).unwrap();
        let m = tracer.metrics().snapshot();
        assert_eq!((m.spans_reported, m.spans_failed), (3, 0), "{m:?}");
    }
}

#[test]
fn a_restarted_udp_agent_gets_the_batch_its_absence_refused() {
    let bind = |addr: &str| {
        let s = std::net::UdpSocket::bind(addr).unwrap();
        s.set_read_timeout(Some(T)).unwrap();
        s
    };
    let agent = bind("127.0.0.1:0");
    let addr = agent.local_addr().unwrap().to_string();
    let tracer = JaegerTracer::builder("udp-restart")
        .exporter(Exporter::UdpAgent { addr: addr.clone() })
        .flush_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    let mut buf = vec![0; 65_536];
    tracer.span("before").start().finish();
    tracer.flush(T).unwrap();
    assert!(agent.recv(&mut buf).unwrap() > 0);
    // The agent goes away: this datagram draws an ICMP port unreachable,
    // which the socket reports on its next send.
    drop(agent);
    tracer.span("lost in the restart").start().finish();
    tracer.flush(T).unwrap();
    let agent = bind(&addr);
    tracer.span("after").start().finish();
    tracer.flush(T).unwrap();
    assert!(
        agent.recv(&mut buf).unwrap() > 0,
        "the retry reached the agent"
    );
    let m = tracer.metrics().snapshot();
    assert_eq!((m.spans_reported, m.spans_failed), (3, 0), "{m:?}");
    assert_eq!(m.batch_retries, 1, "{m:?}");
}

#[test]
fn udp_packet_size_is_capped_at_the_largest_datagram() {
    use opentracing_jaeger::transport::{UdpAgentTransport, MAX_PACKET_SIZE};
    let agent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    agent.set_read_timeout(Some(T)).unwrap();
    let transport =
        UdpAgentTransport::with_max_packet_size(agent.local_addr().unwrap().to_string(), 1 << 20);
    assert_eq!(transport.max_packet_size(), MAX_PACKET_SIZE);
    assert_eq!(MAX_PACKET_SIZE, 65_507);
    let tracer = JaegerTracer::builder("udp-cap")
        .transport(transport)
        .flush_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    tracer.flush(T).unwrap();
    // Two spans of ~40 kB (tag values are cut at 4 kB: ten tags each): one
    // datagram would be too large to send, two are not.
    for name in ["a", "b"] {
        let mut span = tracer.span(name);
        for i in 0..10 {
            span = span.tag(format!("t{i}"), "x".repeat(4000));
        }
        span.start().finish();
    }
    tracer.flush(T).unwrap();
    let mut buf = vec![0; 1 << 17];
    for _ in 0..2 {
        let n = agent.recv(&mut buf).unwrap();
        assert!(n > 40_000 && n <= MAX_PACKET_SIZE, "{n}");
    }
    let m = tracer.metrics().snapshot();
    assert_eq!((m.spans_reported, m.spans_failed), (2, 0), "{m:?}");
}

fn wait_until(mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < T, "timed out");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn remote_sampler_applies_strategies_and_survives_the_endpoint_going_away() {
    let server = HttpServer::start(
        200,
        r#"{"strategyType":"PROBABILISTIC","probabilisticSampling":{"samplingRate":1.0}}"#,
    );
    let store = InMemoryTransport::new();
    let tracer = tracer_with(&store)
        .remote_sampler(
            server.url("/sampling"),
            Duration::from_millis(50),
            ConstSampler(false),
        )
        .build()
        .unwrap();
    wait_until(|| tracer.metrics().snapshot().sampler_updates_ok >= 1);
    let req = &server.requests()[0];
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        ("GET", "/sampling?service=test-service")
    );
    assert!(tracer.span("now sampled").start().is_recording());
    drop(server);
    wait_until(|| tracer.metrics().snapshot().sampler_queries_err >= 2);
    let span = tracer.span("still sampled").start();
    assert!(span.is_recording(), "the last strategy is kept");
    assert!(span.context().flags().is_sampled());
}

#[test]
fn sixty_four_bit_ids_on_request() {
    let tracer = JaegerTracer::builder("x")
        .exporter(Exporter::None)
        .trace_id_128bit(false)
        .build()
        .unwrap();
    assert!(tracer.span("x").start().context().trace_id().is_64bit());
}

#[test]
fn absurd_sizes_are_clamped_not_allocated() {
    let store = InMemoryTransport::new();
    let tracer = tracer_with(&store)
        .queue_size(4)
        .batch_size(usize::MAX)
        .build()
        .unwrap();
    for _ in 0..3 {
        tracer.span("x").start().finish();
    }
    tracer.flush(T).unwrap();
    assert_eq!(store.spans().len(), 3);
}

#[test]
fn flush_returns_under_steady_load() {
    let tracer = JaegerTracer::builder("busy")
        .exporter(Exporter::None)
        .build()
        .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (t, s) = (tracer.clone(), stop.clone());
    let producer = std::thread::spawn(move || {
        while !s.load(std::sync::atomic::Ordering::Relaxed) {
            t.span("load").start().finish();
        }
    });
    std::thread::sleep(Duration::from_millis(50));
    for _ in 0..5 {
        tracer
            .flush(T)
            .expect("flush answers while spans keep arriving");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    producer.join().unwrap();
    tracer.close(T).unwrap();
}

#[test]
fn waiting_without_a_limit_is_allowed() {
    let store = InMemoryTransport::new();
    let tracer = tracer_with(&store).build().unwrap();
    tracer.span("a").start().finish();
    tracer.flush(Duration::MAX).unwrap();
    tracer.span("b").start().finish();
    tracer.close(Duration::MAX).unwrap();
    assert_eq!(store.spans().len(), 2);
}

#[test]
fn spans_after_close_are_dropped_and_counted() {
    let store = InMemoryTransport::new();
    let tracer = tracer_with(&store).build().unwrap();
    tracer.close(T).unwrap();
    tracer.span("late").start().finish();
    assert_eq!(tracer.queue_len(), 0);
    let m = tracer.metrics().snapshot();
    assert_eq!((m.spans_dropped_closed, m.spans_dropped_queue_full), (1, 0));
    assert!(tracer
        .metrics()
        .prometheus_text()
        .contains("jaeger_tracer_reporter_spans_total{result=\"dropped\",reason=\"closed\"} 1\n"));
}

/// Every finished span is in exactly one outcome counter.
fn assert_accounted(m: &opentracing_jaeger::MetricsSnapshot) {
    assert_eq!(
        m.spans_reported
            + m.spans_dropped_queue_full
            + m.spans_dropped_closed
            + m.spans_dropped_too_large
            + m.spans_failed,
        m.spans_finished,
        "{m:?}"
    );
}

#[test]
fn spans_racing_with_close_are_counted_as_closed_not_queue_full() {
    for _ in 0..20 {
        let store = InMemoryTransport::new();
        // The queue holds every span these threads can finish: none is
        // dropped because it was full.
        let tracer = std::sync::Arc::new(
            tracer_with(&store)
                .queue_size(1 << 16)
                .batch_size(64)
                .build()
                .unwrap(),
        );
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (tracer, stop) = (tracer.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut n = 0;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 10_000 {
                        tracer.span("racing").start().finish();
                        n += 1;
                    }
                })
            })
            .collect();
        // Close while they are finishing spans.
        std::thread::sleep(Duration::from_micros(300));
        tracer.close(T).unwrap();
        // Some more after the close, then stop.
        std::thread::sleep(Duration::from_millis(2));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in threads {
            t.join().unwrap();
        }
        tracer.span("after close").start().finish();
        let m = tracer.metrics().snapshot();
        assert_eq!(m.spans_dropped_queue_full, 0, "{m:?}");
        assert!(m.spans_dropped_closed > 0, "{m:?}");
        assert_eq!(tracer.queue_len(), 0, "nothing left queued for nobody");
        assert_eq!(m.spans_reported as usize, store.spans().len());
        assert_accounted(&m);
    }
}

#[test]
fn a_zero_flush_interval_is_clamped_not_a_dead_worker() {
    let store = InMemoryTransport::new();
    let tracer = tracer_with(&store)
        .flush_interval(Duration::ZERO)
        .build()
        .unwrap();
    tracer.span("x").start().finish();
    tracer.flush(T).unwrap();
    assert_eq!(store.spans().len(), 1);
}

#[test]
fn retries_do_not_duplicate_spans_in_secondary_transports() {
    let unavailable = HttpServer::start(503, "");
    let store = InMemoryTransport::new();
    let tracer = JaegerTracer::builder("dup")
        .exporter(Exporter::OtlpHttp {
            url: unavailable.url("/v1/traces"),
            headers: vec![],
        })
        .keep_in_memory(store.clone())
        .max_retries(2)
        .build()
        .unwrap();
    tracer.span("once").start().finish();
    tracer.flush(T).unwrap();
    assert_eq!(unavailable.requests().len(), 3, "the exporter is retried");
    assert_eq!(
        store.spans().len(),
        1,
        "the in-memory view gets the span once"
    );
    assert_eq!(
        tracer.metrics().snapshot().spans_failed,
        1,
        "the exporter's outcome is reported"
    );
}

#[test]
fn set_baggage_item_applies_the_allowlist_and_counts_refusals() {
    let store = InMemoryTransport::new();
    let tracer = tracer_with(&store)
        .baggage_allowlist(["tenant"])
        .build()
        .unwrap();
    let mut span = tracer.span("x").start();
    span.set_baggage_item("tenant", "acme").unwrap();
    assert_eq!(
        span.set_baggage_item("secret", "x"),
        Err(opentracing_api::BaggageError::KeyNotAllowed)
    );
    assert!(span.set_baggage_item("tenant", "v".repeat(10_000)).is_err());
    assert_eq!(span.baggage_item("tenant"), Some("acme"));
    assert_eq!(tracer.metrics().snapshot().baggage_dropped, 2);
}

#[test]
fn default_propagation_reads_b3_but_sends_jaeger_and_w3c() {
    let tracer = JaegerTracer::builder("x")
        .exporter(Exporter::None)
        .build()
        .unwrap();
    let incoming = headers(&[
        ("x-b3-traceid", "4bf92f3577b34da6a3ce929d0e0e4736"),
        ("x-b3-spanid", "00f067aa0ba902b7"),
        ("x-b3-sampled", "1"),
    ]);
    let parent = tracer
        .extract(Format::HttpHeaders, &incoming)
        .unwrap()
        .unwrap();
    assert_eq!(
        parent.trace_id().to_hex32(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    let span = tracer.span("x").child_of(&parent).start();
    let mut out = HashMap::new();
    tracer.inject(span.context(), Format::HttpHeaders, &mut out);
    let mut keys: Vec<_> = out.keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["traceparent", "uber-trace-id"]);
}

#[test]
fn baggage_restrictions_hold_on_unsampled_spans_too() {
    let tracer = JaegerTracer::builder("x")
        .exporter(Exporter::None)
        .sampler(ConstSampler(false))
        .baggage_allowlist(["tenant"])
        .build()
        .unwrap();
    let mut span = tracer.span("x").start();
    assert!(!span.is_recording());
    span.set_baggage_item("tenant", "acme").unwrap();
    assert_eq!(
        span.set_baggage_item("secret", "x"),
        Err(opentracing_api::BaggageError::KeyNotAllowed)
    );
    assert_eq!(span.baggage_item("secret"), None);
    assert_eq!(tracer.metrics().snapshot().baggage_dropped, 1);
}

/// Delivered spans are reused (their boxes come back to the request path):
/// a reused box must not carry anything of the span it held before.
#[test]
fn reused_span_boxes_carry_nothing_over() {
    let store = InMemoryTransport::new();
    let tracer = tracer_with(&store).build().unwrap();
    for i in 0..64 {
        let parent = tracer.span("old-parent").start();
        let mut old = tracer
            .span(format!("old-{i}"))
            .child_of(parent.context())
            .start();
        old.set_tag("old.tag", format!("secret-{i}"));
        old.log([("event", "old-event")]);
        old.finish();
        parent.finish();
    }
    tracer.flush(T).unwrap();
    store.reset();
    for i in 0..64 {
        let mut span = tracer
            .span(format!("new-{i}"))
            .ignore_current_span()
            .start();
        span.set_tag("new.tag", i64::from(i));
        span.finish();
    }
    tracer.flush(T).unwrap();
    let spans = store.spans();
    assert_eq!(spans.len(), 64);
    for s in &spans {
        assert!(s.operation_name.starts_with("new-"), "{s:?}");
        assert!(s.references.is_empty(), "{s:?}");
        assert!(s.logs.is_empty(), "{s:?}");
        assert!(s.tag("old.tag").is_none(), "{s:?}");
        assert!(s.tag("new.tag").is_some(), "{s:?}");
    }
    tracer.close(T).unwrap();
}

/// Request threads take recycled boxes ahead of use, per thread, whatever
/// tracer they came from: two tracers on one thread must each get their own
/// spans, complete, with nothing of the other's.
#[test]
fn tracers_sharing_a_thread_keep_their_spans_apart() {
    let (store_a, store_b) = (InMemoryTransport::new(), InMemoryTransport::new());
    let a = tracer_with(&store_a).build().unwrap();
    let b = tracer_with(&store_b).build().unwrap();
    for round in 0..3 {
        for i in 0..40 {
            let mut s = a
                .span(format!("a-{round}-{i}"))
                .ignore_current_span()
                .start();
            s.set_tag("from", "a");
            s.finish();
            let mut s = b
                .span(format!("b-{round}-{i}"))
                .ignore_current_span()
                .start();
            s.set_tag("from", "b");
            s.log([("event", "b-only")]);
            s.finish();
        }
        // Delivered boxes go back to each tracer's pool, to be reused by
        // the spans of the next round.
        a.flush(T).unwrap();
        b.flush(T).unwrap();
    }
    for (store, name) in [(&store_a, "a"), (&store_b, "b")] {
        let spans = store.spans();
        assert_eq!(spans.len(), 120, "{name}");
        for s in &spans {
            assert!(s.operation_name.starts_with(&format!("{name}-")), "{s:?}");
            assert_eq!(
                s.tag("from").and_then(TagValue::as_str),
                Some(name),
                "{s:?}"
            );
            let own: Vec<_> = s
                .tags
                .iter()
                .filter(|t| !t.key.starts_with("sampler."))
                .collect();
            assert_eq!(own.len(), 1, "{s:?}");
            assert_eq!(s.logs.len(), usize::from(name == "b"), "{s:?}");
        }
    }
    a.close(T).unwrap();
    b.close(T).unwrap();
}

/// A lazily named span builds its name only when the tracer needs it: for
/// a recorded span, or for a sampler that decides by name.
#[test]
fn lazy_names_are_built_only_when_needed() {
    use opentracing_jaeger::sampler::PerOperationSampler;
    use std::borrow::Cow;
    use std::cell::Cell;
    let store = InMemoryTransport::new();
    let calls = Cell::new(0);
    let mut make = || {
        calls.set(calls.get() + 1);
        Cow::Borrowed("GET /users/{id}")
    };
    // Sampling nothing, by a sampler that ignores names: never built.
    let off = tracer_with(&store)
        .sampler(ConstSampler(false))
        .build()
        .unwrap();
    let span = off.span_with_lazy_name(&mut make).start();
    assert!(!span.is_recording());
    drop(span);
    assert_eq!(calls.get(), 0);
    // Recorded: built once, and the span carries it.
    let on = tracer_with(&store)
        .sampler(ConstSampler(true))
        .build()
        .unwrap();
    let span = on.span_with_lazy_name(&mut make).start();
    assert_eq!(span.operation_name(), Some("GET /users/{id}"));
    span.finish();
    assert_eq!(calls.get(), 1);
    // A per-operation sampler needs the name to decide, even to say no.
    let by_name = tracer_with(&store)
        .sampler(PerOperationSampler::new(
            0.0,
            0.0,
            8,
            [("other".to_owned(), 1.0)],
        ))
        .build()
        .unwrap();
    let span = by_name.span_with_lazy_name(&mut make).start();
    assert!(!span.is_recording());
    drop(span);
    assert_eq!(calls.get(), 2);
    let mut other = || Cow::Borrowed("other");
    let span = by_name.span_with_lazy_name(&mut other).start();
    assert!(span.is_recording(), "sampled by its name");
    for t in [off, on, by_name] {
        t.close(T).unwrap();
    }
}

/// A user's transport that panics on its first send, then works: the
/// batch is lost (and counted), the reporter is not.
#[derive(Clone, Default)]
struct PanicsOnce(std::sync::Arc<std::sync::Mutex<(bool, usize)>>);

impl opentracing_jaeger::transport::Transport for PanicsOnce {
    fn send<'a>(
        &'a mut self,
        _process: &'a opentracing_jaeger::Process,
        spans: &'a [Box<opentracing_api::FinishedSpan>],
    ) -> opentracing_jaeger::transport::SendFuture<'a> {
        let state = self.0.clone();
        Box::pin(async move {
            let mut s = state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if !s.0 {
                s.0 = true;
                drop(s);
                panic!("transport bug");
            }
            s.1 += spans.len();
            Ok(opentracing_jaeger::transport::SendOutcome::sent(
                spans.len(),
            ))
        })
    }

    fn name(&self) -> &'static str {
        "panics-once"
    }
}

#[test]
fn a_panicking_transport_loses_a_batch_not_the_reporter() {
    let transport = PanicsOnce::default();
    let tracer = JaegerTracer::builder("svc")
        .transport(transport.clone())
        .build()
        .unwrap();
    tracer.span("first").start().finish();
    tracer.flush(T).unwrap();
    tracer.span("second").start().finish();
    tracer.span("third").start().finish();
    tracer.close(T).unwrap();
    let sent = transport
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .1;
    assert_eq!(sent, 2, "the batches after the panic are sent");
    let m = tracer.metrics().snapshot();
    assert_eq!((m.spans_failed, m.spans_reported), (1, 2));
}

/// A transport that leaves a blocking task running (as a DNS lookup stuck
/// in the resolver does): `close` returns within its timeout anyway.
#[derive(Clone, Default)]
struct LeavesBlockingWork;

impl opentracing_jaeger::transport::Transport for LeavesBlockingWork {
    fn send<'a>(
        &'a mut self,
        _process: &'a opentracing_jaeger::Process,
        spans: &'a [Box<opentracing_api::FinishedSpan>],
    ) -> opentracing_jaeger::transport::SendFuture<'a> {
        let n = spans.len();
        Box::pin(async move {
            drop(tokio::task::spawn_blocking(|| {
                std::thread::sleep(Duration::from_secs(20));
            }));
            Ok(opentracing_jaeger::transport::SendOutcome::sent(n))
        })
    }

    fn name(&self) -> &'static str {
        "stuck-resolver"
    }
}

#[test]
fn close_keeps_to_its_timeout_when_blocking_work_is_left_behind() {
    let tracer = JaegerTracer::builder("svc")
        .transport(LeavesBlockingWork)
        .build()
        .unwrap();
    tracer.span("op").start().finish();
    let started = Instant::now();
    tracer.close(Duration::from_secs(3)).unwrap();
    // Not a timing benchmark: without the fix, close waits out the 20 s
    // blocking task.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(tracer.metrics().snapshot().spans_reported, 1);
}

fn refused(b: opentracing_jaeger::JaegerTracerBuilder) -> opentracing_jaeger::ConfigError {
    match b.build() {
        Ok(_) => panic!("an https endpoint was accepted"),
        Err(e) => e,
    }
}

#[test]
fn https_endpoints_are_refused_when_built_not_lost_at_every_send() {
    for exporter in [
        Exporter::OtlpHttp {
            url: "https://otlp.example.com/v1/traces".into(),
            headers: Vec::new(),
        },
        Exporter::HttpCollector {
            url: "https://jaeger.example.com/api/traces".into(),
            auth: opentracing_jaeger::transport::CollectorAuth::None,
        },
    ] {
        let err = refused(JaegerTracer::builder("svc").exporter(exporter));
        assert!(err.to_string().contains("https"), "{err}");
    }
    let err = refused(JaegerTracer::builder("svc").remote_sampler(
        "https://agent:5778/sampling",
        Duration::from_secs(60),
        ConstSampler(true),
    ));
    assert!(err.to_string().contains("https"), "{err}");
}

/// The policy and the baggage restrictions hold on every way a context
/// comes in: `extract`, `extract_binary`, and the propagator the tracer
/// hands out, used directly.
type ExtractionPath =
    fn(&JaegerTracer, &HashMap<String, String>, &[u8]) -> Option<opentracing_api::SpanContext>;

#[test]
fn every_extraction_path_goes_through_the_policy_and_the_allowlist() {
    use opentracing_api::{
        Baggage, JaegerPropagator, Propagator, SpanContext, SpanId, TraceFlags, TraceId,
    };
    let store = InMemoryTransport::new();
    let mut baggage = Baggage::new();
    baggage.insert("tenant", "acme").unwrap();
    baggage.insert("secret", "s3cr3t").unwrap();
    let sent = SpanContext::new(
        TraceId::from_u64(0xabc),
        SpanId::from_u64(0xdef),
        TraceFlags::SAMPLED,
    )
    .with_baggage(baggage);
    let h = headers(&[
        ("uber-trace-id", "abc:def:0:1"),
        ("uberctx-tenant", "acme"),
        ("uberctx-secret", "s3cr3t"),
    ]);
    let mut binary = Vec::new();
    JaegerPropagator::new()
        .inject_binary(&sent, &mut binary)
        .unwrap();

    let untrusting = tracer_with(&store)
        .sampler(ConstSampler(false))
        .extract_policy(ExtractPolicy::untrusted())
        .build()
        .unwrap();
    let allowlisted = tracer_with(&store)
        .sampler(ConstSampler(false))
        .baggage_allowlist(["tenant"])
        .build()
        .unwrap();
    let paths: [(&str, ExtractionPath); 4] = [
        ("extract", |t, h, _| {
            t.extract(Format::HttpHeaders, h).unwrap()
        }),
        ("extract_binary", |t, _, b| t.extract_binary(b).unwrap()),
        ("propagator().extract", |t, h, _| {
            t.propagator().extract(Format::HttpHeaders, h).unwrap()
        }),
        ("propagator().extract_binary", |t, _, b| {
            t.propagator().extract_binary(b).unwrap()
        }),
    ];
    for (path, extract) in paths {
        let cx = extract(&untrusting, &h, &binary).expect(path);
        assert_eq!(
            cx.trace_id(),
            TraceId::from_u64(0xabc),
            "{path}: the trace continues"
        );
        assert!(
            !cx.is_sampling_decided(),
            "{path}: untrusted sampling ignored"
        );
        let span = untrusting.span("server").with_extracted(Some(cx)).start();
        assert!(!span.context().is_sampled(), "{path}: our sampler decided");
        assert_eq!(span.baggage_item("tenant"), None, "{path}: baggage dropped");

        let cx = extract(&allowlisted, &h, &binary).expect(path);
        assert!(cx.is_sampled(), "{path}: trusted sampling kept");
        assert_eq!(cx.baggage_item("tenant"), Some("acme"), "{path}");
        assert_eq!(
            cx.baggage_item("secret"),
            None,
            "{path}: not in the allowlist"
        );
    }
    let text = allowlisted.metrics().prometheus_text();
    let dropped = text
        .lines()
        .find(|l| l.starts_with("jaeger_tracer_baggage_updates_total{result=\"err\"}"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        dropped.trim_end().ends_with(" 4"),
        "one per path: {dropped}"
    );
}

#[test]
fn malformed_contexts_are_counted_on_every_path() {
    let store = InMemoryTransport::new();
    let tracer = tracer_with(&store).build().unwrap();
    let h = headers(&[("uber-trace-id", "not-a-context")]);
    assert!(tracer.extract(Format::HttpHeaders, &h).is_err());
    assert!(tracer
        .propagator()
        .extract(Format::HttpHeaders, &h)
        .is_err());
    assert!(tracer.extract_binary(&[1, 2, 3]).is_err());
    let text = tracer.metrics().prometheus_text();
    let line = text
        .lines()
        .find(|l| l.starts_with("jaeger_tracer_span_context_decoding_errors_total"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.trim_end().ends_with(" 3"), "{line}");
}
