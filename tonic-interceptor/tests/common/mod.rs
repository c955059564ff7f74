//! A real tonic server and client on 127.0.0.1:0 for the tests, serving
//! `bench.Echo` with handlers that make no tracing calls.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::manual_assert
)]

use std::net::SocketAddr;
use std::pin::Pin;
use std::time::{Duration, Instant};

use grpc_echo_proto::{Echo, EchoReply, EchoRequest, EchoServer};
use opentracing_api::{current_context, FinishedSpan, MockTracer, TagValue};
use opentracing_tonic::{GrpcClientLayer, GrpcClientService, GrpcServerLayer};
use tokio_stream::{Stream, StreamExt};
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Code, Request, Response, Status, Streaming};

pub type ReplyStream = Pin<Box<dyn Stream<Item = Result<EchoReply, Status>> + Send>>;

/// The current span's id as hex, or `none`: what handlers answer with, so
/// tests can check the server span was current where the reply was made.
pub fn current_span_id() -> String {
    current_context().map_or_else(
        || "none".to_owned(),
        |c| format!("{:x}", c.span_id().to_u64()),
    )
}

fn status(code: i32, what: &str) -> Result<(), Status> {
    if code == 0 {
        Ok(())
    } else {
        Err(Status::new(
            Code::from(code),
            format!("{what} failed with {code}"),
        ))
    }
}

/// `bench.Echo`: `message` may be `panic` (the handler panics) or
/// `sleep:<ms>` (the handler sleeps first); replies carry the current
/// span's id.
#[derive(Clone, Copy, Default)]
pub struct TestEcho;

#[tonic::async_trait]
impl Echo for TestEcho {
    async fn unary(&self, request: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        let r = request.into_inner();
        if r.message == "panic" {
            panic!("the handler panicked on purpose");
        }
        if let Some(ms) = r.message.strip_prefix("sleep:") {
            tokio::time::sleep(Duration::from_millis(ms.parse().unwrap())).await;
        }
        status(r.code, "unary")?;
        Ok(Response::new(EchoReply {
            message: current_span_id(),
        }))
    }

    type ServerStreamStream = ReplyStream;

    async fn server_stream(
        &self,
        request: Request<EchoRequest>,
    ) -> Result<Response<ReplyStream>, Status> {
        let r = request.into_inner();
        let slow = r.message.starts_with("slow");
        let code = r.code;
        // Each reply is made as the response stream is polled.
        let replies = tokio_stream::iter(0..3).then(move |_| async move {
            if slow {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Ok(EchoReply {
                message: current_span_id(),
            })
        });
        let end = tokio_stream::iter([status(code, "stream")]).filter_map(|r| r.err().map(Err));
        Ok(Response::new(Box::pin(replies.chain(end))))
    }

    async fn client_stream(
        &self,
        request: Request<Streaming<EchoRequest>>,
    ) -> Result<Response<EchoReply>, Status> {
        let mut incoming = request.into_inner();
        let mut n = 0;
        let mut code = 0;
        while let Some(r) = incoming.next().await {
            let r = r?;
            n += 1;
            code = r.code;
        }
        status(code, "client stream")?;
        Ok(Response::new(EchoReply {
            message: format!("{n} {}", current_span_id()),
        }))
    }

    type BidiStream = ReplyStream;

    async fn bidi(
        &self,
        request: Request<Streaming<EchoRequest>>,
    ) -> Result<Response<ReplyStream>, Status> {
        let incoming = request.into_inner();
        let replies = incoming.map(|r| {
            let r = r?;
            status(r.code, "bidi")?;
            Ok(EchoReply {
                message: format!("{} {}", r.message, current_span_id()),
            })
        });
        Ok(Response::new(Box::pin(replies)))
    }
}

/// Serves `bench.Echo` (with `TestEcho`) and the health service behind
/// `layer` on 127.0.0.1:0.
pub async fn serve(layer: GrpcServerLayer<MockTracer>) -> SocketAddr {
    serve_echo(layer, TestEcho).await
}

/// Serves `echo` and the health service behind `layer` on 127.0.0.1:0.
pub async fn serve_echo<E: Echo>(layer: GrpcServerLayer<MockTracer>, echo: E) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_reporter, health) = tonic_health::server::health_reporter();
    tokio::spawn(async move {
        Server::builder()
            .layer(layer)
            .add_service(health)
            .add_service(EchoServer::new(echo))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    addr
}

pub type TracedChannel = GrpcClientService<Channel, MockTracer>;

/// A channel to `addr`.
pub async fn channel(addr: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// A traced client of `addr`.
pub async fn client(
    tracer: &MockTracer,
    addr: SocketAddr,
) -> grpc_echo_proto::EchoClient<TracedChannel> {
    let layer =
        GrpcClientLayer::new(tracer.clone()).with_origin(format!("http://{addr}").parse().unwrap());
    let svc = tower::ServiceBuilder::new()
        .layer(layer)
        .service(channel(addr).await);
    grpc_echo_proto::EchoClient::new(svc)
}

/// Waits until `n` spans have finished.
pub async fn wait_for(tracer: &MockTracer, n: usize) -> Vec<FinishedSpan> {
    let start = Instant::now();
    loop {
        let spans = tracer.finished_spans();
        if spans.len() >= n {
            return spans;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "only {} of {n} spans finished: {spans:#?}",
            spans.len()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The one finished span of `kind` (`server`, `client`).
pub fn the<'a>(spans: &'a [FinishedSpan], kind: &str) -> &'a FinishedSpan {
    let found: Vec<_> = spans
        .iter()
        .filter(|s| s.tag("span.kind").and_then(TagValue::as_str) == Some(kind))
        .collect();
    assert_eq!(found.len(), 1, "one {kind} span expected: {spans:#?}");
    found[0]
}

/// The span's `rpc.grpc.status_code`.
pub fn code(s: &FinishedSpan) -> Option<i64> {
    s.tag("rpc.grpc.status_code").and_then(TagValue::as_i64)
}

pub fn is_error(s: &FinishedSpan) -> bool {
    s.tag("error").and_then(TagValue::as_bool) == Some(true)
}

/// The `error.kind` and `message` of the span's error log, if any.
pub fn error_log(s: &FinishedSpan) -> Option<(String, String)> {
    s.logs.iter().find_map(|l| {
        let field = |k: &str| {
            l.fields
                .iter()
                .find(|f| f.key == k)
                .map(|f| f.value.to_string())
        };
        (field("event").as_deref() == Some("error")).then(|| {
            (
                field("error.kind").unwrap_or_default(),
                field("message").unwrap_or_default(),
            )
        })
    })
}
