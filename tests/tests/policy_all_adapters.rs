//! The propagation policy on every adapter, against real servers:
//!
//! - `InjectPolicy`: a destination outside the allowlist receives no trace
//!   headers and no baggage, whether the call goes through the tower HTTP
//!   client layer, the tonic client layer or the reqwest middleware, and
//!   even when the outgoing request already carries forwarded trace
//!   headers. An allowed destination (the control) gets them.
//! - `ExtractPolicy::untrusted()`, set on the layer or on the tracer: an
//!   incoming `sampled=1` does not force sampling on a tracer that samples
//!   nothing (`ConstSampler(false)`), and the caller's baggage is dropped
//!   (and not forwarded downstream), on the HTTP server layer and the gRPC
//!   server layer. The trusted control shows the same request does force
//!   sampling and keep baggage.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod reliability;

use std::sync::{Arc, Mutex};

use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use grpc_echo_proto::{EchoReply, EchoRequest};
use http::{HeaderMap, HeaderValue};
use http_body_util::{BodyExt, Full};
use opentracing_api::prelude::*;
use opentracing_api::{ExtractPolicy, InjectPolicy, NoopTracer, SharedSpan, SpanContext};
use opentracing_jaeger::sampler::ConstSampler;
use opentracing_jaeger::{Exporter, InMemoryTransport, JaegerTracer, PropagationFormat};
use opentracing_reqwest::TracingMiddleware;
use opentracing_tonic::{GrpcClientLayer, GrpcServerLayer};
use opentracing_tower::{ClientTracingLayer, TracingLayer};
use tower::ServiceExt;

const ALL_FORMATS: [PropagationFormat; 5] = [
    PropagationFormat::Jaeger,
    PropagationFormat::TraceContext,
    PropagationFormat::Baggage,
    PropagationFormat::B3Single,
    PropagationFormat::B3Multi,
];

/// Whether `name` is a header of any standard trace format.
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

fn trace_headers(h: &HeaderMap) -> Vec<String> {
    h.keys()
        .map(http::HeaderName::as_str)
        .filter(|n| is_trace_header(n))
        .map(str::to_owned)
        .collect()
}

/// A tracer writing every format, recording nothing anywhere.
fn client_tracer() -> JaegerTracer {
    JaegerTracer::builder("policy-client")
        .exporter(Exporter::None)
        .propagation(&ALL_FORMATS)
        .build()
        .unwrap()
}

/// A current span with baggage, for the client adapters to parent on.
fn root(tracer: &JaegerTracer) -> SharedSpan {
    let mut root = tracer.span("root").start();
    root.set_baggage_item("user", "alice").unwrap();
    root.into_shared()
}

/// Trace headers a proxy would forward: they must never ride along.
fn forwarded(h: &mut HeaderMap) {
    h.insert(
        "traceparent",
        HeaderValue::from_static("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
    );
    h.insert("uberctx-forwarded", HeaderValue::from_static("secret"));
    h.insert("baggage", HeaderValue::from_static("forwarded=secret"));
}

/// `(policy, whether 127.0.0.1 may get trace headers)`.
fn policies() -> [(InjectPolicy, bool); 4] {
    [
        (InjectPolicy::allowlist(["*.internal", "localhost"]), false),
        (InjectPolicy::None, false),
        (InjectPolicy::allowlist(["127.0.0.1"]), true),
        (InjectPolicy::All, true),
    ]
}

fn check(adapter: &str, policy: &InjectPolicy, allowed: bool, headers: &HeaderMap) {
    let found = trace_headers(headers);
    if allowed {
        for h in ["uber-trace-id", "traceparent", "b3", "x-b3-traceid"] {
            assert!(
                headers.contains_key(h),
                "{adapter} {policy:?}: {h} missing: {headers:?}"
            );
        }
        assert_eq!(
            headers.get("uberctx-user").map(HeaderValue::as_bytes),
            Some(&b"alice"[..]),
            "{adapter} {policy:?}: {headers:?}"
        );
    } else {
        assert!(
            found.is_empty(),
            "{adapter} {policy:?}: a denied destination got {found:?}"
        );
    }
    for (name, value) in headers {
        let v = value.to_str().unwrap_or_default();
        assert!(
            !v.contains("0af7651916cd43dd8448eb211c80319c") && !v.contains("secret"),
            "{adapter} {policy:?}: forwarded trace data went out in {name}: {v}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_client_layer_withholds_trace_headers_from_denied_hosts() {
    let (addr, seen, _server) = reliability::recording_server().await;
    let tracer = client_tracer();
    for (policy, allowed) in policies() {
        let svc = tower::ServiceBuilder::new()
            .layer(ClientTracingLayer::new(tracer.clone()).with_inject_policy(policy.clone()))
            .service(reliability::http_client());
        let mut req = http::Request::get(format!("http://{addr}/downstream"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        forwarded(req.headers_mut());
        let root = root(&tracer);
        let resp = svc.oneshot(req).with_span(root).await.unwrap();
        let _ = resp.into_body().collect().await.unwrap();
        let headers = seen.lock().unwrap().pop().unwrap();
        check("tower client", &policy, allowed, &headers);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reqwest_middleware_withholds_trace_headers_from_denied_hosts() {
    let (addr, seen, _server) = reliability::recording_server().await;
    let tracer = client_tracer();
    for (policy, allowed) in policies() {
        let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(TracingMiddleware::new(tracer.clone()).with_inject_policy(policy.clone()))
            .build();
        let mut headers = HeaderMap::new();
        forwarded(&mut headers);
        let resp = client
            .get(format!("http://{addr}/downstream"))
            .headers(headers)
            .send()
            .with_span(root(&tracer))
            .await
            .unwrap();
        assert_eq!(resp.status(), reqwest::StatusCode::OK);
        let headers = seen.lock().unwrap().pop().unwrap();
        check("reqwest", &policy, allowed, &headers);
    }
}

/// `bench.Echo` recording each call's metadata and the current context
/// while the handler runs.
#[derive(Clone, Default)]
struct RecordingEcho {
    metadata: Arc<Mutex<Vec<HeaderMap>>>,
    contexts: Arc<Mutex<Vec<Option<SpanContext>>>>,
}

#[tonic::async_trait]
impl reliability::Unary for RecordingEcho {
    async fn unary(
        &self,
        request: tonic::Request<EchoRequest>,
    ) -> Result<tonic::Response<EchoReply>, tonic::Status> {
        self.metadata
            .lock()
            .unwrap()
            .push(request.metadata().clone().into_headers());
        self.contexts
            .lock()
            .unwrap()
            .push(opentracing_api::current_context());
        Ok(tonic::Response::new(EchoReply {
            message: request.into_inner().message,
        }))
    }
}

fn echo_request() -> EchoRequest {
    EchoRequest {
        message: "hi".into(),
        code: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_client_layer_withholds_trace_metadata_from_denied_hosts() {
    let echo = RecordingEcho::default();
    let (addr, _server) =
        reliability::serve_grpc(GrpcServerLayer::new(NoopTracer), echo.clone()).await;
    let channel = reliability::channel(addr).await;
    let tracer = client_tracer();
    let origin: http::Uri = format!("http://{addr}").parse().unwrap();
    for (policy, allowed) in policies() {
        let svc = tower::ServiceBuilder::new()
            // Forwarded trace metadata, as a proxy would pass it on (added
            // before the layer sees the call).
            .map_request(|mut req: http::Request<tonic::body::Body>| {
                forwarded(req.headers_mut());
                req
            })
            .layer(
                GrpcClientLayer::new(tracer.clone())
                    .with_inject_policy(policy.clone())
                    .with_origin(origin.clone()),
            )
            .service(channel.clone());
        let mut client = grpc_echo_proto::EchoClient::new(svc);
        client
            .unary(echo_request())
            .with_span(root(&tracer))
            .await
            .unwrap();
        let headers = echo.metadata.lock().unwrap().pop().unwrap();
        check("grpc client", &policy, allowed, &headers);
    }
    // Without an origin the allowlist has no host to match: it fails
    // closed.
    let svc = tower::ServiceBuilder::new()
        .layer(
            GrpcClientLayer::new(tracer.clone())
                .with_inject_policy(InjectPolicy::allowlist(["127.0.0.1"])),
        )
        .service(channel.clone());
    grpc_echo_proto::EchoClient::new(svc)
        .unary(echo_request())
        .with_span(root(&tracer))
        .await
        .unwrap();
    let headers = echo.metadata.lock().unwrap().pop().unwrap();
    assert!(trace_headers(&headers).is_empty(), "{headers:?}");
}

// ---------------------------------------------------------------------------
// Server side.

/// Where the untrusted policy is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PolicyOn {
    /// Nowhere: the control.
    Nowhere,
    Layer,
    Tracer,
}

const ALL_POLICIES: [PolicyOn; 3] = [PolicyOn::Nowhere, PolicyOn::Layer, PolicyOn::Tracer];

/// A tracer sampling nothing by itself, recording into `store`.
fn server_tracer(on: PolicyOn, store: &InMemoryTransport) -> JaegerTracer {
    let b = JaegerTracer::builder("policy-server")
        .transport(store.clone())
        .sampler(ConstSampler(false))
        .propagation(&ALL_FORMATS);
    let b = if on == PolicyOn::Tracer {
        b.extract_policy(ExtractPolicy::untrusted())
    } else {
        b
    };
    b.build().unwrap()
}

fn layer_policy(on: PolicyOn) -> ExtractPolicy {
    if on == PolicyOn::Layer {
        ExtractPolicy::untrusted()
    } else {
        ExtractPolicy::trusted()
    }
}

/// What a caller claiming a sampled trace with baggage sends, in each
/// format: `(name, value)`.
const INCOMING: [(&str, &[(&str, &str)]); 3] = [
    (
        "jaeger",
        &[("uber-trace-id", "abc:def:0:1"), ("uberctx-user", "admin")],
    ),
    (
        "w3c",
        &[
            (
                "traceparent",
                "00-00000000000000000000000000000abc-0000000000000def-01",
            ),
            ("baggage", "user=admin"),
        ],
    ),
    (
        "b3",
        &[
            ("b3", "00000000000000000000000000000abc-0000000000000def-1"),
            ("baggage", "user=admin"),
        ],
    ),
];

/// Checks the context the handler ran in and the tracer's counters.
fn check_server(
    adapter: &str,
    on: PolicyOn,
    format: &str,
    cx: Option<&SpanContext>,
    tracer: &JaegerTracer,
) {
    let cx = cx.unwrap_or_else(|| panic!("{adapter} {on:?} {format}: no current span"));
    assert_eq!(
        cx.trace_id().low(),
        0xabc,
        "{adapter} {on:?} {format}: the caller's trace continues"
    );
    let m = tracer.metrics().snapshot();
    if on == PolicyOn::Nowhere {
        assert!(
            cx.is_sampled(),
            "{adapter} {format}: trusted sampled=1 is kept"
        );
        assert_eq!(cx.baggage_item("user"), Some("admin"), "{adapter} {format}");
        assert!(m.spans_started_sampled > 0, "{adapter} {format}: {m:?}");
    } else {
        assert!(
            !cx.is_sampled(),
            "{adapter} {on:?} {format}: an untrusted sampled=1 forced sampling"
        );
        assert_eq!(
            cx.baggage_item("user"),
            None,
            "{adapter} {on:?} {format}: untrusted baggage kept"
        );
        assert!(cx.baggage().is_empty(), "{adapter} {on:?} {format}");
        assert_eq!(
            (m.spans_started_sampled, m.spans_finished),
            (0, 0),
            "{adapter} {on:?} {format}: nothing is recorded: {m:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_server_layer_does_not_trust_untrusted_callers() {
    let (down_addr, down_seen, _down) = reliability::recording_server().await;
    for on in ALL_POLICIES {
        for (format, incoming) in INCOMING {
            let store = InMemoryTransport::new();
            let tracer = server_tracer(on, &store);
            let seen: Arc<Mutex<Option<SpanContext>>> = Arc::default();
            let (s, t) = (seen.clone(), tracer.clone());
            let app = Router::new()
                .route(
                    "/edge",
                    get(move || {
                        let (s, t) = (s.clone(), t.clone());
                        async move {
                            *s.lock().unwrap() = opentracing_api::current_context();
                            // A downstream call from the handler: it must
                            // not carry the caller's baggage or decision.
                            let svc = tower::ServiceBuilder::new()
                                .layer(ClientTracingLayer::new(t))
                                .service(reliability::http_client());
                            let req = http::Request::get(format!("http://{down_addr}/down"))
                                .body(Full::new(Bytes::new()))
                                .unwrap();
                            let resp = svc.oneshot(req).await.unwrap();
                            let _ = resp.into_body().collect().await;
                            "edge"
                        }
                    }),
                )
                .layer(TracingLayer::new(tracer.clone()).with_extract_policy(layer_policy(on)));
            let (addr, _server) = reliability::serve_axum(app).await;
            let mut req = http::Request::get(format!("http://{addr}/edge"))
                .body(Full::new(Bytes::new()))
                .unwrap();
            for (k, v) in incoming {
                req.headers_mut().insert(
                    http::HeaderName::from_static(k),
                    HeaderValue::from_static(v),
                );
            }
            let resp = reliability::http_client().request(req).await.unwrap();
            assert_eq!(resp.status(), http::StatusCode::OK);
            let _ = resp.into_body().collect().await.unwrap();
            let cx = seen.lock().unwrap().clone();
            tracer.flush(std::time::Duration::from_secs(10)).unwrap();
            check_server("http server", on, format, cx.as_ref(), &tracer);
            let down = down_seen.lock().unwrap().pop().unwrap();
            let uber = down.get("uber-trace-id").unwrap().to_str().unwrap();
            assert_eq!(
                uber.split(':').next().map(|t| t.trim_start_matches('0')),
                Some("abc"),
                "{on:?} {format}: the trace continues downstream: {uber}"
            );
            if on == PolicyOn::Nowhere {
                assert!(uber.ends_with(":1"), "{format}: {uber}");
                assert!(down.contains_key("uberctx-user"), "{format}: {down:?}");
            } else {
                assert!(
                    uber.ends_with(":0"),
                    "{on:?} {format}: the forged decision went downstream: {uber}"
                );
                assert!(
                    !down.contains_key("uberctx-user")
                        && !down
                            .get("baggage")
                            .is_some_and(|b| b.to_str().unwrap_or("").contains("admin")),
                    "{on:?} {format}: untrusted baggage went downstream: {down:?}"
                );
            }
            if on != PolicyOn::Nowhere {
                assert!(store.spans().is_empty(), "{on:?} {format}");
            }
            tracer.close(std::time::Duration::from_secs(10)).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_server_layer_does_not_trust_untrusted_callers() {
    for on in ALL_POLICIES {
        for (format, incoming) in INCOMING {
            let store = InMemoryTransport::new();
            let tracer = server_tracer(on, &store);
            let echo = RecordingEcho::default();
            let (addr, _server) = reliability::serve_grpc(
                GrpcServerLayer::new(tracer.clone()).with_extract_policy(layer_policy(on)),
                echo.clone(),
            )
            .await;
            let svc = tower::ServiceBuilder::new()
                .map_request(move |mut req: http::Request<tonic::body::Body>| {
                    for (k, v) in incoming {
                        req.headers_mut().insert(
                            http::HeaderName::from_static(k),
                            HeaderValue::from_static(v),
                        );
                    }
                    req
                })
                .service(reliability::channel(addr).await);
            grpc_echo_proto::EchoClient::new(svc)
                .unary(echo_request())
                .await
                .unwrap();
            let cx = echo.contexts.lock().unwrap().pop().unwrap();
            tracer.flush(std::time::Duration::from_secs(10)).unwrap();
            check_server("grpc server", on, format, cx.as_ref(), &tracer);
            if on != PolicyOn::Nowhere {
                assert!(store.spans().is_empty(), "{on:?} {format}");
            }
            tracer.close(std::time::Duration::from_secs(10)).unwrap();
        }
    }
}
