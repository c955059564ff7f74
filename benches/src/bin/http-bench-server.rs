//! The benchmark server: the same small app bare, with our layers, and on
//! the OpenTelemetry stack, for side-by-side load runs.
//!
//! ```text
//! http-bench-server --mode bare|noop|unsampled|sampled|otel-unsampled|otel-sampled|fastrace|identity
//!                   [--port N] [--workers N] [--upstream URL] [--client hyper|reqwest]
//! ```
//!
//! Routes: `GET /hello` (short text), `GET /users/{id}` (small JSON),
//! `GET /status/{code}` (answers with that status), `GET /chain` (calls
//! `{upstream}/downstream` through the mode's client instrumentation and
//! returns its status). `--client` picks the outgoing client: hyper-util's
//! (default; our modes wrap it in our client layer) or reqwest through
//! `reqwest-middleware` (our modes add our middleware; the OpenTelemetry
//! and fastrace modes inject their `traceparent` by hand, as their users
//! do for a client their stack has no middleware for). Our tracer is configured from the `JAEGER_*` /
//! `OTEL_*` variables (service name `http-bench-server` unless set), with
//! the sampler the mode names. The `otel-*` modes run tower-http's
//! `TraceLayer` + `tracing-opentelemetry` + the `opentelemetry_sdk` batch
//! processor + `opentelemetry-otlp` (HTTP/protobuf to
//! `OTEL_EXPORTER_OTLP_ENDPOINT`), with W3C extraction. The `fastrace` mode
//! runs fastrace with its official `fastrace-axum` layer and its Jaeger
//! reporter (UDP to `JAEGER_AGENT_HOST`:`JAEGER_AGENT_PORT`, default
//! `127.0.0.1:6831`), sampling everything, as users who want the fastest
//! Rust tracer set it up. Our tracer exports over whatever the variables
//! say: OTLP HTTP or gRPC, a Jaeger collector, or a Jaeger agent.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{Request, StatusCode};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use opentracing_api::{NoopTracer, Tracer};
use opentracing_tower::{ClientTracingLayer, TracingLayer};
use tower::{ServiceBuilder, ServiceExt};

type HttpClient = Client<HttpConnector, Empty<Bytes>>;
type ChainFuture = Pin<Box<dyn Future<Output = StatusCode> + Send>>;
type Chain = Arc<dyn Fn(String) -> ChainFuture + Send + Sync>;

#[derive(Clone)]
struct AppState {
    upstream: Option<Arc<str>>,
    chain: Chain,
}

struct Args {
    mode: String,
    port: u16,
    workers: usize,
    upstream: Option<String>,
    reqwest: bool,
}

/// The client `/chain` calls its upstream with.
#[derive(Clone)]
enum Outgoing {
    Hyper(Box<HttpClient>),
    Reqwest(reqwest_middleware::ClientWithMiddleware),
}

impl Outgoing {
    /// `GET url` with the headers `decorate` sets, the body drained: its
    /// status.
    async fn get(&self, url: &str, decorate: impl FnOnce(&mut http::HeaderMap)) -> StatusCode {
        match self {
            Outgoing::Hyper(client) => {
                let Some(mut req) = request(url) else {
                    return StatusCode::BAD_REQUEST;
                };
                decorate(req.headers_mut());
                finish(client.request(req).await).await
            }
            Outgoing::Reqwest(client) => {
                let mut headers = http::HeaderMap::new();
                decorate(&mut headers);
                match client.get(url).headers(headers).send().await {
                    Ok(resp) => {
                        let status = resp.status();
                        let _ = resp.bytes().await;
                        status
                    }
                    Err(_) => StatusCode::BAD_GATEWAY,
                }
            }
        }
    }
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        mode: "bare".into(),
        port: 8090,
        workers: 1,
        upstream: None,
        reqwest: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--mode" => a.mode = value()?,
            "--port" => a.port = value()?.parse().map_err(|_| "--port: not a port")?,
            "--workers" => a.workers = value()?.parse().map_err(|_| "--workers: not a number")?,
            "--upstream" => a.upstream = Some(value()?.trim_end_matches('/').to_owned()),
            "--client" => {
                a.reqwest = match value()?.as_str() {
                    "reqwest" => true,
                    "hyper" => false,
                    other => return Err(format!("--client: {other} is not hyper or reqwest")),
                }
            }
            "-h" | "--help" => return Err("usage: http-bench-server --mode bare|noop|unsampled|sampled|otel-unsampled|otel-sampled|fastrace|identity [--port N] [--workers N] [--upstream URL] [--client hyper|reqwest]".into()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if ![
        "bare",
        "identity",
        "noop",
        "unsampled",
        "sampled",
        "otel-unsampled",
        "otel-sampled",
        "fastrace",
    ]
    .contains(&a.mode.as_str())
    {
        return Err(format!("unknown mode {}", a.mode));
    }
    Ok(a)
}

async fn hello() -> &'static str {
    "Hello, World!"
}

async fn status(Path(code): Path<u16>) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST)
}

async fn chain(State(s): State<AppState>) -> StatusCode {
    match &s.upstream {
        Some(u) => (s.chain)(format!("{u}/downstream")).await,
        None => StatusCode::SERVICE_UNAVAILABLE,
    }
}

fn routes(state: AppState) -> Router {
    Router::new()
        .route("/hello", get(hello))
        .route("/users/{id}", get(benchmarks::user))
        .route("/status/{code}", get(status))
        .route("/chain", get(chain))
        .route("/downstream", get(hello))
        .with_state(state)
}

fn request(url: &str) -> Option<Request<Empty<Bytes>>> {
    Request::get(url).body(Empty::new()).ok()
}

/// Sends a request and drains the response, returning its status.
async fn finish<B: http_body::Body>(
    resp: Result<http::Response<B>, impl std::fmt::Display>,
) -> StatusCode {
    match resp {
        Ok(r) => {
            let status = r.status();
            let _ = r.into_body().collect().await;
            status
        }
        Err(_) => StatusCode::BAD_GATEWAY,
    }
}

/// Our layers with `tracer`, a concrete type as in an application (no
/// `dyn Tracer` indirection): the client layer on hyper, or the middleware
/// on reqwest.
fn ours<T: Tracer + Clone + 'static>(
    tracer: T,
    client: Outgoing,
    upstream: Option<Arc<str>>,
) -> Router {
    let chain: Chain = match client {
        Outgoing::Hyper(client) => {
            let traced = ServiceBuilder::new()
                .layer(ClientTracingLayer::new(tracer.clone()))
                .service(*client);
            Arc::new(move |url| {
                let traced = traced.clone();
                Box::pin(async move {
                    match request(&url) {
                        Some(req) => finish(traced.oneshot(req).await).await,
                        None => StatusCode::BAD_REQUEST,
                    }
                })
            })
        }
        Outgoing::Reqwest(_) => {
            let traced = Outgoing::Reqwest(
                reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
                    .with(opentracing_reqwest::TracingMiddleware::new(tracer.clone()))
                    .build(),
            );
            Arc::new(move |url| {
                let traced = traced.clone();
                Box::pin(async move { traced.get(&url, |_| {}).await })
            })
        }
    };
    routes(AppState { upstream, chain }).layer(TracingLayer::new(tracer).with_axum_bodies())
}

fn bare(client: Outgoing, upstream: Option<Arc<str>>) -> Router {
    let chain: Chain = Arc::new(move |url| {
        let client = client.clone();
        Box::pin(async move { client.get(&url, |_| {}).await })
    });
    routes(AppState { upstream, chain })
}

/// The OpenTelemetry stack as its users set it up.
fn otel(
    mode: &str,
    client: Outgoing,
    upstream: Option<Arc<str>>,
) -> Result<(Router, opentelemetry_sdk::trace::SdkTracerProvider), String> {
    use opentelemetry::trace::TracerProvider as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
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
    tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("http-bench-server")))
        .try_init()
        .map_err(|e| e.to_string())?;
    let chain: Chain = Arc::new(move |url| {
        let client = client.clone();
        Box::pin(async move {
            let cx = tracing::Span::current().context();
            client
                .get(&url, |headers| {
                    opentelemetry::global::get_text_map_propagator(|p| {
                        p.inject_context(&cx, &mut opentelemetry_http::HeaderInjector(headers));
                    });
                })
                .await
        })
    });
    let layer = tower_http::trace::TraceLayer::new_for_http()
        .make_span_with(benchmarks::otel_make_span)
        .on_response(
            |resp: &http::Response<axum::body::Body>,
             _latency: std::time::Duration,
             span: &tracing::Span| {
                span.record("http.status_code", resp.status().as_u16());
            },
        );
    Ok((routes(AppState { upstream, chain }).layer(layer), provider))
}

#[cfg(feature = "fastrace")]
/// fastrace as its users set it up: the `fastrace-axum` layer (W3C
/// `traceparent` in, a root span per request, every request sampled), the
/// Jaeger UDP reporter, and `traceparent` injected on the outgoing call
/// under a client span.
fn fastrace_app(client: Outgoing, upstream: Option<Arc<str>>) -> Result<Router, String> {
    use fastrace::future::FutureExt as _;

    benchmarks::set_fastrace_reporter("http-bench-server")?;
    let chain: Chain = Arc::new(move |url| {
        let client = client.clone();
        let span = fastrace::Span::enter_with_local_parent("GET");
        Box::pin(
            async move {
                let parent = fastrace::prelude::SpanContext::current_local_parent();
                client
                    .get(&url, |headers| {
                        if let Some(cx) = parent {
                            if let Ok(v) = http::HeaderValue::try_from(cx.encode_w3c_traceparent())
                            {
                                headers.insert("traceparent", v);
                            }
                        }
                    })
                    .await
            }
            .in_span(span),
        )
    });
    Ok(routes(AppState { upstream, chain }).layer(fastrace_axum::FastraceLayer::default()))
}

fn main() {
    benchmarks::serve_main(args(), |a: &Args| a.workers, run);
}

async fn run(args: Args) -> Result<(), String> {
    let client = if args.reqwest {
        Outgoing::Reqwest(reqwest_middleware::ClientBuilder::new(reqwest::Client::new()).build())
    } else {
        Outgoing::Hyper(Box::new(
            Client::builder(hyper_util::rt::TokioExecutor::new()).build_http(),
        ))
    };
    let upstream: Option<Arc<str>> = args.upstream.as_deref().map(Arc::from);
    let mut provider = None;
    let app = match args.mode.as_str() {
        "bare" => bare(client, upstream),
        // Not one of the compared stacks: the cost of any `Router::layer`
        // (axum boxes the layered routes), for reference.
        "identity" => bare(client, upstream).layer(tower::layer::util::Identity::new()),
        "noop" => ours(NoopTracer, client, upstream),
        "unsampled" | "sampled" => ours(
            benchmarks::jaeger_tracer("http-bench-server", args.mode == "sampled")?,
            client,
            upstream,
        ),
        #[cfg(feature = "fastrace")]
        "fastrace" => fastrace_app(client, upstream)?,
        #[cfg(not(feature = "fastrace"))]
        "fastrace" => return Err("built without the `fastrace` feature".into()),
        _ => {
            let (app, p) = otel(&args.mode, client, upstream)?;
            provider = Some(p);
            app
        }
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
        .await
        .map_err(|e| format!("binding port {}: {e}", args.port))?;
    println!(
        "listening on {} ({} mode)",
        listener.local_addr().map_err(|e| e.to_string())?,
        args.mode
    );
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(p) = provider {
        let _ = p.shutdown();
    }
    #[cfg(feature = "fastrace")]
    if args.mode == "fastrace" {
        fastrace::flush();
    }
    Ok(())
}
