//! The layers on real servers (axum, plain hyper) on 127.0.0.1:0, called by
//! a real HTTP client, with the mock tracer recording the spans.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use opentracing_api::InjectPolicy;
use opentracing_api::{tags, FinishedSpan, MockTracer, TagValue};
use opentracing_tower::{ClientTracingLayer, CurrentSpan, RpcMetrics, TracingLayer};
use tower::{Service, ServiceBuilder, ServiceExt};

type HttpClient = Client<HttpConnector, Full<Bytes>>;

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    addr
}

fn client() -> HttpClient {
    Client::builder(hyper_util::rt::TokioExecutor::new()).build_http()
}

/// Sends `method path` with an empty body and no extra headers.
async fn send(
    addr: SocketAddr,
    method: http::Method,
    path: &str,
) -> http::Response<hyper::body::Incoming> {
    let req = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    client().request(req).await.unwrap()
}

async fn get_with(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, Bytes) {
    let mut req = Request::get(format!("http://{addr}{path}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    for (k, v) in headers {
        req.headers_mut().append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    let resp = client().request(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    (
        parts.status,
        parts.headers,
        body.collect().await.unwrap().to_bytes(),
    )
}

async fn wait_for(tracer: &MockTracer, n: usize) -> Vec<FinishedSpan> {
    let start = Instant::now();
    loop {
        let spans = tracer.finished_spans();
        if spans.len() >= n {
            return spans;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "only {} of {n} spans finished: {spans:?}",
            spans.len()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn tag<'a>(s: &'a FinishedSpan, k: &str) -> Option<&'a TagValue> {
    s.tag(k)
}

fn app(tracer: &MockTracer) -> Router {
    app_with(tracer, false)
}

/// [`app`], with either body style.
fn app_with(tracer: &MockTracer, axum_bodies: bool) -> Router {
    let layer = TracingLayer::new(tracer.clone()).with_filter(|p| p.uri.path() != "/health");
    let routes = Router::new()
        .route("/users/{id}", get(|| async { "user" }))
        .route(
            "/fail",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        )
        .route("/health", get(|| async { "ok" }))
        .route(
            "/tagged",
            get(|CurrentSpan(span): CurrentSpan| async move {
                span.set_tag("customer", 123);
                "tagged"
            }),
        );
    layered(routes, layer, axum_bodies)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_spans_continue_the_caller_trace_with_route_names_and_tags() {
    let tracer = MockTracer::new();
    let addr = serve(app(&tracer)).await;
    let (status, _, body) = get_with(
        addr,
        "/users/42?verbose=1",
        &[("uber-trace-id", "abc:def:0:1")],
    )
    .await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"user"[..]));
    let spans = wait_for(&tracer, 1).await;
    let s = &spans[0];
    assert_eq!(s.operation_name, "GET /users/{id}");
    assert_eq!(s.context.trace_id().low(), 0xabc);
    assert_eq!(
        s.parent_span_id().map(opentracing_api::SpanId::to_u64),
        Some(0xdef)
    );
    assert_eq!(tag(s, tags::SPAN_KIND), Some(&TagValue::from("server")));
    assert_eq!(tag(s, tags::HTTP_METHOD), Some(&TagValue::from("GET")));
    assert_eq!(
        tag(s, tags::HTTP_URL),
        Some(&TagValue::from(format!("http://{addr}/users/42?verbose=1")))
    );
    assert_eq!(tag(s, tags::HTTP_STATUS_CODE), Some(&TagValue::I64(200)));
    assert_eq!(
        tag(s, tags::PEER_HOST_IPV4),
        Some(&TagValue::from("127.0.0.1".to_owned()))
    );
    assert!(tag(s, tags::PEER_PORT).is_some());
    assert_eq!(tag(s, tags::ERROR), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_codes_errors_filter_and_handler_tags() {
    for axum_bodies in [false, true] {
        status_codes_case(axum_bodies).await;
    }
}

async fn status_codes_case(axum_bodies: bool) {
    let tracer = MockTracer::new();
    let addr = serve(app_with(&tracer, axum_bodies)).await;
    assert_eq!(
        get_with(addr, "/nope/1", &[]).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get_with(addr, "/fail", &[]).await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(get_with(addr, "/health", &[]).await.0, StatusCode::OK);
    assert_eq!(get_with(addr, "/tagged", &[]).await.0, StatusCode::OK);
    let spans = wait_for(&tracer, 3).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(tracer.finished_spans().len(), 3, "/health is filtered out");
    let not_found = spans
        .iter()
        .find(|s| tag(s, tags::HTTP_STATUS_CODE) == Some(&TagValue::I64(404)))
        .unwrap();
    assert_eq!(
        not_found.operation_name, "GET",
        "unmatched: the method only, never the raw path"
    );
    assert_eq!(
        tag(not_found, tags::ERROR),
        None,
        "4xx is not a server error"
    );
    let failed = spans
        .iter()
        .find(|s| s.operation_name == "GET /fail")
        .unwrap();
    assert_eq!(tag(failed, tags::ERROR), Some(&TagValue::Bool(true)));
    assert!(failed.logs[0]
        .fields
        .iter()
        .any(|f| f.value.as_str() == Some("HTTP 500 Internal Server Error")));
    let tagged = spans
        .iter()
        .find(|s| s.operation_name == "GET /tagged")
        .unwrap();
    assert_eq!(tag(tagged, "customer"), Some(&TagValue::I64(123)));
}

/// `app` under the server layer, with either body style.
fn traced(app: Router, tracer: &MockTracer, axum_bodies: bool) -> Router {
    layered(app, TracingLayer::new(tracer.clone()), axum_bodies)
}

/// `app` under `layer`, with either body style.
fn layered(app: Router, layer: TracingLayer<MockTracer>, axum_bodies: bool) -> Router {
    if axum_bodies {
        app.layer(layer.with_axum_bodies())
    } else {
        app.layer(layer)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_bodies_finish_the_span_when_they_end() {
    for axum_bodies in [false, true] {
        streaming_body_case(axum_bodies).await;
    }
}

async fn streaming_body_case(axum_bodies: bool) {
    let tracer = MockTracer::new();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, Infallible>>(4);
    let rx = Arc::new(Mutex::new(Some(rx)));
    let app = Router::new().route(
        "/stream",
        get(move || {
            let rx = rx.lock().unwrap().take().unwrap();
            async move { Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx)) }
        }),
    );
    let app = traced(app, &tracer, axum_bodies);
    let addr = serve(app).await;
    let resp = send(addr, http::Method::GET, "/stream").await;
    let mut body = resp.into_body();
    tx.send(Ok(Bytes::from_static(b"first"))).await.unwrap();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&first[..], b"first");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(tracer.finished_spans().is_empty(), "still streaming");
    tx.send(Ok(Bytes::from_static(b"last"))).await.unwrap();
    drop(tx);
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(&rest[..], b"last");
    let spans = wait_for(&tracer, 1).await;
    assert!(spans[0].duration() >= Duration::from_millis(100));
    assert_eq!(tag(&spans[0], tags::ERROR), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_going_away_mid_body_finishes_the_span_as_failed() {
    for axum_bodies in [false, true] {
        client_going_away_case(axum_bodies).await;
    }
}

async fn client_going_away_case(axum_bodies: bool) {
    let tracer = MockTracer::new();
    let app = Router::new().route(
        "/forever",
        get(|| async {
            let stream = futures_util::stream::unfold(0u64, |n| async move {
                tokio::time::sleep(Duration::from_millis(10)).await;
                Some((
                    Ok::<_, Infallible>(Bytes::from(format!("chunk {n}\n"))),
                    n + 1,
                ))
            });
            Body::from_stream(stream)
        }),
    );
    let app = traced(app, &tracer, axum_bodies);
    let addr = serve(app).await;
    let resp = send(addr, http::Method::GET, "/forever").await;
    let mut body = resp.into_body();
    let _ = body.frame().await.unwrap().unwrap();
    drop(body); // the client goes away
    let spans = wait_for(&tracer, 1).await;
    assert_eq!(tag(&spans[0], tags::ERROR), Some(&TagValue::Bool(true)));
    assert!(spans[0]
        .logs
        .iter()
        .flat_map(|l| &l.fields)
        .any(|f| f.value.as_str() == Some("body_dropped")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_finishes_the_span_as_failed() {
    let tracer = MockTracer::new();
    let app = Router::new()
        .route(
            "/panic",
            get(|| async {
                if true {
                    panic!("handler bug")
                } else {
                    "never"
                }
            }),
        )
        .layer(TracingLayer::new(tracer.clone()))
        .layer(tower_http::catch_panic::CatchPanicLayer::new());
    let addr = serve(app).await;
    assert_eq!(
        get_with(addr, "/panic", &[]).await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    let spans = wait_for(&tracer, 1).await;
    assert_eq!(tag(&spans[0], tags::ERROR), Some(&TagValue::Bool(true)));
    assert!(spans[0].logs[0]
        .fields
        .iter()
        .any(|f| f.value.as_str() == Some("panic")));
}

/// Serves `app` with hyper configured for very large header sets (hyper's
/// default of 100 headers would answer 431 before our layer runs).
async fn serve_large_headers(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let svc = hyper_util::service::TowerToHyperService::new(app.clone());
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .max_headers(2000)
                    .max_buf_size(4 << 20)
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_hostile_headers_are_answered_normally() {
    let tracer = MockTracer::new();
    let addr = serve_large_headers(app(&tracer)).await;
    assert_eq!(
        get_with(addr, "/users/1", &[("uber-trace-id", "not-a-context")])
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        get_with(addr, "/users/1", &[("traceparent", "00-zz-zz-01")])
            .await
            .0,
        StatusCode::OK
    );
    // 1000 headers, half of them baggage, some huge.
    let names: Vec<String> = (0..1000)
        .map(|i| {
            if i % 2 == 0 {
                format!("uberctx-k{i}")
            } else {
                format!("x-h{i}")
            }
        })
        .collect();
    let big = "v".repeat(500);
    let mut req = Request::get(format!("http://{addr}/users/2"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    req.headers_mut()
        .insert("uber-trace-id", HeaderValue::from_static("1:2:0:1"));
    for n in &names {
        req.headers_mut().insert(
            HeaderName::from_bytes(n.as_bytes()).unwrap(),
            HeaderValue::from_str(&big).unwrap(),
        );
    }
    // Invalid UTF-8 in a baggage value.
    req.headers_mut().insert(
        "uberctx-bin",
        HeaderValue::from_bytes(&[0xff, 0xfe, b'a']).unwrap(),
    );
    let resp = client().request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let spans = wait_for(&tracer, 3).await;
    for s in &spans {
        assert_eq!(tag(s, tags::HTTP_STATUS_CODE), Some(&TagValue::I64(200)));
        assert!(s.context.baggage().len() <= 64 && s.context.baggage().total_len() <= 8192);
    }
    let hostile = spans
        .iter()
        .find(|s| s.context.trace_id().low() == 1)
        .unwrap();
    assert_eq!(
        hostile
            .parent_span_id()
            .map(opentracing_api::SpanId::to_u64),
        Some(2),
        "the valid context is still used"
    );
    assert!(
        spans.iter().filter(|s| s.references.is_empty()).count() == 2,
        "malformed contexts give new roots"
    );
}

/// A server that records the headers of each request it gets.
async fn recording_server() -> (SocketAddr, Arc<Mutex<Vec<HeaderMap>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let app = Router::new().route(
        "/downstream",
        get(move |headers: HeaderMap| {
            s.lock().unwrap().push(headers);
            async { "down" }
        }),
    );
    (serve(app).await, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_allowlist_withholds_trace_headers_from_other_hosts() {
    let tracer = MockTracer::new();
    let (addr, seen) = recording_server().await;
    for (policy, expect) in [
        (InjectPolicy::allowlist(["*.internal"]), false),
        (InjectPolicy::allowlist(["127.0.0.1"]), true),
        (InjectPolicy::All, true),
    ] {
        let mut svc = ServiceBuilder::new()
            .layer(ClientTracingLayer::new(tracer.clone()).with_inject_policy(policy))
            .service(client());
        let root = opentracing_api::TracerExt::span(&tracer, "root").start_shared();
        let mut req = Request::get(format!("http://{addr}/downstream"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        *req.headers_mut() = HeaderMap::new();
        let entered = root.enter();
        let resp = svc.ready().await.unwrap().call(req).await.unwrap();
        drop(entered);
        let _ = resp.into_body().collect().await.unwrap();
        let headers = seen.lock().unwrap().pop().unwrap();
        for h in ["uber-trace-id", "traceparent", "x-b3-traceid", "baggage"] {
            if h == "baggage" {
                continue;
            }
            assert_eq!(
                headers.contains_key(h),
                expect,
                "{h} with expect={expect}: {headers:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hops_make_one_trace_with_no_tracing_code_in_handlers() {
    let tracer = MockTracer::new();
    let b = Router::new()
        .route("/downstream", get(|| async { "from b" }))
        .layer(TracingLayer::new(tracer.clone()));
    let b_addr = serve(b).await;
    let traced_client = ServiceBuilder::new()
        .layer(ClientTracingLayer::new(tracer.clone()))
        .service(client());
    let a = Router::new()
        .route(
            "/chain",
            get(|State((client, b_addr)): State<(ClientTracingLayerClient, SocketAddr)>| async move {
                // An ordinary call: no tracing code here.
                let req = Request::get(format!("http://{b_addr}/downstream")).body(Full::new(Bytes::new())).unwrap();
                let resp = client.oneshot(req).await.unwrap();
                let body = resp.into_body().collect().await.unwrap().to_bytes();
                String::from_utf8_lossy(&body).into_owned()
            }),
        )
        .with_state((traced_client, b_addr))
        .layer(TracingLayer::new(tracer.clone()));
    let a_addr = serve(a).await;
    let (status, _, body) = get_with(a_addr, "/chain", &[]).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"from b"[..]));
    let spans = wait_for(&tracer, 3).await;
    let a_server = spans
        .iter()
        .find(|s| s.operation_name == "GET /chain")
        .unwrap();
    let a_client = spans
        .iter()
        .find(|s| tag(s, tags::SPAN_KIND) == Some(&TagValue::from("client")))
        .unwrap();
    let b_server = spans
        .iter()
        .find(|s| s.operation_name == "GET /downstream")
        .unwrap();
    let trace = a_server.context.trace_id();
    assert!(
        spans.iter().all(|s| s.context.trace_id() == trace),
        "one trace"
    );
    assert_eq!(a_client.parent_span_id(), Some(a_server.context.span_id()));
    assert_eq!(b_server.parent_span_id(), Some(a_client.context.span_id()));
    assert_eq!(
        tag(a_client, tags::PEER_HOSTNAME),
        Some(&TagValue::from("127.0.0.1".to_owned()))
    );
    assert_eq!(
        tag(a_client, tags::HTTP_STATUS_CODE),
        Some(&TagValue::I64(200))
    );
}

type ClientTracingLayerClient = opentracing_tower::ClientTracingService<HttpClient, MockTracer>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_id_header_and_rpc_metrics() {
    let tracer = MockTracer::new();
    let metrics = Arc::new(RpcMetrics::default());
    let app = Router::new()
        .route("/users/{id}", get(|| async { "user" }))
        .route("/fail", get(|| async { StatusCode::SERVICE_UNAVAILABLE }))
        .layer(
            TracingLayer::new(tracer.clone())
                .with_trace_id_header(HeaderName::from_static("x-trace-id"))
                .with_observer(metrics.clone()),
        );
    let addr = serve(app).await;
    let (_, headers, _) = get_with(addr, "/users/7", &[]).await;
    get_with(addr, "/users/8", &[]).await;
    get_with(addr, "/fail", &[]).await;
    let spans = wait_for(&tracer, 3).await;
    let echoed = headers["x-trace-id"].to_str().unwrap();
    assert!(spans
        .iter()
        .any(|s| s.context.trace_id().to_hex32() == echoed));
    assert_eq!(metrics.counts("GET /users/{id}"), Some((2, 0)));
    assert_eq!(metrics.counts("GET /fail"), Some((1, 1)));
    let text = metrics.prometheus_text();
    assert!(
        text.contains("rpc_requests_total{endpoint=\"GET /users/{id}\",error=\"false\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("rpc_http_requests_total{endpoint=\"GET /fail\",status_code=\"5xx\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("rpc_request_duration_seconds_count{endpoint=\"GET /users/{id}\"} 2"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_hyper_services_are_traced_too() {
    let tracer = MockTracer::new();
    let svc = ServiceBuilder::new()
        .layer(TracingLayer::new(tracer.clone()))
        .service(tower::service_fn(
            |_req: Request<hyper::body::Incoming>| async {
                Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(b"hyper"))))
            },
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let io = hyper_util::rt::TokioIo::new(stream);
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(io, hyper_util::service::TowerToHyperService::new(svc))
            .await;
    });
    let (status, _, body) = get_with(
        addr,
        "/anything/123",
        &[(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )],
    )
    .await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"hyper"[..]));
    let spans = wait_for(&tracer, 1).await;
    assert_eq!(spans[0].operation_name, "GET");
    assert_eq!(
        spans[0].context.trace_id().to_hex32(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_errors_fail_and_finish_the_span() {
    let tracer = MockTracer::new();
    let mut svc = ServiceBuilder::new()
        .layer(TracingLayer::new(tracer.clone()))
        .service(tower::service_fn(|_req: Request<Full<Bytes>>| async {
            Err::<http::Response<Full<Bytes>>, _>("backend unreachable")
        }));
    let req = Request::get("/x").body(Full::new(Bytes::new())).unwrap();
    let err = svc.ready().await.unwrap().call(req).await.unwrap_err();
    assert_eq!(err, "backend unreachable");
    let spans = tracer.finished_spans();
    assert_eq!(spans.len(), 1);
    assert_eq!(tag(&spans[0], tags::ERROR), Some(&TagValue::Bool(true)));
    assert!(spans[0].logs[0]
        .fields
        .iter()
        .any(|f| f.value.as_str() == Some("backend unreachable")));
    assert_eq!(tag(&spans[0], tags::HTTP_STATUS_CODE), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_callers_start_new_traces_without_their_baggage() {
    let tracer = MockTracer::new();
    let app = Router::new().route("/x", get(|| async { "x" })).layer(
        TracingLayer::new(tracer.clone())
            .with_extract_policy(opentracing_api::ExtractPolicy::isolated()),
    );
    let addr = serve(app).await;
    get_with(
        addr,
        "/x",
        &[("uber-trace-id", "abc:def:0:1"), ("uberctx-user", "admin")],
    )
    .await;
    let spans = wait_for(&tracer, 1).await;
    assert_ne!(spans[0].context.trace_id().low(), 0xabc);
    assert!(spans[0].references.is_empty());
    assert!(spans[0].context.baggage().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_layers_policy_holds_with_any_tracer() {
    // The mock tracer trusts everything; the layer's policy still applies.
    let tracer = MockTracer::new();
    let app = Router::new().route("/x", get(|| async { "x" })).layer(
        TracingLayer::new(tracer.clone())
            .with_extract_policy(opentracing_api::ExtractPolicy::untrusted()),
    );
    let addr = serve(app).await;
    get_with(
        addr,
        "/x",
        &[
            ("uber-trace-id", "abc:def:0:1"),
            ("uberctx-user", "admin"),
            ("jaeger-debug-id", "forced"),
        ],
    )
    .await;
    let spans = wait_for(&tracer, 1).await;
    assert_eq!(
        spans[0].context.trace_id().low(),
        0xabc,
        "the trace continues"
    );
    assert!(spans[0].context.baggage().is_empty(), "baggage dropped");
    assert_eq!(spans[0].context.debug_id(), None, "debug id dropped");
    assert!(
        !spans[0].context.is_sampling_decided() || !spans[0].context.flags().is_debug(),
        "the caller's decision is not kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_layer_goes_through_the_tracers_policy() {
    let store = opentracing_jaeger::InMemoryTransport::new();
    let tracer = opentracing_jaeger::JaegerTracer::builder("edge")
        .transport(store.clone())
        .sampler(opentracing_jaeger::sampler::ConstSampler(false))
        .extract_policy(opentracing_api::ExtractPolicy::untrusted())
        .build()
        .unwrap();
    let seen = Arc::new(Mutex::new(None));
    let seen_in_handler = seen.clone();
    let app = Router::new()
        .route(
            "/x",
            get(move || {
                let seen = seen_in_handler.clone();
                async move {
                    let cx = opentracing_api::current_context();
                    *seen.lock().unwrap() = cx;
                    "x"
                }
            }),
        )
        .layer(TracingLayer::new(tracer.clone()));
    let addr = serve(app).await;
    get_with(
        addr,
        "/x",
        &[("uber-trace-id", "abc:def:0:1"), ("uberctx-user", "admin")],
    )
    .await;
    let cx = seen.lock().unwrap().clone().expect("a current span");
    assert_eq!(cx.trace_id().low(), 0xabc, "the trace continues");
    assert!(!cx.is_sampled(), "the forged sampled flag is not trusted");
    assert_eq!(cx.baggage_item("user"), None, "untrusted baggage dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_requests_and_sized_bodies_are_complete_not_failed() {
    for axum_bodies in [false, true] {
        head_and_sized_case(axum_bodies).await;
    }
}

async fn head_and_sized_case(axum_bodies: bool) {
    let tracer = MockTracer::new();
    let addr = serve(app_with(&tracer, axum_bodies)).await;
    let resp = send(addr, http::Method::HEAD, "/users/1").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let _ = resp.into_body().collect().await;
    get_with(addr, "/users/2", &[]).await;
    let spans = wait_for(&tracer, 2).await;
    for s in &spans {
        assert_eq!(tag(s, tags::ERROR), None, "{s:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_destinations_do_not_get_forwarded_trace_headers() {
    let tracer = MockTracer::new();
    let (addr, seen) = recording_server().await;
    let svc = ServiceBuilder::new()
        .layer(
            ClientTracingLayer::new(tracer.clone())
                .with_inject_policy(InjectPolicy::allowlist(["*.internal"])),
        )
        .service(client());
    let mut req = Request::get(format!("http://{addr}/downstream"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    // As a proxy forwarding what it received would.
    req.headers_mut().insert(
        "traceparent",
        HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    );
    req.headers_mut()
        .insert("uberctx-user", HeaderValue::from_static("alice"));
    let resp = svc.oneshot(req).await.unwrap();
    let _ = resp.into_body().collect().await.unwrap();
    let headers = seen.lock().unwrap().pop().unwrap();
    assert!(
        !headers.contains_key("traceparent") && !headers.contains_key("uberctx-user"),
        "{headers:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_spans_can_fail_on_4xx_and_metrics_keep_the_route_name() {
    let tracer = MockTracer::new();
    let metrics = Arc::new(RpcMetrics::default());
    let app = Router::new()
        .route(
            "/renamed",
            get(|CurrentSpan(span): CurrentSpan| async move {
                span.set_operation_name("custom name");
                StatusCode::NOT_FOUND
            }),
        )
        .layer(TracingLayer::new(tracer.clone()).with_observer(metrics.clone()));
    let addr = serve(app).await;
    let svc = ServiceBuilder::new()
        .layer(ClientTracingLayer::new(tracer.clone()).with_client_errors_fail(true))
        .service(client());
    let req = Request::get(format!("http://{addr}/renamed"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = svc.oneshot(req).await.unwrap();
    let _ = resp.into_body().collect().await.unwrap();
    let spans = wait_for(&tracer, 2).await;
    let client_span = spans
        .iter()
        .find(|s| tag(s, tags::SPAN_KIND) == Some(&TagValue::from("client")))
        .unwrap();
    assert_eq!(tag(client_span, tags::ERROR), Some(&TagValue::Bool(true)));
    assert_eq!(
        metrics.counts("GET /renamed"),
        Some((1, 0)),
        "stable endpoint names, whatever the handler sets"
    );
    let server_span = spans
        .iter()
        .find(|s| tag(s, tags::SPAN_KIND) == Some(&TagValue::from("server")))
        .unwrap();
    assert_eq!(
        server_span.operation_name, "custom name",
        "the span itself is renamed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_capture_is_opt_in_and_queries_can_be_redacted() {
    let tracer = MockTracer::new();
    let search = Router::new()
        .route(
            "/search",
            get(|| async { ([("x-cache", "hit")], "results") }),
        )
        .layer(
            TracingLayer::new(tracer.clone())
                .with_request_headers([HeaderName::from_static("x-request-id")])
                .with_response_headers([HeaderName::from_static("x-cache")])
                .with_query(opentracing_tower::QueryPolicy::Redact),
        );
    let addr = serve(search).await;
    get_with(
        addr,
        "/search?q=secret&page=2",
        &[("x-request-id", "r-1"), ("authorization", "Bearer t")],
    )
    .await;
    let spans = wait_for(&tracer, 1).await;
    let s = &spans[0];
    assert_eq!(
        tag(s, "http.request.header.x-request-id"),
        Some(&TagValue::from("r-1".to_owned()))
    );
    assert_eq!(
        tag(s, "http.response.header.x-cache"),
        Some(&TagValue::from("hit".to_owned()))
    );
    assert!(
        s.tags.iter().all(|t| !t.key.contains("authorization")),
        "only allowlisted headers"
    );
    assert_eq!(
        tag(s, tags::HTTP_URL),
        Some(&TagValue::from(format!(
            "http://{addr}/search?q=REDACTED&page=REDACTED"
        )))
    );

    // Without an allowlist, no header is recorded.
    let tracer = MockTracer::new();
    let addr = serve(app(&tracer)).await;
    get_with(addr, "/users/1", &[("x-request-id", "r-2")]).await;
    let spans = wait_for(&tracer, 1).await;
    assert!(spans[0]
        .tags
        .iter()
        .all(|t| !t.key.starts_with("http.request.header.")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_cancelled_before_its_response_finishes_the_span_as_failed() {
    let tracer = MockTracer::new();
    let mut svc = ServiceBuilder::new()
        .layer(TracingLayer::new(tracer.clone()))
        .service(tower::service_fn(|_req: Request<Full<Bytes>>| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::new())))
        }));
    let fut = svc
        .ready()
        .await
        .unwrap()
        .call(Request::get("/slow").body(Full::new(Bytes::new())).unwrap());
    assert!(tokio::time::timeout(Duration::from_millis(20), fut)
        .await
        .is_err());
    let spans = tracer.finished_spans();
    assert_eq!(spans.len(), 1);
    assert_eq!(tag(&spans[0], tags::ERROR), Some(&TagValue::Bool(true)));
    assert!(spans[0].logs[0]
        .fields
        .iter()
        .any(|f| f.value.as_str() == Some("cancelled")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_noop_tracer_still_strips_forwarded_headers_for_denied_hosts() {
    let (addr, seen) = recording_server().await;
    let svc = ServiceBuilder::new()
        .layer(
            ClientTracingLayer::new(opentracing_api::NoopTracer)
                .with_inject_policy(InjectPolicy::allowlist(["*.internal"])),
        )
        .service(client());
    let mut req = Request::get(format!("http://{addr}/downstream"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    req.headers_mut()
        .insert("uber-trace-id", HeaderValue::from_static("1:2:0:1"));
    let resp = svc.oneshot(req).await.unwrap();
    let _ = resp.into_body().collect().await.unwrap();
    let headers = seen.lock().unwrap().pop().unwrap();
    assert!(!headers.contains_key("uber-trace-id"), "{headers:?}");
}

/// The Jaeger tracer sampling nothing (and exporting nowhere).
fn unsampled_jaeger_tracer() -> opentracing_jaeger::JaegerTracer {
    opentracing_jaeger::JaegerTracer::builder("unsampled")
        .sampler(opentracing_jaeger::sampler::ConstSampler(false))
        .exporter(opentracing_jaeger::Exporter::None)
        .build()
        .unwrap()
}

/// With a tracer sampling nothing, the layer keeps only the context: it
/// still reaches the handler, every outgoing call, and the trace-id header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsampled_requests_still_propagate_their_context() {
    let tracer = unsampled_jaeger_tracer();
    let (down_addr, seen) = recording_server().await;
    let traced_client = ServiceBuilder::new()
        .layer(ClientTracingLayer::new(tracer.clone()))
        .service(client());
    let handler_context = Arc::new(Mutex::new(None));
    let hc = handler_context.clone();
    let app = Router::new()
        .route(
            "/chain",
            get(move |CurrentSpan(span): CurrentSpan| {
                let client = traced_client.clone();
                *hc.lock().unwrap() = Some(span.context());
                async move {
                    let req = Request::get(format!("http://{down_addr}/downstream"))
                        .body(Full::new(Bytes::new()))
                        .unwrap();
                    let resp = client.oneshot(req).await.unwrap();
                    resp.status().as_u16().to_string()
                }
            }),
        )
        .layer(
            // Axum bodies: nothing is tracked, so the handler's body goes
            // back as it is.
            TracingLayer::new(tracer.clone())
                .with_trace_id_header(HeaderName::from_static("x-trace-id"))
                .with_axum_bodies(),
        );
    let addr = serve(app).await;
    let incoming = "4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7:0:0";
    let (status, headers, body) = get_with(addr, "/chain", &[("uber-trace-id", incoming)]).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"200"[..]));
    assert_eq!(
        headers["x-trace-id"].to_str().unwrap(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    let cx = handler_context.lock().unwrap().clone().unwrap();
    assert_eq!(cx.trace_id().to_hex32(), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(cx.parent_id().to_u64(), 0x00f0_67aa_0ba9_02b7);
    assert!(!cx.is_sampled());
    // The downstream call carries the trace, as a child of the server
    // span's (unrecorded) client span, still unsampled.
    let down = seen.lock().unwrap().pop().unwrap();
    let sent = down["uber-trace-id"].to_str().unwrap().to_owned();
    let fields: Vec<&str> = sent.split(':').collect();
    assert_eq!(fields.len(), 4, "{sent}");
    assert_eq!(
        format!("{:0>32}", fields[0]),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_ne!(fields[1], "00f067aa0ba902b7");
    assert_eq!(fields[3], "0");
    assert!(
        down["traceparent"]
            .to_str()
            .unwrap()
            .starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{down:?}"
    );
    assert_eq!(
        tracer.metrics().snapshot().spans_finished,
        0,
        "nothing sampled"
    );
    let _ = tracer.close(Duration::from_secs(5));
}

/// RPC metrics count every request, sampled or not, under the route name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_metrics_count_unsampled_requests_too() {
    let tracer = unsampled_jaeger_tracer();
    let metrics = Arc::new(RpcMetrics::default());
    let app = Router::new()
        .route("/users/{id}", get(|| async { "user" }))
        .route("/fail", get(|| async { StatusCode::BAD_GATEWAY }))
        .layer(TracingLayer::new(tracer.clone()).with_observer(metrics.clone()));
    let addr = serve(app).await;
    for path in ["/users/1", "/users/2", "/fail"] {
        get_with(addr, path, &[]).await;
    }
    let start = Instant::now();
    while metrics.counts("GET /fail").is_none() && start.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(metrics.counts("GET /users/{id}"), Some((2, 0)));
    assert_eq!(metrics.counts("GET /fail"), Some((1, 1)));
    let _ = tracer.close(Duration::from_secs(5));
}

/// The trace id of the current span each time a streaming body is polled.
fn stream_noting_current_trace(
    seen: Arc<Mutex<Vec<Option<String>>>>,
) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> + Send {
    futures_util::stream::unfold(0u8, move |n| {
        let seen = seen.clone();
        async move {
            // Polled on whichever thread hyper polls the body on.
            tokio::task::yield_now().await;
            seen.lock()
                .unwrap()
                .push(opentracing_api::current_context().map(|cx| cx.trace_id().to_hex32()));
            (n < 3).then(|| (Ok(Bytes::from(format!("chunk {n}\n"))), n + 1))
        }
    })
}

/// A streaming body is produced by user code as hyper polls it, after the
/// handler has returned: the span must be current then too, sampled or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_bodies_are_polled_with_the_span_current() {
    let incoming = "4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7:0:1";
    let want = Some("4bf92f3577b34da6a3ce929d0e0e4736".to_owned());
    for (recorded, axum_bodies) in [(true, false), (true, true), (false, false), (false, true)] {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let routes = Router::new().route(
            "/stream",
            get(move || {
                let s = s.clone();
                async move { Body::from_stream(stream_noting_current_trace(s)) }
            }),
        );
        let mock = MockTracer::new();
        let jaeger = unsampled_jaeger_tracer();
        let app = match (recorded, axum_bodies) {
            (true, _) => traced(routes, &mock, axum_bodies),
            (false, false) => routes.layer(TracingLayer::new(jaeger.clone())),
            (false, true) => routes.layer(TracingLayer::new(jaeger.clone()).with_axum_bodies()),
        };
        let addr = serve(app).await;
        let (status, _, body) = get_with(addr, "/stream", &[("uber-trace-id", incoming)]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(&body[..], b"chunk 0\nchunk 1\nchunk 2\n");
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 4, "{seen:?}");
        assert!(
            seen.iter().all(|t| *t == want),
            "recorded={recorded} axum_bodies={axum_bodies}: {seen:?}"
        );
        if recorded {
            let spans = wait_for(&mock, 1).await;
            assert_eq!(tag(&spans[0], tags::ERROR), None, "{spans:?}");
        }
        let _ = jaeger.close(Duration::from_secs(5));
    }
}

fn has_log(s: &FinishedSpan, value: &str) -> bool {
    s.logs
        .iter()
        .flat_map(|l| &l.fields)
        .any(|f| f.value.as_str() == Some(value))
}

/// A service whose `call` itself panics (not its future), caught outside
/// the layer: the span still records the failure and the observer hears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_panicking_in_call_fails_the_span() {
    let tracer = MockTracer::new();
    let metrics = Arc::new(RpcMetrics::default());
    let svc = ServiceBuilder::new()
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
        .layer(TracingLayer::new(tracer.clone()).with_observer(metrics.clone()))
        .service_fn(|req: Request<Body>| {
            assert!(req.uri().path() != "/panic", "bug in call");
            std::future::ready(Ok::<_, Infallible>(http::Response::new(Body::from("ok"))))
        });
    let resp = svc
        .oneshot(Request::get("/panic").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let spans = wait_for(&tracer, 1).await;
    assert_eq!(tag(&spans[0], tags::ERROR), Some(&TagValue::Bool(true)));
    assert!(has_log(&spans[0], "panic"), "{spans:?}");
    assert_eq!(metrics.counts("GET"), Some((1, 1)));
}

/// A body that ends short of its Content-Length is a broken response
/// (hyper cuts the connection), not a success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_shorter_than_its_content_length_fails_the_span() {
    let tracer = MockTracer::new();
    let svc = ServiceBuilder::new()
        .layer(TracingLayer::new(tracer.clone()))
        .service_fn(|req: Request<Body>| async move {
            let mut resp = http::Response::new(Full::new(Bytes::from_static(b"0123456789")));
            if req.uri().path() == "/short" {
                resp.headers_mut().insert(
                    http::header::CONTENT_LENGTH,
                    HeaderValue::from_static("100"),
                );
            }
            Ok::<_, Infallible>(resp)
        });
    for (path, fails) in [("/short", true), ("/exact", false)] {
        let resp = svc
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body.len(), 10);
        let spans = tracer.finished_spans();
        let s = spans.last().unwrap();
        assert_eq!(tag(s, tags::ERROR).is_some(), fails, "{path}: {s:?}");
        assert_eq!(has_log(s, "body_length_mismatch"), fails, "{path}: {s:?}");
    }
}

/// An allowed destination gets this span's context only: trace headers a
/// proxy forwards (another format's `traceparent`, baggage the server layer
/// dropped) do not ride along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_destinations_get_only_the_client_span_context() {
    // A Jaeger-only tracer: it writes `uber-trace-id` and no W3C header.
    let tracer = MockTracer::new();
    let (addr, seen) = recording_server().await;
    let svc = ServiceBuilder::new()
        .layer(ClientTracingLayer::new(tracer.clone()))
        .service(client());
    let mut req = Request::get(format!("http://{addr}/downstream"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let forwarded = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    req.headers_mut()
        .insert("traceparent", HeaderValue::from_static(forwarded));
    req.headers_mut()
        .insert("uberctx-role", HeaderValue::from_static("admin"));
    req.headers_mut()
        .insert("accept", HeaderValue::from_static("text/plain"));
    let resp = svc.oneshot(req).await.unwrap();
    let _ = resp.into_body().collect().await.unwrap();
    let headers = seen.lock().unwrap().pop().unwrap();
    let spans = wait_for(&tracer, 1).await;
    let own = spans[0].context.trace_id().to_hex32();
    assert_ne!(own, "0af7651916cd43dd8448eb211c80319c");
    for (name, value) in &headers {
        let v = value.to_str().unwrap();
        assert!(
            !v.contains("0af7651916cd43dd8448eb211c80319c"),
            "{name}: {v}"
        );
    }
    assert!(!headers.contains_key("uberctx-role"), "{headers:?}");
    assert_eq!(headers["accept"], "text/plain");
    let injected: Vec<String> = headers
        .values()
        .filter_map(|v| v.to_str().ok())
        .filter(|v| v.contains(own.trim_start_matches('0')))
        .map(str::to_owned)
        .collect();
    assert!(
        !injected.is_empty(),
        "our context was injected: {headers:?}"
    );
}

/// With an allowlist, a path-only URI (hyper's connection-level client) is
/// not trusted on its `Host` header: no trace headers go out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_only_uris_do_not_match_an_allowlist() {
    let tracer = MockTracer::new();
    let sent = Arc::new(Mutex::new(Vec::new()));
    let s = sent.clone();
    let svc = ServiceBuilder::new()
        .layer(
            ClientTracingLayer::new(tracer.clone())
                .with_inject_policy(InjectPolicy::allowlist(["api.internal"])),
        )
        .service_fn(move |req: Request<Full<Bytes>>| {
            s.lock().unwrap().push(req.headers().clone());
            std::future::ready(Ok::<_, Infallible>(http::Response::new(Full::new(
                Bytes::new(),
            ))))
        });
    for (uri, host, injected) in [
        ("/x", "api.internal", false),
        ("http://api.internal/x", "api.internal", true),
        ("http://partner.example/x", "api.internal", false),
    ] {
        let root = opentracing_api::TracerExt::span(&tracer, "root").start_shared();
        let req = Request::get(uri)
            .header(http::header::HOST, host)
            .body(Full::new(Bytes::new()))
            .unwrap();
        let fut = {
            let _entered = root.enter();
            svc.clone().oneshot(req)
        };
        let _ = fut.await.unwrap();
        let headers = sent.lock().unwrap().pop().unwrap();
        assert_eq!(headers.len() > 1, injected, "{uri}: {headers:?}");
    }
}

/// Extension methods (any token a client sends) cannot mint operation
/// names or metrics endpoints: they all read `_OTHER`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extension_methods_share_one_operation_name() {
    let tracer = MockTracer::new();
    let metrics = Arc::new(RpcMetrics::new(5));
    let app = Router::new()
        .route("/users/{id}", axum::routing::any(|| async { "any" }))
        .layer(TracingLayer::new(tracer.clone()).with_observer(metrics.clone()));
    let addr = serve(app).await;
    for i in 0..8 {
        let m = http::Method::from_bytes(format!("X{i}").as_bytes()).unwrap();
        assert_eq!(send(addr, m, "/users/7").await.status(), StatusCode::OK);
    }
    let spans = wait_for(&tracer, 8).await;
    for (i, s) in spans.iter().enumerate() {
        assert_eq!(s.operation_name, "_OTHER /users/{id}");
        let m = tag(s, tags::HTTP_METHOD)
            .and_then(TagValue::as_str)
            .unwrap();
        assert!(m.starts_with('X'), "{i}: {m}");
    }
    assert_eq!(metrics.counts("_OTHER /users/{id}"), Some((8, 0)));
    assert_eq!(metrics.counts("other"), None);
}
