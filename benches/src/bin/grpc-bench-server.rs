//! The gRPC benchmark server: `bench.Echo` and the standard health check
//! over plain HTTP/2, bare or behind our tonic layer, for load runs.
//!
//! ```text
//! grpc-bench-server --mode bare|noop|unsampled|sampled|otel-unsampled|otel-sampled|fastrace
//!                   [--port N] [--workers N] [--upstream URL]
//! ```
//!
//! `bench.Echo` (`tonic-interceptor/echo-proto/proto/echo.proto`): `Unary`
//! answers with status `code` when it is non-zero, else echoes the
//! message; `ServerStream` sends three replies, then status `code`;
//! `ClientStream` answers with the number of messages received (status
//! `code` of the last one when non-zero); `Bidi` echoes each message, and
//! ends with the status `code` of the first message that has one.
//! `grpc.health.v1.Health/Check` answers `SERVING` (and is not traced).
//!
//! With `--upstream URL` (another grpc-bench-server, say `--mode bare`),
//! `Unary` does not answer itself: it forwards the request to the
//! upstream's `Unary` through the mode's client instrumentation and
//! returns its answer, so a call costs a server span and a client span
//! (the client path, as `http-bench-server`'s `/chain`).
//!
//! Modes: `bare` (no tracing), `noop` (our layer with the no-op tracer),
//! `unsampled` and `sampled` (our layer with the Jaeger tracer configured
//! from the `JAEGER_*` / `OTEL_*` variables, service name
//! `grpc-bench-server` unless set, sampling nothing or everything).
//! `otel-unsampled` and `otel-sampled`: the same service on the
//! OpenTelemetry stack as its users set it up (as `http-bench-server`'s
//! `otel-*` modes): `tonic-tracing-opentelemetry`'s server `OtelGrpcLayer`
//! (health checks filtered out, as its README shows), the
//! `tracing-opentelemetry` layer, the `opentelemetry_sdk` batch processor,
//! `opentelemetry-otlp` (HTTP/protobuf to `OTEL_EXPORTER_OTLP_ENDPOINT`),
//! the W3C propagator set globally, and the always-off or always-on sampler,
//! under the level filter its users run with
//! (`info,otel::tracing=trace,otel=debug`, `init-tracing-opentelemetry`'s).
//!
//! `fastrace`: fastrace as its users set it up, with its official
//! `fastrace-tonic` layers (`FastraceServerLayer`: W3C `traceparent` in, a
//! root span per call, every call sampled; `FastraceClientLayer` on the
//! upstream channel, which injects `traceparent` but makes no span, so the
//! forwarded call runs in a client span made by hand, as its examples do
//! with `#[trace]`) and its Jaeger UDP reporter to `JAEGER_AGENT_HOST` /
//! `JAEGER_AGENT_PORT`.
//!
//! Every client's channel connects lazily, with tonic's defaults
//! (`TCP_NODELAY` on), one HTTP/2 connection shared by all calls.
//!
//! Accepted connections get `TCP_NODELAY`, as with tonic's own `serve`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use grpc_echo_proto::{Echo, EchoClient, EchoReply, EchoRequest, EchoServer};
use opentracing_api::{NoopTracer, Tracer};
use opentracing_tonic::{GrpcClientLayer, GrpcServerLayer};
use tokio_stream::{Stream, StreamExt};
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Code, Request, Response, Status, Streaming};
use tonic_tracing_opentelemetry::middleware::{client, filters, server::OtelGrpcLayer};
use tower::ServiceBuilder;

type ReplyStream = Pin<Box<dyn Stream<Item = Result<EchoReply, Status>> + Send>>;

/// The upstream call `Unary` makes with `--upstream`, through the mode's
/// client.
type Forward = Arc<
    dyn Fn(EchoRequest) -> Pin<Box<dyn Future<Output = Result<EchoReply, Status>> + Send>>
        + Send
        + Sync,
>;

struct Args {
    mode: String,
    port: u16,
    workers: usize,
    upstream: Option<String>,
}

const USAGE: &str = "usage: grpc-bench-server --mode bare|noop|unsampled|sampled|otel-unsampled|otel-sampled|fastrace [--port N] [--workers N] [--upstream URL]";

const MODES: [&str; 7] = [
    "bare",
    "noop",
    "unsampled",
    "sampled",
    "otel-unsampled",
    "otel-sampled",
    "fastrace",
];

fn args() -> Result<Args, String> {
    let mut a = Args {
        mode: "bare".into(),
        port: 50051,
        workers: 1,
        upstream: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--mode" => a.mode = value()?,
            "--port" => a.port = value()?.parse().map_err(|_| "--port: not a port")?,
            "--workers" => a.workers = value()?.parse().map_err(|_| "--workers: not a number")?,
            "--upstream" => a.upstream = Some(value()?),
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    if !MODES.contains(&a.mode.as_str()) {
        return Err(format!("unknown mode {}\n{USAGE}", a.mode));
    }
    Ok(a)
}

/// The status a request asks for, if any.
fn status_of(code: i32) -> Option<Status> {
    (code != 0).then(|| Status::new(Code::from(code), format!("status {code} as requested")))
}

fn reply(message: String) -> EchoReply {
    EchoReply { message }
}

/// `bench.Echo`, forwarding `Unary` to the upstream when there is one.
struct BenchEcho {
    forward: Option<Forward>,
}

#[tonic::async_trait]
impl Echo for BenchEcho {
    async fn unary(&self, request: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        let r = request.into_inner();
        if let Some(forward) = &self.forward {
            return forward(r).await.map(Response::new);
        }
        match status_of(r.code) {
            Some(status) => Err(status),
            None => Ok(Response::new(reply(r.message))),
        }
    }

    type ServerStreamStream = ReplyStream;

    async fn server_stream(
        &self,
        request: Request<EchoRequest>,
    ) -> Result<Response<ReplyStream>, Status> {
        let r = request.into_inner();
        let replies = (0..3)
            .map(|_| Ok(reply(r.message.clone())))
            .collect::<Vec<_>>();
        let end = status_of(r.code).map(Err);
        Ok(Response::new(Box::pin(tokio_stream::iter(
            replies.into_iter().chain(end),
        ))))
    }

    async fn client_stream(
        &self,
        request: Request<Streaming<EchoRequest>>,
    ) -> Result<Response<EchoReply>, Status> {
        let mut incoming = request.into_inner();
        let (mut n, mut code) = (0u64, 0);
        while let Some(r) = incoming.next().await {
            let r = r?;
            n += 1;
            code = r.code;
        }
        match status_of(code) {
            Some(status) => Err(status),
            None => Ok(Response::new(reply(n.to_string()))),
        }
    }

    type BidiStream = ReplyStream;

    async fn bidi(
        &self,
        request: Request<Streaming<EchoRequest>>,
    ) -> Result<Response<ReplyStream>, Status> {
        let mut failed = false;
        let replies = request.into_inner().map_while(move |r| {
            if failed {
                return None;
            }
            Some(r.and_then(|r| match status_of(r.code) {
                Some(status) => {
                    failed = true;
                    Err(status)
                }
                None => Ok(reply(r.message)),
            }))
        });
        Ok(Response::new(Box::pin(replies)))
    }
}

/// The OpenTelemetry stack of the `otel-*` modes, set up as
/// `http-bench-server` sets it up: the W3C propagator, the OTLP/HTTP
/// exporter, the batch processor with the mode's sampler, and the
/// `tracing-opentelemetry` layer the request spans go to; plus the level
/// filter this stack's users run with (`init-tracing-opentelemetry`'s
/// default, `info,otel::tracing=trace,otel=debug`: `OtelGrpcLayer` makes
/// its spans at TRACE level under the `otel::tracing` target). Without it,
/// h2's per-frame TRACE events would all become span events, which no
/// deployment runs with (in a smoke run: about 350 µs of added CPU per
/// call instead of 11).
fn otel_stack(mode: &str) -> Result<opentelemetry_sdk::trace::SdkTracerProvider, String> {
    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .map_err(|e| e.to_string())?;
    let provider = benchmarks::otel_provider(exporter, mode == "otel-sampled");
    let filter = tracing_subscriber::filter::Targets::new()
        .with_default(tracing::Level::INFO)
        .with_target("otel::tracing", tracing::Level::TRACE)
        .with_target("otel", tracing::Level::DEBUG);
    tracing_subscriber::registry()
        .with(filter)
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("grpc-bench-server")))
        .try_init()
        .map_err(|e| e.to_string())?;
    Ok(provider)
}

/// `Unary` calls through `client` (a generated client over the mode's
/// instrumented channel), each in the future `wrap` makes of the call.
fn forward<S, W, F>(client: EchoClient<S>, wrap: W) -> Forward
where
    S: tonic::client::GrpcService<tonic::body::Body> + Clone + Send + Sync + 'static,
    S::Future: Send,
    S::Error: Into<tonic::codegen::StdError>,
    S::ResponseBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    <S::ResponseBody as http_body::Body>::Error: Into<tonic::codegen::StdError> + Send,
    W: Fn(Pin<Box<dyn Future<Output = Result<EchoReply, Status>> + Send>>) -> F
        + Send
        + Sync
        + 'static,
    F: Future<Output = Result<EchoReply, Status>> + Send + 'static,
{
    Arc::new(move |request| {
        let mut client = client.clone();
        let call = Box::pin(async move {
            client
                .unary(Request::new(request))
                .await
                .map(Response::into_inner)
        });
        Box::pin(wrap(call))
    })
}

/// The upstream channel with our client layer and `tracer` on it.
fn ours_forward<T>(channel: Channel, tracer: T) -> Forward
where
    T: Tracer + Clone + Send + Sync + 'static,
{
    let channel = ServiceBuilder::new()
        .layer(GrpcClientLayer::new(tracer))
        .service(channel);
    forward(EchoClient::new(channel), |call| call)
}

#[cfg(feature = "fastrace")]
fn fastrace_forward(channel: Channel) -> Forward {
    use fastrace::future::FutureExt as _;
    let channel = ServiceBuilder::new()
        .layer(fastrace_tonic::FastraceClientLayer)
        .service(channel);
    forward(EchoClient::new(channel), |call| {
        call.in_span(fastrace::Span::enter_with_local_parent("/bench.Echo/Unary"))
    })
}

/// `--upstream`'s channel with the mode's client instrumentation (`tracer`
/// for our traced modes), as the call `Unary` forwards.
fn upstream_forward(
    mode: &str,
    tracer: Option<&opentracing_jaeger::JaegerTracer>,
    upstream: Option<&str>,
) -> Result<Option<Forward>, String> {
    let Some(url) = upstream else {
        return Ok(None);
    };
    let channel = Endpoint::from_shared(url.to_owned())
        .map_err(|e| format!("--upstream {url}: {e}"))?
        .connect_lazy();
    Ok(Some(match (mode, tracer) {
        ("noop", _) => ours_forward(channel, NoopTracer),
        (_, Some(tracer)) => ours_forward(channel, tracer.clone()),
        ("otel-unsampled" | "otel-sampled", _) => forward(
            EchoClient::new(
                ServiceBuilder::new()
                    .layer(client::OtelGrpcLayer)
                    .service(channel),
            ),
            |call| call,
        ),
        #[cfg(feature = "fastrace")]
        ("fastrace", _) => fastrace_forward(channel),
        _ => forward(EchoClient::new(channel), |call| call),
    }))
}

fn main() {
    benchmarks::serve_main(args(), |a: &Args| a.workers, run);
}

async fn run(args: Args) -> Result<(), String> {
    // Set up before listening, as an application would (and so a bad
    // configuration fails before the load starts).
    let mode = args.mode.as_str();
    let provider = match mode {
        "otel-unsampled" | "otel-sampled" => Some(otel_stack(mode)?),
        _ => None,
    };
    #[cfg(feature = "fastrace")]
    if mode == "fastrace" {
        benchmarks::set_fastrace_reporter("grpc-bench-server")?;
    }
    #[cfg(not(feature = "fastrace"))]
    if mode == "fastrace" {
        return Err("built without the `fastrace` feature".into());
    }
    let tracer = match mode {
        "unsampled" | "sampled" => Some(benchmarks::jaeger_tracer(
            "grpc-bench-server",
            mode == "sampled",
        )?),
        _ => None,
    };
    let forward = upstream_forward(mode, tracer.as_ref(), args.upstream.as_deref())?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
        .await
        .map_err(|e| format!("binding port {}: {e}", args.port))?;
    println!(
        "listening on {} ({} mode)",
        listener.local_addr().map_err(|e| e.to_string())?,
        args.mode
    );
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_serving::<EchoServer<BenchEcho>>().await;
    let echo = EchoServer::new(BenchEcho { forward });
    // TCP_NODELAY, as tonic's own `serve` sets by default (it leaves the
    // streams given to `serve_with_incoming` as they are): with Nagle on, a
    // response's last frames can wait for the client's next ACK.
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let served = match (mode, tracer) {
        ("noop", _) => {
            Server::builder()
                .layer(GrpcServerLayer::new(NoopTracer))
                .add_service(health)
                .add_service(echo)
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        }
        (_, Some(tracer)) => {
            Server::builder()
                .layer(GrpcServerLayer::new(tracer))
                .add_service(health)
                .add_service(echo)
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        }
        ("otel-unsampled" | "otel-sampled", _) => {
            Server::builder()
                .layer(OtelGrpcLayer::default().filter(filters::reject_healthcheck))
                .add_service(health)
                .add_service(echo)
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        }
        #[cfg(feature = "fastrace")]
        ("fastrace", _) => {
            Server::builder()
                .layer(fastrace_tonic::FastraceServerLayer::default())
                .add_service(health)
                .add_service(echo)
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        }
        _ => {
            Server::builder()
                .add_service(health)
                .add_service(echo)
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        }
    };
    if let Some(p) = provider {
        let _ = p.shutdown();
    }
    #[cfg(feature = "fastrace")]
    if mode == "fastrace" {
        fastrace::flush();
    }
    served.map_err(|e| e.to_string())
}
