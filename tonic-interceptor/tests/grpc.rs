//! The layers on a real tonic server and client on 127.0.0.1:0, with the
//! mock tracer recording the spans: unary and streaming calls, statuses in
//! headers and trailers, deadlines, cancellations and panics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{client, code, error_log, is_error, serve, the, wait_for};
use grpc_echo_proto::{EchoClient, EchoRequest};
use opentracing_api::{
    tags, ExtractPolicy, InjectPolicy, MockTracer, SpanFutureExt, TagValue, TracerExt,
};
use opentracing_tonic::{ClientInterceptor, GrpcClientLayer, GrpcServerLayer, ServerInterceptor};
use opentracing_tower::RpcMetrics;
use tokio_stream::StreamExt;
use tonic::{Code, Request};

fn req(message: &str, code: i32) -> EchoRequest {
    EchoRequest {
        message: message.to_owned(),
        code,
    }
}

fn hex(s: &opentracing_api::FinishedSpan) -> String {
    format!("{:x}", s.context.span_id().to_u64())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unary_call_makes_one_trace_with_names_tags_and_the_span_current() {
    let tracer = MockTracer::new();
    let addr = serve(GrpcServerLayer::new(tracer.clone())).await;
    let mut c = client(&tracer, addr).await;
    let root = tracer.span("test").start_shared();
    let reply = c
        .unary(req("hi", 0))
        .with_span(root.clone())
        .await
        .unwrap()
        .into_inner();
    root.finish();
    let spans = wait_for(&tracer, 3).await;
    let (client_span, server) = (the(&spans, "client"), the(&spans, "server"));
    assert_eq!(
        reply.message,
        hex(server),
        "the server span is current in the handler"
    );
    for s in [client_span, server] {
        assert_eq!(s.operation_name, "/bench.Echo/Unary");
        assert_eq!(s.tag(tags::COMPONENT), Some(&TagValue::from("grpc")));
        assert_eq!(code(s), Some(0));
        assert!(!is_error(s), "{s:#?}");
        assert_eq!(s.context.trace_id(), root.context().trace_id());
    }
    assert_eq!(client_span.parent_span_id(), Some(root.context().span_id()));
    assert_eq!(server.parent_span_id(), Some(client_span.context.span_id()));
    assert_eq!(
        server.tag(tags::PEER_HOST_IPV4),
        Some(&TagValue::from("127.0.0.1"))
    );
    assert!(server
        .tag(tags::PEER_PORT)
        .and_then(TagValue::as_i64)
        .is_some_and(|p| p > 0));
    assert_eq!(
        client_span.tag(tags::PEER_HOSTNAME),
        Some(&TagValue::from("127.0.0.1"))
    );
    assert_eq!(
        client_span.tag(tags::PEER_PORT).and_then(TagValue::as_i64),
        Some(i64::from(addr.port()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trailers_only_error_is_read_from_the_headers() {
    let tracer = MockTracer::new();
    let addr = serve(GrpcServerLayer::new(tracer.clone())).await;
    let mut c = client(&tracer, addr).await;
    let status = c.unary(req("x", 5)).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let spans = wait_for(&tracer, 2).await;
    for kind in ["client", "server"] {
        let s = the(&spans, kind);
        assert_eq!(code(s), Some(5), "{kind}");
        assert!(is_error(s), "{kind}");
        assert_eq!(
            error_log(s),
            Some(("NOT_FOUND".into(), "unary failed with 5".into())),
            "{kind}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_streams_finish_with_the_status_in_their_trailers() {
    let tracer = MockTracer::new();
    let addr = serve(GrpcServerLayer::new(tracer.clone())).await;
    let mut c = client(&tracer, addr).await;

    let mut stream = c.server_stream(req("s", 0)).await.unwrap().into_inner();
    let mut replies = Vec::new();
    while let Some(r) = stream.next().await {
        replies.push(r.unwrap().message);
    }
    let spans = wait_for(&tracer, 2).await;
    let server = the(&spans, "server");
    assert_eq!(server.operation_name, "/bench.Echo/ServerStream");
    assert_eq!(
        replies,
        vec![hex(server); 3],
        "current while the stream is polled"
    );
    assert_eq!(code(server), Some(0));
    assert_eq!(code(the(&spans, "client")), Some(0));
    tracer.reset();

    // Three messages, then an error status in the trailers.
    let mut stream = c.server_stream(req("s", 9)).await.unwrap().into_inner();
    let mut n = 0;
    let end = loop {
        match stream.next().await {
            Some(Ok(_)) => n += 1,
            Some(Err(status)) => break status,
            None => panic!("no status"),
        }
    };
    assert_eq!((n, end.code()), (3, Code::FailedPrecondition));
    let spans = wait_for(&tracer, 2).await;
    for kind in ["client", "server"] {
        let s = the(&spans, kind);
        assert_eq!(code(s), Some(9), "{kind}");
        assert_eq!(
            error_log(s),
            Some(("FAILED_PRECONDITION".into(), "stream failed with 9".into())),
            "{kind}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_streaming_and_bidirectional_calls() {
    let tracer = MockTracer::new();
    let addr = serve(GrpcServerLayer::new(tracer.clone())).await;
    let mut c = client(&tracer, addr).await;

    let out = tokio_stream::iter([req("a", 0), req("b", 0), req("c", 0)]);
    let reply = c.client_stream(out).await.unwrap().into_inner();
    let spans = wait_for(&tracer, 2).await;
    let server = the(&spans, "server");
    assert_eq!(server.operation_name, "/bench.Echo/ClientStream");
    assert_eq!(reply.message, format!("3 {}", hex(server)));
    assert_eq!(
        server.parent_span_id(),
        Some(the(&spans, "client").context.span_id())
    );
    tracer.reset();

    let out = tokio_stream::iter([req("a", 0), req("b", 0)]);
    let replies: Vec<_> = c
        .bidi(out)
        .await
        .unwrap()
        .into_inner()
        .map(|r| r.unwrap().message)
        .collect()
        .await;
    let spans = wait_for(&tracer, 2).await;
    let server = the(&spans, "server");
    assert_eq!(server.operation_name, "/bench.Echo/Bidi");
    assert_eq!(
        replies,
        [format!("a {}", hex(server)), format!("b {}", hex(server))]
    );
    assert_eq!(code(server), Some(0));
    tracer.reset();

    // An error status after a message, in the trailers.
    let out = tokio_stream::iter([req("a", 0), req("b", 3)]);
    let mut replies = c.bidi(out).await.unwrap().into_inner();
    assert!(replies.next().await.unwrap().is_ok());
    assert_eq!(
        replies.next().await.unwrap().unwrap_err().code(),
        Code::InvalidArgument
    );
    let spans = wait_for(&tracer, 2).await;
    for kind in ["client", "server"] {
        let s = the(&spans, kind);
        assert_eq!(code(s), Some(3), "{kind}");
        assert!(is_error(s), "{kind}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passed_deadline_is_tagged_and_logged() {
    let tracer = MockTracer::new();
    let addr = serve(GrpcServerLayer::new(tracer.clone())).await;
    let mut c = client(&tracer, addr).await;
    let mut r = Request::new(req("sleep:2000", 0));
    r.set_timeout(Duration::from_millis(100));
    let status = c.unary(r).await.unwrap_err();
    assert!(
        matches!(status.code(), Code::Cancelled | Code::DeadlineExceeded),
        "{status:?}"
    );
    let spans = wait_for(&tracer, 2).await;
    let server = the(&spans, "server");
    assert_eq!(code(server), Some(4));
    assert_eq!(error_log(server).unwrap().0, "deadline_exceeded");
    let client_span = the(&spans, "client");
    assert!(is_error(client_span));
    assert_eq!(error_log(client_span).unwrap().0, "deadline_exceeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_calls_finish_both_spans_as_cancelled() {
    let tracer = MockTracer::new();
    let addr = serve(GrpcServerLayer::new(tracer.clone())).await;
    let mut c = client(&tracer, addr).await;

    // A unary call the caller gives up on.
    let call = c.unary(req("sleep:2000", 0));
    assert!(tokio::time::timeout(Duration::from_millis(100), call)
        .await
        .is_err());
    let spans = wait_for(&tracer, 2).await;
    for (kind, message) in [
        ("client", "the call was dropped before its end"),
        ("server", "the client cancelled the call"),
    ] {
        let s = the(&spans, kind);
        assert_eq!(code(s), Some(1), "{kind}");
        assert_eq!(
            error_log(s),
            Some(("CANCELLED".into(), message.into())),
            "{kind}"
        );
    }
    tracer.reset();

    // A stream dropped after its first message.
    let mut stream = c.server_stream(req("slow", 0)).await.unwrap().into_inner();
    assert!(stream.next().await.unwrap().is_ok());
    drop(stream);
    let spans = wait_for(&tracer, 2).await;
    for kind in ["client", "server"] {
        let s = the(&spans, kind);
        assert_eq!(code(s), Some(1), "{kind}");
        assert!(is_error(s), "{kind}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_fails_the_span() {
    let tracer = MockTracer::new();
    let addr = serve(GrpcServerLayer::new(tracer.clone())).await;
    let mut c = client(&tracer, addr).await;
    assert!(c.unary(req("panic", 0)).await.is_err());
    let spans = wait_for(&tracer, 2).await;
    let server = the(&spans, "server");
    assert!(is_error(server));
    assert_eq!(error_log(server).unwrap().0, "panic");
    assert!(is_error(the(&spans, "client")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_are_skipped_and_metrics_count_grpc_codes() {
    let tracer = MockTracer::new();
    let metrics = Arc::new(RpcMetrics::default());
    let addr = serve(GrpcServerLayer::new(tracer.clone()).with_observer(metrics.clone())).await;
    let mut health =
        tonic_health::pb::health_client::HealthClient::new(common::channel(addr).await);
    health
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .unwrap();
    let mut c = client(&tracer, addr).await;
    c.unary(req("a", 0)).await.unwrap();
    c.unary(req("b", 14)).await.unwrap_err();
    let spans = wait_for(&tracer, 4).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        tracer.finished_spans().len(),
        4,
        "no span for the health check"
    );
    assert!(spans
        .iter()
        .all(|s| s.operation_name == "/bench.Echo/Unary"));
    assert_eq!(metrics.counts("/bench.Echo/Unary"), Some((2, 1)));
    assert_eq!(metrics.counts("/grpc.health.v1.Health/Check"), None);
    assert!(metrics
        .prometheus_text()
        .contains("rpc_requests_total{endpoint=\"/bench.Echo/Unary\",error=\"true\"} 1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_contexts_are_extracted_through_the_policy() {
    let tracer = MockTracer::new();
    let addr = serve(GrpcServerLayer::new(tracer.clone())).await;
    let mut plain = EchoClient::new(common::channel(addr).await);
    let send = |plain: &mut EchoClient<tonic::transport::Channel>,
                md: &[(&'static str, &'static str)]| {
        let mut r = Request::new(req("x", 0));
        for (k, v) in md {
            r.metadata_mut().insert(*k, v.parse().unwrap());
        }
        let mut plain = plain.clone();
        async move { plain.unary(r).await.unwrap() }
    };
    send(
        &mut plain,
        &[
            (
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
            ("baggage", "tenant=acme"),
        ],
    )
    .await;
    let s = &wait_for(&tracer, 1).await[0];
    assert_eq!(
        s.context.trace_id().to_hex32(),
        "0af7651916cd43dd8448eb211c80319c"
    );
    assert_eq!(
        s.parent_span_id().map(opentracing_api::SpanId::to_u64),
        Some(0xb7ad_6b71_6920_3331)
    );
    assert_eq!(s.context.baggage().get("tenant"), Some("acme"));
    tracer.reset();

    send(
        &mut plain,
        &[
            ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
            ("x-b3-spanid", "e457b5a2e4d86bd1"),
            ("x-b3-sampled", "1"),
        ],
    )
    .await;
    let s = &wait_for(&tracer, 1).await[0];
    assert_eq!(
        s.context.trace_id().to_hex32(),
        "80f198ee56343ba864fe8b2a57d3eff7"
    );
    tracer.reset();

    // Binary metadata is not a text context.
    let mut r = Request::new(req("x", 0));
    r.metadata_mut()
        .insert("uber-trace-id", "abc:def:0:1".parse().unwrap());
    r.metadata_mut().insert_bin(
        "uberctx-user-bin",
        tonic::metadata::MetadataValue::from_bytes(b"\x01"),
    );
    plain.unary(r).await.unwrap();
    let s = &wait_for(&tracer, 1).await[0];
    assert_eq!(s.context.trace_id().low(), 0xabc);
    assert!(s.context.baggage().is_empty());
    tracer.reset();

    // An untrusted caller keeps its trace ids, not its baggage.
    let addr =
        serve(GrpcServerLayer::new(tracer.clone()).with_extract_policy(ExtractPolicy::untrusted()))
            .await;
    let mut plain = EchoClient::new(common::channel(addr).await);
    send(
        &mut plain,
        &[("uber-trace-id", "abc:def:0:1"), ("uberctx-tenant", "acme")],
    )
    .await;
    let s = &wait_for(&tracer, 1).await[0];
    assert_eq!(s.context.trace_id().low(), 0xabc);
    assert!(s.context.baggage().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inject_policy_withholds_context_and_forwarded_metadata() {
    let tracer = MockTracer::new();
    let addr = serve(GrpcServerLayer::new(tracer.clone())).await;
    let channel = common::channel(addr).await;
    let denied = GrpcClientLayer::new(tracer.clone())
        .with_origin(format!("http://{addr}").parse().unwrap())
        .with_inject_policy(InjectPolicy::allowlist(["*.internal"]));
    let mut c = EchoClient::new(
        tower::ServiceBuilder::new()
            .layer(denied)
            .service(channel.clone()),
    );
    let mut r = Request::new(req("x", 0));
    r.metadata_mut()
        .insert("uber-trace-id", "abc:def:0:1".parse().unwrap());
    c.unary(r).await.unwrap();
    let spans = wait_for(&tracer, 2).await;
    let server = the(&spans, "server");
    assert_eq!(
        server.parent_span_id(),
        None,
        "no context reached the server"
    );
    assert_ne!(
        server.context.trace_id().low(),
        0xabc,
        "forwarded metadata was removed"
    );
    tracer.reset();

    // Allowed: only the client span's context arrives.
    let allowed = GrpcClientLayer::new(tracer.clone())
        .with_origin(format!("http://{addr}").parse().unwrap())
        .with_inject_policy(InjectPolicy::allowlist(["127.0.0.1"]));
    let mut c = EchoClient::new(tower::ServiceBuilder::new().layer(allowed).service(channel));
    let mut r = Request::new(req("x", 0));
    r.metadata_mut()
        .insert("uber-trace-id", "abc:def:0:1".parse().unwrap());
    c.unary(r).await.unwrap();
    let spans = wait_for(&tracer, 2).await;
    assert_eq!(
        the(&spans, "server").parent_span_id(),
        Some(the(&spans, "client").context.span_id())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interceptors_propagate_the_context() {
    let tracer = MockTracer::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let echo = grpc_echo_proto::EchoServer::with_interceptor(
        common::TestEcho,
        ServerInterceptor::new(tracer.clone()).with_operation_name("bench.Echo"),
    );
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(echo)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let mut c = EchoClient::with_interceptor(
        common::channel(addr).await,
        ClientInterceptor::new(tracer.clone()),
    );
    let root = tracer.span("test").start_shared();
    let root_cx = root.context();
    c.unary(req("x", 0)).with_span(root.clone()).await.unwrap();
    root.finish();
    let spans = wait_for(&tracer, 2).await;
    let server = the(&spans, "server");
    assert_eq!(server.operation_name, "bench.Echo");
    assert_eq!(server.parent_span_id(), Some(root_cx.span_id()));
    assert_eq!(
        server.tag(tags::PEER_HOST_IPV4),
        Some(&TagValue::from("127.0.0.1"))
    );
}
