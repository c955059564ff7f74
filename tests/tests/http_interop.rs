//! The HTTP layers against the real third-party propagators: a request
//! carrying headers made by `PyPI` `jaeger-client` or OpenTelemetry's Python
//! propagators gives a server span that is a child of their span; the
//! headers our client layer sends extract correctly in those libraries.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use integration_tests::python_peer::{assert_extracted_as, extract_in_python, run_json};
use opentracing_api::{MockTracer, TracerExt};
use opentracing_tower::{ClientTracingLayer, TracingLayer};
use serde_json::{json, Value};
use tower::{ServiceBuilder, ServiceExt};

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN: &str = "00f067aa0ba902b7";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_spans_are_children_of_spans_from_python_libraries() {
    let libs = [
        "jaeger_client",
        "otel_jaeger",
        "otel_tracecontext",
        "otel_composite",
        "jaeger_client_b3",
        "otel_b3_multi",
        "otel_b3_single",
    ];
    let requests: Vec<Value> = libs
        .iter()
        .map(|lib| {
            json!({"op": "inject", "lib": lib, "trace_id": TRACE, "span_id": SPAN, "parent_span_id": "0000000000000000",
                   "sampled": true, "debug": false, "baggage": {"tenant": "acme"}})
        })
        .collect();
    let injected = run_json("propagation_peer.py", &requests);
    let tracer = MockTracer::new();
    let app = Router::new()
        .route("/dispatch", get(|| async { "ok" }))
        .layer(TracingLayer::new(tracer.clone()));
    let addr = serve(app).await;
    let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build_http::<Full<Bytes>>();
    for (lib, result) in libs.iter().zip(&injected) {
        let mut req = Request::get(format!("http://{addr}/dispatch"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        for (k, v) in result["headers"].as_object().unwrap() {
            req.headers_mut().insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v.as_str().unwrap()).unwrap(),
            );
        }
        let resp = client.request(req).await.unwrap();
        let _ = resp.into_body().collect().await.unwrap();
        let start = Instant::now();
        let span = loop {
            if let Some(s) = tracer.finished_spans().pop() {
                break s;
            }
            assert!(start.elapsed() < Duration::from_secs(10));
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        tracer.reset();
        assert_eq!(span.context.trace_id().to_hex32(), TRACE, "{lib}");
        assert_eq!(
            span.parent_span_id().map(|s| s.to_string()).as_deref(),
            Some(SPAN),
            "{lib}"
        );
        assert!(span.context.is_sampled(), "{lib}");
        if ["jaeger_client", "otel_jaeger", "otel_composite"].contains(lib) {
            assert_eq!(span.context.baggage_item("tenant"), Some("acme"), "{lib}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_sent_by_the_client_layer_extract_in_python_libraries() {
    let seen: Arc<Mutex<Vec<HeaderMap>>> = Arc::default();
    let s = seen.clone();
    let sink = Router::new().route(
        "/downstream",
        get(move |h: HeaderMap| {
            s.lock().unwrap().push(h);
            async { "ok" }
        }),
    );
    let addr = serve(sink).await;
    let tracer = MockTracer::new();
    let client = ServiceBuilder::new()
        .layer(ClientTracingLayer::new(tracer.clone()))
        .service(Client::builder(hyper_util::rt::TokioExecutor::new()).build_http::<Full<Bytes>>());
    let mut root = tracer.span("root").start();
    root.set_baggage_item("tenant", "acme corp").unwrap();
    let root = root.into_shared();
    let req = Request::get(format!("http://{addr}/downstream"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let fut = {
        let _g = root.enter();
        client.oneshot(req)
    };
    let resp = opentracing_api::SpanFutureExt::with_span(fut, root.clone())
        .await
        .unwrap();
    let _ = resp.into_body().collect().await.unwrap();
    let client_span = tracer.finished_spans().pop().unwrap();
    let headers = seen.lock().unwrap().pop().unwrap();
    let libs = [
        "jaeger_client",
        "otel_jaeger",
        "otel_tracecontext",
        "otel_composite",
        "otel_b3_multi",
    ];
    let results = extract_in_python(&headers, &libs);
    for (lib, r) in libs.iter().zip(&results) {
        assert_extracted_as(lib, r, &client_span.context);
        if ["jaeger_client", "otel_jaeger", "otel_composite"].contains(lib) {
            assert_eq!(r["baggage"]["tenant"], json!("acme corp"), "{lib}");
        }
    }
}
