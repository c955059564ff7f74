//! One trace across HTTP and gRPC hops with no tracing code in any handler:
//! HTTP request → axum handler (`TracingLayer`) → tonic client
//! (`GrpcClientLayer`) → tonic server (`GrpcServerLayer`) → HTTP client
//! (`ClientTracingLayer` over hyper-util) → axum server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use grpc_echo_proto::{Echo, EchoClient, EchoReply, EchoRequest};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use opentracing_api::{Format, MockTracer, Tracer, TracerExt};
use opentracing_tonic::GrpcServerLayer;
use opentracing_tower::{ClientTracingLayer, ClientTracingService, TracingLayer};
use tonic::{Request, Response, Status, Streaming};
use tower::ServiceExt;

use common::{wait_for, ReplyStream, TracedChannel};

type HttpClient = ClientTracingService<Client<HttpConnector, Empty<Bytes>>, MockTracer>;

async fn serve_http(app: Router) -> SocketAddr {
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

async fn http_get(client: HttpClient, url: String) -> String {
    let req = http::Request::get(url).body(Empty::new()).unwrap();
    let resp = client.oneshot(req).await.unwrap();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

/// The gRPC service in the middle: answers with what the HTTP backend says.
#[derive(Clone)]
struct Middle {
    http: HttpClient,
    backend: SocketAddr,
}

#[tonic::async_trait]
impl Echo for Middle {
    async fn unary(&self, _: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        let message = http_get(
            self.http.clone(),
            format!("http://{}/customer", self.backend),
        )
        .await;
        Ok(Response::new(EchoReply { message }))
    }

    type ServerStreamStream = ReplyStream;

    async fn server_stream(
        &self,
        _: Request<EchoRequest>,
    ) -> Result<Response<ReplyStream>, Status> {
        Err(Status::unimplemented("unary only"))
    }

    async fn client_stream(
        &self,
        _: Request<Streaming<EchoRequest>>,
    ) -> Result<Response<EchoReply>, Status> {
        Err(Status::unimplemented("unary only"))
    }

    type BidiStream = ReplyStream;

    async fn bidi(
        &self,
        _: Request<Streaming<EchoRequest>>,
    ) -> Result<Response<ReplyStream>, Status> {
        Err(Status::unimplemented("unary only"))
    }
}

async fn dispatch(State(mut grpc): State<EchoClient<TracedChannel>>) -> String {
    grpc.unary(EchoRequest::default())
        .await
        .unwrap()
        .into_inner()
        .message
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_grpc_http_makes_one_trace_with_no_tracing_code_in_handlers() {
    let tracer = MockTracer::new();
    // The HTTP backend.
    let backend = serve_http(
        Router::new()
            .route("/customer", get(|| async { "customer 123" }))
            .layer(TracingLayer::new(tracer.clone())),
    )
    .await;
    // The gRPC service, calling the backend.
    let http = tower::ServiceBuilder::new()
        .layer(ClientTracingLayer::new(tracer.clone()))
        .service(Client::builder(hyper_util::rt::TokioExecutor::new()).build_http());
    let grpc_addr = common::serve_echo(
        GrpcServerLayer::new(tracer.clone()),
        Middle { http, backend },
    )
    .await;
    // The HTTP front end, calling the gRPC service.
    let grpc = common::client(&tracer, grpc_addr).await;
    let front = serve_http(
        Router::new()
            .route("/dispatch", get(dispatch))
            .with_state(grpc)
            .layer(TracingLayer::new(tracer.clone())),
    )
    .await;

    let root = tracer.span("test").start();
    let mut req = http::Request::get(format!("http://{front}/dispatch"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    tracer.inject(root.context(), Format::HttpHeaders, req.headers_mut());
    let plain = Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let resp = plain.request(req).await.unwrap();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"customer 123");
    let root_cx = root.context().clone();
    root.finish();

    let spans = wait_for(&tracer, 6).await;
    let by_name = |name: &str, kind: &str| {
        spans
            .iter()
            .find(|s| {
                s.operation_name == name
                    && s.tag("span.kind").and_then(|v| v.as_str()) == Some(kind)
            })
            .unwrap_or_else(|| panic!("no {kind} span {name}: {spans:#?}"))
    };
    let chain = [
        by_name("GET /dispatch", "server"),
        by_name("/bench.Echo/Unary", "client"),
        by_name("/bench.Echo/Unary", "server"),
        by_name("GET", "client"),
        by_name("GET /customer", "server"),
    ];
    let mut parent = root_cx.span_id();
    for s in chain {
        assert_eq!(
            s.context.trace_id(),
            root_cx.trace_id(),
            "{}",
            s.operation_name
        );
        assert_eq!(
            s.parent_span_id(),
            Some(parent),
            "{} is the child of the one before",
            s.operation_name
        );
        assert!(s.tag("error").is_none(), "{s:#?}");
        parent = s.context.span_id();
    }
}
