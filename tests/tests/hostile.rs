//! Hostile input on every adapter, over real sockets:
//!
//! - the HTTP server layer (`TracingLayer`) and the gRPC server layer
//!   (`GrpcServerLayer`) receiving 64 KiB trace headers, 10 000 baggage
//!   items, invalid UTF-8, CRLF in baggage values (percent-encoded
//!   `%0D%0A`, which decodes to CRLF), zero ids, `traceparent` version `ff`
//!   and unknown flags. Each handler calls a recording downstream server
//!   through the tower client layer: the request succeeds, the server span
//!   is a clean root or the child of the valid context, and what goes
//!   downstream is valid headers only (no CR/LF, nothing of the hostile
//!   bytes, baggage within 64 items / 8192 bytes). With a `JaegerTracer`
//!   the malformed contexts are counted (`span_context_decoding_errors`).
//! - the reqwest middleware and the tower HTTP client layer receiving
//!   hostile *response* headers (64 KiB, invalid UTF-8, 10 000 headers,
//!   trace headers in responses): the call ends normally or with a clean
//!   error, the client span is finished once, and nothing of the response
//!   leaks into the span's context.
//! - the gRPC client layer receiving a `grpc-status` that is not a number
//!   (in trailers and trailers-only): a sane status, a finished span.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod reliability;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use grpc_echo_proto::{EchoReply, EchoRequest};
use http::{HeaderMap, HeaderName, HeaderValue};
use http_body_util::{BodyExt, Full};
use opentracing_api::prelude::*;
use opentracing_api::{FinishedSpan, MockTracer, SpanContext, TagValue};
use opentracing_jaeger::{InMemoryTransport, JaegerTracer, PropagationFormat};
use opentracing_reqwest::TracingMiddleware;
use opentracing_tonic::{GrpcClientLayer, GrpcServerLayer};
use opentracing_tower::{ClientTracingLayer, TracingLayer};
use prost::Message;
use reliability::{wait_until, Serving};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN: &str = "00f067aa0ba902b7";
const KIB64: usize = 64 * 1024;

/// What the server span must be.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// A new root trace (the incoming context is unusable).
    Root,
    /// The child of this (trace id low 64 bits, span id).
    Child(u64, u64),
}

const JAEGER_PARENT: Expect = Expect::Child(1, 2);
const W3C_PARENT: Expect = Expect::Child(0xa3ce_929d_0e0e_4736, 0x00f0_67aa_0ba9_02b7);

struct Case {
    name: &'static str,
    headers: Vec<(HeaderName, HeaderValue)>,
    expect: Expect,
    /// The incoming context is malformed: a `JaegerTracer` counts it.
    malformed: bool,
}

fn h(name: &str, value: impl AsRef<[u8]>) -> (HeaderName, HeaderValue) {
    (
        HeaderName::from_bytes(name.as_bytes()).unwrap(),
        HeaderValue::from_bytes(value.as_ref()).unwrap(),
    )
}

fn traceparent(version: &str, trace: &str, span: &str, flags: &str) -> (HeaderName, HeaderValue) {
    h("traceparent", format!("{version}-{trace}-{span}-{flags}"))
}

#[allow(clippy::too_many_lines)]
fn cases() -> Vec<Case> {
    let jaeger = || h("uber-trace-id", "1:2:0:1");
    let w3c = || traceparent("00", TRACE, SPAN, "01");
    let many_uberctx: Vec<_> = (0..10_000)
        .map(|i| h(&format!("uberctx-k{i}"), format!("v{i}")))
        .chain([jaeger()])
        .collect();
    let many_w3c = (0..10_000)
        .map(|i| format!("k{i}=v{i}"))
        .collect::<Vec<_>>()
        .join(",");
    vec![
        Case {
            name: "64 KiB uber-trace-id",
            headers: vec![h("uber-trace-id", "f".repeat(KIB64))],
            expect: Expect::Root,
            malformed: true,
        },
        Case {
            name: "64 KiB traceparent",
            headers: vec![h("traceparent", format!("00-{}", "a".repeat(KIB64)))],
            expect: Expect::Root,
            malformed: true,
        },
        Case {
            name: "64 KiB uberctx value",
            headers: vec![jaeger(), h("uberctx-big", "v".repeat(KIB64))],
            expect: JAEGER_PARENT,
            malformed: false,
        },
        Case {
            name: "64 KiB W3C baggage",
            headers: vec![w3c(), h("baggage", format!("big={}", "v".repeat(KIB64)))],
            expect: W3C_PARENT,
            malformed: false,
        },
        Case {
            name: "64 KiB tracestate",
            headers: vec![w3c(), h("tracestate", format!("k={}", "v".repeat(KIB64)))],
            expect: W3C_PARENT,
            malformed: false,
        },
        Case {
            name: "10 000 uberctx headers",
            headers: many_uberctx,
            expect: JAEGER_PARENT,
            malformed: false,
        },
        Case {
            name: "10 000 W3C baggage items",
            headers: vec![w3c(), h("baggage", many_w3c)],
            expect: W3C_PARENT,
            malformed: false,
        },
        Case {
            name: "invalid UTF-8 in baggage and tracestate",
            headers: vec![
                jaeger(),
                h("uberctx-bin", [0xff, 0xfe, b'a']),
                h("baggage", [b'k', b'=', 0xff, 0xc0]),
                h("tracestate", [b'k', b'=', 0xff]),
            ],
            expect: JAEGER_PARENT,
            malformed: false,
        },
        Case {
            name: "invalid UTF-8 in uber-trace-id",
            headers: vec![h(
                "uber-trace-id",
                [b'1', 0xff, b':', b'2', b':', b'0', b':', b'1'],
            )],
            expect: Expect::Root,
            malformed: true,
        },
        Case {
            name: "invalid UTF-8 in traceparent",
            headers: vec![h("traceparent", {
                let mut v = format!("00-{TRACE}-{SPAN}-01").into_bytes();
                v[10] = 0xff;
                v
            })],
            expect: Expect::Root,
            malformed: true,
        },
        Case {
            name: "CRLF in uberctx value",
            headers: vec![
                jaeger(),
                h("uberctx-evil", "a%0D%0AX-Injected:%20yes%0D%0A%0D%0Abody"),
                h("jaeger-baggage", "k%0D%0AX-Injected=1,other=a%0Ab"),
            ],
            expect: JAEGER_PARENT,
            malformed: false,
        },
        Case {
            name: "CRLF in W3C baggage value",
            headers: vec![
                w3c(),
                h(
                    "baggage",
                    "evil=a%0D%0AX-Injected%3A%20yes,k%0D%0Ax=v,ok=fine",
                ),
            ],
            expect: W3C_PARENT,
            malformed: false,
        },
        Case {
            name: "zero ids in uber-trace-id",
            headers: vec![h("uber-trace-id", "0:0:0:1")],
            expect: Expect::Root,
            malformed: true,
        },
        Case {
            name: "zero trace id in traceparent",
            headers: vec![traceparent("00", &"0".repeat(32), SPAN, "01")],
            expect: Expect::Root,
            malformed: true,
        },
        Case {
            name: "zero span id in traceparent",
            headers: vec![traceparent("00", TRACE, &"0".repeat(16), "01")],
            expect: Expect::Root,
            malformed: true,
        },
        Case {
            name: "traceparent version ff",
            headers: vec![traceparent("ff", TRACE, SPAN, "01")],
            expect: Expect::Root,
            malformed: true,
        },
        Case {
            name: "traceparent with unknown flags",
            headers: vec![traceparent("00", TRACE, SPAN, "ff")],
            expect: W3C_PARENT,
            malformed: false,
        },
    ]
}

// ---------------------------------------------------------------------------
// What goes downstream.

fn is_trace_header(name: &str) -> bool {
    matches!(
        name,
        "uber-trace-id"
            | "jaeger-debug-id"
            | "jaeger-baggage"
            | "traceparent"
            | "tracestate"
            | "baggage"
            | "b3"
    ) || name.starts_with("uberctx-")
        || name.starts_with("x-b3-")
}

/// Percent-decodes (lossily) for measuring baggage.
fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() + 1 && i + 3 <= b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Checks what a downstream server got: valid headers only, no CR/LF, no
/// header smuggled in through baggage, baggage within the limits.
fn check_downstream(case: &str, headers: &HeaderMap) {
    let mut uberctx_items = 0;
    let mut uberctx_bytes = 0;
    for (name, value) in headers {
        let n = name.as_str();
        assert!(
            !n.contains("injected"),
            "{case}: a header was smuggled downstream: {n}"
        );
        let v = value.as_bytes();
        assert!(
            !v.contains(&b'\r') && !v.contains(&b'\n'),
            "{case}: CR/LF downstream in {n}"
        );
        if !is_trace_header(n) {
            continue;
        }
        let v = value
            .to_str()
            .unwrap_or_else(|_| panic!("{case}: {n} is not visible ASCII: {value:?}"));
        assert!(
            v.len() <= 3 * 8192 + 256,
            "{case}: {n} of {} bytes went downstream",
            v.len()
        );
        assert!(
            !v.contains("vvvvvvvvvvvvvvvv"),
            "{case}: {n} forwards the payload"
        );
        if let Some(key) = n.strip_prefix("uberctx-") {
            uberctx_items += 1;
            uberctx_bytes += key.len() + pct_decode(v).len();
        }
        if n == "baggage" {
            let items: Vec<&str> = v.split(',').filter(|i| !i.trim().is_empty()).collect();
            assert!(items.len() <= 64, "{case}: {} baggage items", items.len());
            let total: usize = items
                .iter()
                .map(|i| pct_decode(i.split(';').next().unwrap_or("")).len() - 1)
                .sum();
            assert!(total <= 8192, "{case}: {total} bytes of W3C baggage");
        }
    }
    assert!(uberctx_items <= 64, "{case}: {uberctx_items} uberctx items");
    assert!(
        uberctx_bytes <= 8192,
        "{case}: {uberctx_bytes} uberctx bytes"
    );
}

/// Checks the server span against the case.
fn check_server_span(case: &Case, span: &FinishedSpan) {
    let cx = &span.context;
    assert!(cx.is_valid(), "{}: {span:?}", case.name);
    assert!(
        cx.baggage().len() <= 64 && cx.baggage().total_len() <= 8192,
        "{}: baggage over the limits: {} items, {} bytes",
        case.name,
        cx.baggage().len(),
        cx.baggage().total_len()
    );
    assert!(
        cx.baggage().iter().all(|(_, v)| v.len() <= 4096),
        "{}",
        case.name
    );
    match case.expect {
        Expect::Root => {
            assert!(
                span.parent_span_id().is_none() && span.references.is_empty(),
                "{}: a clean root expected: {span:?}",
                case.name
            );
        }
        Expect::Child(trace, parent) => {
            assert_eq!(cx.trace_id().low(), trace, "{}", case.name);
            assert_eq!(
                span.parent_span_id().map(opentracing_api::SpanId::to_u64),
                Some(parent),
                "{}: the valid context is the parent",
                case.name
            );
        }
    }
}

fn kind(s: &FinishedSpan) -> Option<&str> {
    s.tag(tags::SPAN_KIND).and_then(TagValue::as_str)
}

// ---------------------------------------------------------------------------
// The HTTP server layer.

/// An app whose handler relays to `down` through the client layer.
fn edge_app<T>(tracer: T, down: SocketAddr) -> Router
where
    T: Tracer + Clone + Send + Sync + 'static,
{
    let t = tracer.clone();
    Router::new()
        .route(
            "/edge",
            get(move || {
                let t = t.clone();
                async move {
                    let svc = tower::ServiceBuilder::new()
                        .layer(ClientTracingLayer::new(t))
                        .service(reliability::http_client());
                    let req = http::Request::get(format!("http://{down}/down"))
                        .body(Full::new(Bytes::new()))
                        .unwrap();
                    let resp = svc.oneshot(req).await.unwrap();
                    let body = resp.into_body().collect().await.unwrap().to_bytes();
                    assert_eq!(body, "ok");
                    "relayed"
                }
            }),
        )
        .layer(TracingLayer::new(tracer))
}

async fn call_edge(addr: SocketAddr, case: &Case) {
    let mut req = http::Request::get(format!("http://{addr}/edge"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    for (k, v) in &case.headers {
        req.headers_mut().append(k.clone(), v.clone());
    }
    let resp = reliability::http_client()
        .request(req)
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", case.name));
    assert_eq!(resp.status(), http::StatusCode::OK, "{}", case.name);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "relayed", "{}", case.name);
}

fn jaeger_tracer(store: &InMemoryTransport) -> JaegerTracer {
    JaegerTracer::builder("hostile")
        .transport(store.clone())
        .propagation(&[
            PropagationFormat::Jaeger,
            PropagationFormat::TraceContext,
            PropagationFormat::Baggage,
            PropagationFormat::B3Single,
        ])
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_server_layer_handles_hostile_headers_with_the_mock_tracer() {
    let (down, seen, _down) = reliability::recording_server().await;
    for case in cases() {
        let tracer = MockTracer::new();
        let (addr, _server) =
            reliability::serve_axum_large_headers(edge_app(tracer.clone(), down)).await;
        call_edge(addr, &case).await;
        let t = tracer.clone();
        wait_until("two spans", || t.finished_spans().len() >= 2).await;
        let spans = tracer.finished_spans();
        let server = spans.iter().find(|s| kind(s) == Some("server")).unwrap();
        let client = spans.iter().find(|s| kind(s) == Some("client")).unwrap();
        check_server_span(&case, server);
        assert_eq!(client.parent_span_id(), Some(server.context.span_id()));
        check_downstream(case.name, &seen.lock().unwrap().pop().unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_server_layer_handles_hostile_headers_with_the_jaeger_tracer() {
    let (down, seen, _down) = reliability::recording_server().await;
    for case in cases() {
        let store = InMemoryTransport::new();
        let tracer = jaeger_tracer(&store);
        let (addr, _server) =
            reliability::serve_axum_large_headers(edge_app(tracer.clone(), down)).await;
        call_edge(addr, &case).await;
        let t = tracer.clone();
        wait_until("two spans", || t.metrics().snapshot().spans_finished >= 2).await;
        reliability::flush(&tracer).await;
        let spans = store.spans();
        let server = spans.iter().find(|s| kind(s) == Some("server")).unwrap();
        check_server_span(&case, server);
        check_downstream(case.name, &seen.lock().unwrap().pop().unwrap());
        let m = tracer.metrics().snapshot();
        assert_eq!(
            m.span_context_decoding_errors > 0,
            case.malformed,
            "{}: decoding errors counted: {m:?}",
            case.name
        );
        reliability::close(&tracer).await;
    }
}

/// 10 000 incoming baggage items, of which at most 64 can be kept, and a
/// value over the size limit: the items the propagators drop for the
/// limits are counted in `baggage_dropped`, like those the tracer's
/// restrictions drop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baggage_dropped_for_the_limits_is_counted() {
    let store = InMemoryTransport::new();
    let tracer = jaeger_tracer(&store);
    for case in cases() {
        if !case.name.starts_with("10 000") && !case.name.starts_with("64 KiB uberctx") {
            continue;
        }
        let before = tracer.metrics().snapshot().baggage_dropped;
        let mut carrier = HeaderMap::new();
        for (k, v) in &case.headers {
            carrier.append(k.clone(), v.clone());
        }
        let cx = tracer
            .extract(opentracing_api::Format::HttpHeaders, &carrier)
            .unwrap()
            .unwrap();
        assert!(cx.baggage().len() <= 64);
        let after = tracer.metrics().snapshot().baggage_dropped;
        assert!(
            after > before,
            "{}: items dropped for the limits are not counted (baggage_dropped {before} -> {after})",
            case.name
        );
    }
    tracer.close(Duration::from_secs(10)).unwrap();
}

// ---------------------------------------------------------------------------
// The gRPC server layer.

/// `bench.Echo` whose unary call relays to an HTTP server through the
/// tower client layer, then answers.
#[derive(Clone)]
struct RelayEcho<T> {
    tracer: T,
    down: SocketAddr,
    contexts: Arc<Mutex<Vec<Option<SpanContext>>>>,
}

#[tonic::async_trait]
impl<T: Tracer + Clone + Send + Sync + 'static> reliability::Unary for RelayEcho<T> {
    async fn unary(
        &self,
        request: tonic::Request<EchoRequest>,
    ) -> Result<tonic::Response<EchoReply>, tonic::Status> {
        self.contexts
            .lock()
            .unwrap()
            .push(opentracing_api::current_context());
        let svc = tower::ServiceBuilder::new()
            .layer(ClientTracingLayer::new(self.tracer.clone()))
            .service(reliability::http_client());
        let req = http::Request::get(format!("http://{}/down", self.down))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = svc
            .oneshot(req)
            .await
            .map_err(|e| tonic::Status::internal(e.to_string()))?;
        let _ = resp.into_body().collect().await;
        Ok(tonic::Response::new(EchoReply {
            message: request.into_inner().message,
        }))
    }
}

/// Calls `addr` with the case's headers as metadata.
async fn call_grpc(addr: SocketAddr, case: &Case) -> Result<(), tonic::Status> {
    let headers = case.headers.clone();
    let svc = tower::ServiceBuilder::new()
        .map_request(move |mut req: http::Request<tonic::body::Body>| {
            for (k, v) in &headers {
                req.headers_mut().append(k.clone(), v.clone());
            }
            req
        })
        .service(reliability::channel(addr).await);
    let reply = tokio::time::timeout(
        Duration::from_secs(10),
        grpc_echo_proto::EchoClient::new(svc).unary(EchoRequest {
            message: "hi".into(),
            code: 0,
        }),
    )
    .await
    .unwrap_or_else(|_| panic!("{}: the call hung", case.name))?;
    assert_eq!(reply.get_ref().message, "hi");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_server_layer_handles_hostile_metadata() {
    let (down, seen, _down) = reliability::recording_server().await;
    for case in cases() {
        // The mock tracer: the span's shape.
        let tracer = MockTracer::new();
        let echo = RelayEcho {
            tracer: tracer.clone(),
            down,
            contexts: Arc::default(),
        };
        let (addr, _server) =
            reliability::serve_grpc(GrpcServerLayer::new(tracer.clone()), echo).await;
        call_grpc(addr, &case)
            .await
            .unwrap_or_else(|s| panic!("{}: {s:?}", case.name));
        let t = tracer.clone();
        wait_until("two spans", || t.finished_spans().len() >= 2).await;
        let spans = tracer.finished_spans();
        let server = spans.iter().find(|s| kind(s) == Some("server")).unwrap();
        check_server_span(&case, server);
        check_downstream(case.name, &seen.lock().unwrap().pop().unwrap());

        // The Jaeger tracer: the counters.
        let store = InMemoryTransport::new();
        let tracer = jaeger_tracer(&store);
        let echo = RelayEcho {
            tracer: tracer.clone(),
            down,
            contexts: Arc::default(),
        };
        let contexts = echo.contexts.clone();
        let (addr, _server) =
            reliability::serve_grpc(GrpcServerLayer::new(tracer.clone()), echo).await;
        call_grpc(addr, &case)
            .await
            .unwrap_or_else(|s| panic!("{}: {s:?}", case.name));
        check_downstream(case.name, &seen.lock().unwrap().pop().unwrap());
        let cx = contexts.lock().unwrap().pop().unwrap().unwrap();
        assert!(cx.baggage().len() <= 64 && cx.baggage().total_len() <= 8192);
        let m = tracer.metrics().snapshot();
        assert_eq!(
            m.span_context_decoding_errors > 0,
            case.malformed,
            "{}: decoding errors counted: {m:?}",
            case.name
        );
        reliability::close(&tracer).await;
    }
}

// ---------------------------------------------------------------------------
// Clients receiving hostile responses.

/// A raw HTTP/1.1 server answering every request with `response`, byte
/// for byte, then closing the connection.
async fn raw_server(response: Vec<u8>) -> (SocketAddr, Serving) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let response: Arc<[u8]> = response.into();
    let task = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            while connections.try_join_next().is_some() {}
            let response = response.clone();
            connections.spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let _ = stream.write_all(&response).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (addr, Serving(task))
}

/// A `200 OK` whose head carries `headers` (raw lines, without CRLF).
fn response_with(headers: &[Vec<u8>]) -> Vec<u8> {
    let mut out = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n".to_vec();
    for h in headers {
        out.extend_from_slice(h);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\nok");
    out
}

/// Hostile responses: `(name, response, whether the HTTP client can parse
/// it at all)`.
fn hostile_responses() -> Vec<(&'static str, Vec<u8>, bool)> {
    let line = |s: &str| s.as_bytes().to_vec();
    vec![
        (
            "64 KiB header",
            response_with(&[line(&format!("uberctx-big: {}", "v".repeat(KIB64)))]),
            true,
        ),
        (
            "trace headers in the response",
            response_with(&[
                line(&format!("traceparent: ff-{TRACE}-{SPAN}-01")),
                line("uber-trace-id: 0:0:0:1"),
                line("uberctx-evil: a%0D%0AX-Injected:%20yes"),
                line("baggage: evil=a%0D%0Ab"),
                line("grpc-status: not-a-number"),
            ]),
            true,
        ),
        (
            "invalid UTF-8 header values",
            response_with(&[
                [b"x-bin: ".as_slice(), &[0xff, 0xfe, 0x80]].concat(),
                [b"uber-trace-id: ".as_slice(), &[0xff]].concat(),
                [b"content-type: text/".as_slice(), &[0xc0, 0xaf]].concat(),
            ]),
            true,
        ),
        (
            "10 000 headers",
            response_with(
                &(0..10_000)
                    .map(|i| line(&format!("x-h{i}: v")))
                    .collect::<Vec<_>>(),
            ),
            false,
        ),
    ]
}

/// A client span finished once, the child of `root`, its context free of
/// anything from the response.
fn check_client_span(name: &str, spans: &[FinishedSpan], root: &SpanContext, ok: bool) {
    let clients: Vec<_> = spans.iter().filter(|s| kind(s) == Some("client")).collect();
    assert_eq!(clients.len(), 1, "{name}: one client span: {spans:?}");
    let s = clients[0];
    assert_eq!(s.parent_span_id(), Some(root.span_id()), "{name}");
    assert_eq!(s.context.trace_id(), root.trace_id(), "{name}");
    let baggage: Vec<_> = s.context.baggage().iter().collect();
    assert_eq!(
        baggage,
        [("user", "alice")],
        "{name}: baggage from the response"
    );
    if ok {
        assert_eq!(
            s.tag(tags::HTTP_STATUS_CODE),
            Some(&TagValue::I64(200)),
            "{name}"
        );
        assert_eq!(s.tag(tags::ERROR), None, "{name}");
    } else {
        assert_eq!(s.tag(tags::ERROR), Some(&TagValue::Bool(true)), "{name}");
    }
    for t in &s.tags {
        if let Some(v) = t.value.as_str() {
            assert!(
                v.len() <= 4096,
                "{name}: tag {} of {} bytes",
                t.key,
                v.len()
            );
            assert!(!v.contains('\r') && !v.contains('\n'), "{name}: {}", t.key);
        }
    }
}

fn root_span(tracer: &MockTracer) -> opentracing_api::SharedSpan {
    let mut root = tracer.span("root").start();
    root.set_baggage_item("user", "alice").unwrap();
    root.into_shared()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reqwest_middleware_handles_hostile_response_headers() {
    for (name, response, parsable) in hostile_responses() {
        let (addr, _server) = raw_server(response).await;
        let tracer = MockTracer::new();
        let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(TracingMiddleware::new(tracer.clone()))
            .build();
        let root = root_span(&tracer);
        let result = tokio::time::timeout(
            Duration::from_secs(10),
            client
                .get(format!("http://{addr}/x"))
                .send()
                .with_span(root.clone()),
        )
        .await
        .unwrap_or_else(|_| panic!("{name}: hung"));
        match result {
            Ok(resp) => {
                assert!(parsable, "{name}: parsed a response it should refuse");
                assert_eq!(resp.status(), reqwest::StatusCode::OK, "{name}");
                assert_eq!(resp.text().await.unwrap(), "ok", "{name}");
            }
            Err(e) => assert!(!parsable, "{name}: {e}"),
        }
        let t = tracer.clone();
        wait_until("the client span", || !t.finished_spans().is_empty()).await;
        check_client_span(name, &tracer.finished_spans(), &root.context(), parsable);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tower_client_layer_handles_hostile_response_headers() {
    for (name, response, parsable) in hostile_responses() {
        let (addr, _server) = raw_server(response).await;
        let tracer = MockTracer::new();
        let svc = tower::ServiceBuilder::new()
            .layer(ClientTracingLayer::new(tracer.clone()))
            .service(reliability::http_client());
        let root = root_span(&tracer);
        let req = http::Request::get(format!("http://{addr}/x"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let result = tokio::time::timeout(
            Duration::from_secs(10),
            svc.oneshot(req).with_span(root.clone()),
        )
        .await
        .unwrap_or_else(|_| panic!("{name}: hung"));
        match result {
            Ok(resp) => {
                assert!(parsable, "{name}: parsed a response it should refuse");
                assert_eq!(resp.status(), http::StatusCode::OK, "{name}");
                let body = resp.into_body().collect().await.unwrap().to_bytes();
                assert_eq!(body, "ok", "{name}");
            }
            Err(e) => assert!(!parsable, "{name}: {e}"),
        }
        let t = tracer.clone();
        wait_until("the client span", || !t.finished_spans().is_empty()).await;
        check_client_span(name, &tracer.finished_spans(), &root.context(), parsable);
    }
}

// ---------------------------------------------------------------------------
// A gRPC server answering with a `grpc-status` that is not a number.

/// One gRPC message frame holding an `EchoReply`.
fn reply_frame() -> Bytes {
    let msg = EchoReply {
        message: "hi".into(),
    }
    .encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&u32::try_from(msg.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(&msg);
    frame.into()
}

type Frames = http_body_util::StreamBody<
    tokio_stream::Iter<
        std::vec::IntoIter<Result<http_body::Frame<Bytes>, std::convert::Infallible>>,
    >,
>;

/// A hand-made HTTP/2 gRPC server: each call gets `grpc-status: status`
/// (raw bytes) in the trailers after one reply, or, `trailers_only`, in
/// the response headers with no body.
async fn bad_status_server(status: &'static [u8], trailers_only: bool) -> (SocketAddr, Serving) {
    let svc = tower::service_fn(
        move |_req: http::Request<hyper::body::Incoming>| async move {
            let mut status_headers = HeaderMap::new();
            status_headers.insert("grpc-status", HeaderValue::from_bytes(status).unwrap());
            status_headers.insert(
                "grpc-message",
                HeaderValue::from_static("a%0D%0AX-Injected:%20yes"),
            );
            let mut resp = http::Response::builder()
                .status(200)
                .header("content-type", "application/grpc");
            let frames = if trailers_only {
                for (k, v) in &status_headers {
                    resp = resp.header(k, v);
                }
                Vec::new()
            } else {
                vec![
                    Ok(http_body::Frame::data(reply_frame())),
                    Ok(http_body::Frame::trailers(status_headers)),
                ]
            };
            let body: Frames = http_body_util::StreamBody::new(tokio_stream::iter(frames));
            Ok::<_, std::convert::Infallible>(resp.body(body).unwrap())
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            while connections.try_join_next().is_some() {}
            connections.spawn(reliability::serve_connection(stream, svc));
        }
    });
    (addr, Serving(task))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_client_layer_handles_a_grpc_status_that_is_not_a_number() {
    let statuses: [&'static [u8]; 9] = [
        b"abc",
        b"",
        b"99999999999999999999",
        b"-1",
        b"17",
        b"0x0",
        b" 0",
        &[0xff, 0xfe],
        b"2147483648",
    ];
    for status in statuses {
        for trailers_only in [false, true] {
            let what = format!(
                "grpc-status {:?} ({})",
                String::from_utf8_lossy(status),
                if trailers_only {
                    "trailers-only"
                } else {
                    "trailers"
                }
            );
            let (addr, _server) = bad_status_server(status, trailers_only).await;
            let tracer = MockTracer::new();
            let svc = tower::ServiceBuilder::new()
                .layer(GrpcClientLayer::new(tracer.clone()))
                .service(reliability::channel(addr).await);
            let mut client = grpc_echo_proto::EchoClient::new(svc);
            let result = tokio::time::timeout(
                Duration::from_secs(10),
                client.unary(EchoRequest {
                    message: "hi".into(),
                    code: 0,
                }),
            )
            .await
            .unwrap_or_else(|_| panic!("{what}: hung"));
            let t = tracer.clone();
            wait_until("the client span", || !t.finished_spans().is_empty()).await;
            let spans = tracer.finished_spans();
            assert_eq!(spans.len(), 1, "{what}: {spans:?}");
            let span = &spans[0];
            let code = span.tag("rpc.grpc.status_code").and_then(TagValue::as_i64);
            assert!(
                code.is_none_or(|c| (0..=16).contains(&c)),
                "{what}: status code tag {code:?}"
            );
            match &result {
                Ok(_) => {
                    // Only a status that is a number may read as OK.
                    assert_eq!(code, Some(0), "{what}: {result:?}");
                }
                Err(s) => {
                    assert_ne!(s.code(), tonic::Code::Ok, "{what}");
                    assert_eq!(
                        span.tag(tags::ERROR),
                        Some(&TagValue::Bool(true)),
                        "{what}: a failed call fails its span: {span:?}"
                    );
                }
            }
            for l in &span.logs {
                for f in &l.fields {
                    if let Some(v) = f.value.as_str() {
                        assert!(v.len() <= 4096, "{what}");
                    }
                }
            }
        }
    }
}
