//! The gRPC adapter against a real gRPC implementation (`PyPI` `grpcio`) and
//! the real third-party propagators: a Python client sending context that
//! `jaeger-client` or OpenTelemetry injected gets a server span that is the
//! child of its span; a Python server extracting what our client sent gets
//! our client span's ids and baggage.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use integration_tests::python_peer::{run_json, ExportPeer};
use opentracing_api::{FinishedSpan, MockTracer, SpanFutureExt, TracerExt};
use opentracing_tonic::{GrpcClientLayer, GrpcServerLayer};
use serde_json::{json, Value};
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN: &str = "00f067aa0ba902b7";
const CHECK: &str = "/grpc.health.v1.Health/Check";

async fn wait_for(tracer: &MockTracer, n: usize) -> Vec<FinishedSpan> {
    let start = Instant::now();
    loop {
        let spans = tracer.finished_spans();
        if spans.len() >= n {
            return spans;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{spans:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_spans_are_children_of_a_python_grpc_clients_spans() {
    let tracer = MockTracer::new();
    let (_, health) = tonic_health::server::health_reporter();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let layer = GrpcServerLayer::new(tracer.clone()).with_filter(|_| true);
    tokio::spawn(
        tonic::transport::Server::builder()
            .layer(layer)
            .add_service(health)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let libs = [
        "jaeger_client",
        "otel_jaeger",
        "otel_tracecontext",
        "otel_composite",
        "otel_b3_multi",
    ];
    let injected = run_json(
        "propagation_peer.py",
        &libs
            .iter()
            .map(|lib| {
                json!({"op": "inject", "lib": lib, "trace_id": TRACE, "span_id": SPAN,
                       "parent_span_id": "0000000000000000", "sampled": true, "debug": false,
                       "baggage": {"tenant": "acme"}})
            })
            .collect::<Vec<_>>(),
    );
    for (lib, headers) in libs.iter().zip(&injected) {
        tracer.reset();
        let calls = [
            json!({"target": format!("127.0.0.1:{}", addr.port()), "method": CHECK,
                            "metadata": headers["headers"], "request_hex": ""}),
        ];
        let results = run_json("grpc_peer.py", &calls);
        assert_eq!(results[0]["code"], json!("OK"), "{lib}: {}", results[0]);
        let spans = wait_for(&tracer, 1).await;
        let span = &spans[0];
        assert_eq!(span.operation_name, CHECK, "{lib}");
        assert_eq!(span.context.trace_id().to_hex32(), TRACE, "{lib}");
        assert_eq!(
            span.parent_span_id().map(|s| s.to_string()).as_deref(),
            Some(SPAN),
            "{lib}: the Python client's span is the parent"
        );
        assert!(span.context.is_sampled(), "{lib}");
        if ["jaeger_client", "otel_jaeger", "otel_composite"].contains(lib) {
            assert_eq!(span.context.baggage_item("tenant"), Some("acme"), "{lib}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_grpc_server_extracts_our_client_spans_context() {
    let peer = ExportPeer::start_script("grpc_peer.py", &["serve".into(), "1".into(), "20".into()]);
    let tracer = MockTracer::new();
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{}", peer.port))
            .unwrap()
            .connect()
            .await
            .unwrap();
    let traced = tower::ServiceBuilder::new()
        .layer(GrpcClientLayer::new(tracer.clone()))
        .service(channel);
    let mut client = HealthClient::new(traced);
    let mut root = tracer.span("root").start();
    root.set_baggage_item("tenant", "acme corp").unwrap();
    let root = root.into_shared();
    client
        .check(HealthCheckRequest::default())
        .with_span(root.clone())
        .await
        .unwrap();
    let spans = wait_for(&tracer, 1).await;
    let ours = spans.iter().find(|s| s.operation_name == CHECK).unwrap();
    assert_eq!(ours.parent_span_id(), Some(root.context().span_id()));
    let report = peer.finish();
    let calls = report.as_array().unwrap();
    assert_eq!(calls.len(), 1, "{report}");
    assert_eq!(calls[0]["method"], json!(CHECK));
    for lib in [
        "jaeger_client",
        "otel_jaeger",
        "otel_tracecontext",
        "otel_composite",
    ] {
        let r: &Value = &calls[0]["extracted"][lib];
        assert_eq!(r["found"], json!(true), "{lib}: {r}");
        assert_eq!(
            r["trace_id"],
            json!(ours.context.trace_id().to_hex32()),
            "{lib}"
        );
        assert_eq!(
            r["span_id"],
            json!(ours.context.span_id().to_string()),
            "{lib}: our client span is their parent"
        );
        assert_eq!(r["sampled"], json!(true), "{lib}");
        if lib != "otel_tracecontext" {
            assert_eq!(r["baggage"]["tenant"], json!("acme corp"), "{lib}");
        }
    }
}
