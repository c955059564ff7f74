//! Our exports decoded by the other side's real implementations, over real
//! sockets: UDP compact-Thrift batches and HTTP binary-Thrift batches by the
//! Jaeger Thrift definitions shipped in `PyPI`'s `jaeger-client` (run by the
//! `thrift` library), OTLP requests by `opentelemetry-proto` for Python.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use integration_tests::python_peer::ExportPeer;
use opentracing_api::prelude::*;
use opentracing_api::{SharedSpan, SpanContext};
use opentracing_jaeger::transport::{CollectorAuth, UdpAgentTransport};
use opentracing_jaeger::{Exporter, JaegerTracer};
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(20);

/// A small trace: a server span with tags, a log and an error, a child
/// with a `FollowsFrom` reference too. Returns (server, child, producer)
/// contexts.
fn make_trace(tracer: &JaegerTracer) -> (SpanContext, SpanContext, SpanContext) {
    let producer = tracer.span("producer").start();
    let producer_cx = producer.context().clone();
    producer.finish();
    let server: SharedSpan = tracer
        .span("HTTP GET /dispatch")
        .tag(tags::SPAN_KIND, tags::SPAN_KIND_SERVER)
        .tag(tags::HTTP_METHOD, "GET")
        .tag(tags::HTTP_STATUS_CODE, 503)
        .tag("ratio", 0.25)
        .start_shared();
    server.log([(log_fields::EVENT, "cache miss")]);
    server.set_error(&"upstream timed out");
    let child = tracer
        .span("SQL SELECT")
        .child_of(&server.context())
        .follows_from(&producer_cx)
        .tag(tags::SPAN_KIND, tags::SPAN_KIND_CLIENT)
        .start();
    let child_cx = child.context().clone();
    child.finish();
    let server_cx = server.context();
    server.finish();
    (server_cx, child_cx, producer_cx)
}

fn span<'a>(report: &'a Value, name_key: &str, name: &str) -> &'a Value {
    report["spans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s[name_key] == json!(name))
        .unwrap_or_else(|| panic!("no span {name} in {report}"))
}

fn check_jaeger_thrift(
    report: &Value,
    server: &SpanContext,
    child: &SpanContext,
    producer: &SpanContext,
) {
    assert_eq!(
        report["process"]["service_name"],
        json!("interop-svc"),
        "{report}"
    );
    let ptags = &report["process"]["tags"];
    assert_eq!(ptags["region"], json!("eu-1"));
    assert!(ptags["jaeger.version"]
        .as_str()
        .unwrap()
        .starts_with("Rust-"));
    assert!(
        ptags["hostname"].is_string()
            && ptags["ip"].is_string()
            && ptags["client-uuid"].is_string()
    );
    let s = span(report, "operation_name", "HTTP GET /dispatch");
    assert_eq!(s["trace_id"], json!(server.trace_id().to_hex32()));
    assert_eq!(s["span_id"], json!(server.span_id().to_string()));
    assert_eq!(s["parent_span_id"], json!("0000000000000000"));
    assert_eq!(s["flags"], json!(1));
    assert_eq!(s["tags"]["span.kind"], json!("server"));
    assert_eq!(s["tags"]["http.status_code"], json!(503));
    assert_eq!(s["tags"]["ratio"], json!(0.25));
    assert_eq!(s["tags"]["error"], json!(true));
    assert_eq!(s["tags"]["sampler.type"], json!("const"));
    assert_eq!(s["logs"][0]["fields"]["event"], json!("cache miss"));
    assert_eq!(
        s["logs"][1]["fields"]["error.object"],
        json!("upstream timed out")
    );
    assert!(s["duration"].as_i64().unwrap() >= 0);
    assert!(
        s["start_time"].as_i64().unwrap() > 1_600_000_000_000_000,
        "microseconds since the epoch"
    );
    let c = span(report, "operation_name", "SQL SELECT");
    assert_eq!(c["trace_id"], json!(child.trace_id().to_hex32()));
    assert_eq!(c["parent_span_id"], json!(server.span_id().to_string()));
    assert_eq!(
        c["references"][0],
        json!({"ref_type": "CHILD_OF", "trace_id": server.trace_id().to_hex32(), "span_id": server.span_id().to_string()})
    );
    assert_eq!(
        c["references"][1],
        json!({"ref_type": "FOLLOWS_FROM", "trace_id": producer.trace_id().to_hex32(), "span_id": producer.span_id().to_string()})
    );
}

fn tracer(exporter: Exporter) -> JaegerTracer {
    JaegerTracer::builder("interop-svc")
        .exporter(exporter)
        .tag("region", "eu-1")
        .build()
        .unwrap()
}

#[test]
fn udp_compact_thrift_decoded_by_jaeger_client() {
    let peer = ExportPeer::start("udp", 3, 20, &[]);
    let tracer = tracer(Exporter::UdpAgent {
        addr: format!("127.0.0.1:{}", peer.port),
    });
    let (server, child, producer) = make_trace(&tracer);
    tracer.close(T).unwrap();
    let report = peer.finish();
    check_jaeger_thrift(&report, &server, &child, &producer);
    let req = &report["requests"][0];
    assert_eq!(req["message_name"], json!("emitBatch"));
    assert_eq!(req["message_type"], json!("ONEWAY"));
    assert_eq!(req["seq_no"], json!(1));
    assert_eq!(req["stats"]["fullQueueDroppedSpans"], json!(0));
}

#[test]
fn udp_batches_split_to_fit_packets_and_oversized_spans_are_dropped() {
    let peer = ExportPeer::start("udp", 60, 20, &[]);
    let transport =
        UdpAgentTransport::with_max_packet_size(format!("127.0.0.1:{}", peer.port), 1500);
    let tracer = JaegerTracer::builder("interop-svc")
        .transport(transport)
        .build()
        .unwrap();
    for i in 0..60 {
        tracer
            .span(format!("span-{i}"))
            .tag("payload", "x".repeat(100))
            .start()
            .finish();
    }
    tracer
        .span("huge")
        .tag("payload", "y".repeat(3000))
        .start()
        .finish();
    tracer.flush(T).unwrap();
    let report = peer.finish();
    let requests = report["requests"].as_array().unwrap();
    assert!(requests.len() > 1, "split into several datagrams");
    for r in requests {
        assert!(r["size"].as_u64().unwrap() <= 1500, "{r}");
        assert!(r.get("error").is_none(), "{r}");
    }
    let names: Vec<&str> = report["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["operation_name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 60);
    assert!(!names.contains(&"huge"));
    assert_eq!(tracer.metrics().snapshot().spans_dropped_too_large, 1);
    let seqs: Vec<i64> = requests
        .iter()
        .map(|r| r["seq_no"].as_i64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
}

#[test]
fn http_binary_thrift_decoded_by_jaeger_client() {
    let peer = ExportPeer::start("http", 3, 20, &[]);
    let tracer = tracer(Exporter::HttpCollector {
        url: format!("http://127.0.0.1:{}/api/traces", peer.port),
        auth: CollectorAuth::Basic {
            user: "jaeger".into(),
            password: "s3cret".into(),
        },
    });
    let (server, child, producer) = make_trace(&tracer);
    tracer.close(T).unwrap();
    let report = peer.finish();
    check_jaeger_thrift(&report, &server, &child, &producer);
    let req = &report["requests"][0];
    assert_eq!(req["path"], json!("/api/traces"));
    assert_eq!(req["content_type"], json!("application/x-thrift"));
    assert_eq!(req["authorization"], json!("Basic amFlZ2VyOnMzY3JldA=="));
}

#[test]
fn otlp_http_protobuf_decoded_by_opentelemetry_proto() {
    let peer = ExportPeer::start("otlp", 3, 20, &["--fail-first", "1"]);
    let tracer = tracer(Exporter::OtlpHttp {
        url: format!("http://127.0.0.1:{}/v1/traces", peer.port),
        headers: vec![("x-tenant".into(), "acme".into())],
    });
    let (server, child, producer) = make_trace(&tracer);
    tracer.close(T).unwrap();
    let report = peer.finish();
    assert_eq!(
        report["requests"].as_array().unwrap().len(),
        2,
        "a 503 is retried: {report}"
    );
    let req = &report["requests"][1];
    assert_eq!(req["path"], json!("/v1/traces"));
    assert_eq!(req["content_type"], json!("application/x-protobuf"));
    assert_eq!(req["headers"]["x-tenant"], json!("acme"));
    assert_eq!(report["process"]["service_name"], json!("interop-svc"));
    assert_eq!(report["process"]["tags"]["region"], json!("eu-1"));
    let s = span(&report, "name", "HTTP GET /dispatch");
    assert_eq!(s["trace_id"], json!(server.trace_id().to_hex32()));
    assert_eq!(s["span_id"], json!(server.span_id().to_string()));
    assert_eq!(s["parent_span_id"], json!(""));
    assert_eq!(s["kind"], json!("SPAN_KIND_SERVER"));
    assert_eq!(s["attributes"]["http.status_code"], json!(503));
    assert_eq!(s["attributes"]["http.method"], json!("GET"));
    assert!(
        s["attributes"].get("span.kind").is_none(),
        "span.kind is the span kind"
    );
    assert_eq!(s["status"]["code"], json!("STATUS_CODE_ERROR"));
    assert_eq!(s["status"]["message"], json!("upstream timed out"));
    assert_eq!(s["events"][0]["name"], json!("cache miss"));
    assert_eq!(s["events"][1]["name"], json!("error"));
    assert!(
        s["end_time_unix_nano"].as_u64().unwrap() >= s["start_time_unix_nano"].as_u64().unwrap()
    );
    let c = span(&report, "name", "SQL SELECT");
    assert_eq!(c["kind"], json!("SPAN_KIND_CLIENT"));
    assert_eq!(c["trace_id"], json!(child.trace_id().to_hex32()));
    assert_eq!(c["parent_span_id"], json!(server.span_id().to_string()));
    assert_eq!(
        c["links"][0]["span_id"],
        json!(producer.span_id().to_string())
    );
    assert_eq!(
        c["links"][0]["attributes"]["opentracing.ref_type"],
        json!("follows_from")
    );
}
