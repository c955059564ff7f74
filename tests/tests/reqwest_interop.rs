//! The reqwest middleware against the real third-party propagators: the
//! headers it sends, received by a server, extract in `PyPI` `jaeger-client`
//! and OpenTelemetry's Python propagators as exactly the client span's ids
//! and baggage.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use axum::routing::get;
use axum::Router;
use http::HeaderMap;
use integration_tests::python_peer::{assert_extracted_as, extract_in_python};
use opentracing_api::{MockTracer, SpanFutureExt, TracerExt};
use opentracing_reqwest::TracingMiddleware;
use reqwest_middleware::ClientBuilder;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_sent_by_the_reqwest_middleware_extract_in_python_libraries() {
    let seen: Arc<Mutex<Vec<HeaderMap>>> = Arc::default();
    let s = seen.clone();
    let sink = Router::new().route(
        "/downstream",
        get(move |h: HeaderMap| {
            s.lock().unwrap().push(h);
            async { "ok" }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, sink).await.unwrap() });

    let tracer = MockTracer::new();
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(TracingMiddleware::new(tracer.clone()))
        .build();
    let mut root = tracer.span("root").start();
    root.set_baggage_item("tenant", "acme corp").unwrap();
    root.set_baggage_item("request", "web-1").unwrap();
    let root = root.into_shared();
    client
        .get(format!("http://{addr}/downstream"))
        .send()
        .with_span(root.clone())
        .await
        .unwrap();
    let client_span = tracer
        .finished_spans()
        .into_iter()
        .find(|s| s.operation_name == "HTTP GET")
        .unwrap();
    let headers = seen.lock().unwrap().pop().unwrap();
    let libs = [
        "jaeger_client",
        "otel_jaeger",
        "otel_tracecontext",
        "otel_composite",
    ];
    let results = extract_in_python(&headers, &libs);
    for (lib, r) in libs.iter().zip(&results) {
        assert_extracted_as(lib, r, &client_span.context);
        if lib != &"otel_tracecontext" {
            assert_eq!(r["baggage"]["tenant"], json!("acme corp"), "{lib}");
            assert_eq!(r["baggage"]["request"], json!("web-1"), "{lib}");
        }
    }
}
