//! The bridge under a real axum server traced by `opentracing-tower`'s
//! layers, called by a real HTTP client, with the mock tracer recording.
//!
//! Each test has its own subscriber: it is carried into the server's
//! request futures by a `with_subscriber` layer, as a global default would
//! be everywhere.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use opentracing_api::{FinishedSpan, LogRecord, MockTracer, TagValue};
use opentracing_tower::{ClientTracingLayer, ClientTracingService, TracingLayer};
use opentracing_tracing_bridge::{DroppedLogs, OpenTracingLayer, WithTraceIds, LOGS_DROPPED_TAG};
use tower::util::MapFutureLayer;
use tower::{ServiceBuilder, ServiceExt};
use tracing::instrument::WithSubscriber;
use tracing::{Dispatch, Instrument};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;

type HttpClient = Client<HttpConnector, Full<Bytes>>;
type TracedClient = ClientTracingService<HttpClient, MockTracer>;

fn client() -> HttpClient {
    Client::builder(hyper_util::rt::TokioExecutor::new()).build_http()
}

/// Console output captured for assertions.
#[derive(Clone, Default)]
struct Output(Arc<Mutex<Vec<u8>>>);

impl Output {
    fn lines(&self) -> Vec<String> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl std::io::Write for Output {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Output {
    type Writer = Output;

    fn make_writer(&'a self) -> Output {
        self.clone()
    }
}

/// A server traced with the mock tracer, its subscriber (the bridge and a
/// `fmt` layer writing to `output`), and a traced client.
struct Harness {
    tracer: MockTracer,
    dispatch: Dispatch,
    dropped: DroppedLogs,
    output: Output,
    addr: SocketAddr,
}

#[derive(Clone)]
struct AppState {
    client: TracedClient,
    /// Where `/downstream` is served (this same server).
    addr: Arc<Mutex<Option<SocketAddr>>>,
}

impl Harness {
    async fn start(max_logs: usize) -> Harness {
        let tracer = MockTracer::new();
        let output = Output::default();
        let bridge = OpenTracingLayer::new(tracer.clone()).with_max_logs_per_span(max_logs);
        let dropped = bridge.dropped_logs_counter();
        let subscriber = tracing_subscriber::registry()
            .with(bridge.with_filter(tracing_subscriber::filter::LevelFilter::INFO))
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(output.clone())
                    .with_ansi(false)
                    .event_format(WithTraceIds::new(tracing_subscriber::fmt::format())),
            );
        let dispatch = Dispatch::new(subscriber);
        let state = AppState {
            client: ServiceBuilder::new()
                .layer(ClientTracingLayer::new(tracer.clone()))
                .service(client()),
            addr: Arc::default(),
        };
        let carry = dispatch.clone();
        let app = Router::new()
            .route("/orders/{id}", get(order))
            .route("/fail", get(fail))
            .route("/loop", get(looping))
            .route("/req/{n}", get(numbered))
            .route("/spawn", get(spawn_job))
            .route("/downstream", get(|| async { "ok" }))
            .with_state(state.clone())
            .layer(TracingLayer::new(tracer.clone()))
            .layer(MapFutureLayer::new(move |f| {
                WithSubscriber::with_subscriber(f, carry.clone())
            }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        *state.addr.lock().unwrap() = Some(addr);
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap();
        });
        Harness {
            tracer,
            dispatch,
            dropped,
            output,
            addr,
        }
    }

    async fn get(&self, path: &str) -> (StatusCode, Bytes) {
        let req = Request::get(format!("http://{}{path}", self.addr))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = client().request(req).await.unwrap();
        let status = resp.status();
        (status, resp.into_body().collect().await.unwrap().to_bytes())
    }

    async fn wait_for(&self, n: usize) -> Vec<FinishedSpan> {
        let start = Instant::now();
        loop {
            let spans = self.tracer.finished_spans();
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
}

fn field<'a>(log: &'a LogRecord, key: &str) -> Option<&'a TagValue> {
    log.fields.iter().find(|f| f.key == key).map(|f| &f.value)
}

fn events(span: &FinishedSpan) -> Vec<String> {
    span.logs
        .iter()
        .map(|l| {
            field(l, "event")
                .map(ToString::to_string)
                .unwrap_or_default()
        })
        .collect()
}

fn named<'a>(spans: &'a [FinishedSpan], name: &str) -> &'a FinishedSpan {
    spans
        .iter()
        .find(|s| s.operation_name == name)
        .unwrap_or_else(|| panic!("no span {name} in {spans:?}"))
}

async fn order(Path(id): Path<u64>, State(state): State<AppState>) -> String {
    tracing::info!(
        order_id = id,
        express = true,
        weight = 1.5,
        customer = "ada",
        "order loaded"
    );
    // Not carried into the task: no span there, so it goes nowhere.
    tokio::spawn(
        async { tracing::info!("background, outside the request") }.with_current_subscriber(),
    )
    .await
    .unwrap();
    load(id, state).await
}

#[tracing::instrument(skip(state))]
async fn load(order_id: u64, state: AppState) -> String {
    tracing::info!("calling downstream");
    let addr = state.addr.lock().unwrap().unwrap();
    let req = Request::get(format!("http://{addr}/downstream"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = state.client.oneshot(req).await.unwrap();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    tracing::info!(bytes = body.len(), "downstream answered");
    String::from_utf8_lossy(&body).into_owned()
}

async fn fail() -> &'static str {
    tracing::warn!("about to fail");
    tracing::error!(code = 42, "payment declined");
    "handled"
}

async fn looping() -> &'static str {
    for i in 0..1000 {
        tracing::info!(i, "item");
    }
    "looped"
}

async fn numbered(Path(n): Path<u64>) -> &'static str {
    tracing::info!(request_id = n, "start");
    tokio::time::sleep(Duration::from_millis(n % 7)).await;
    tracing::info!(request_id = n, "middle");
    tokio::task::yield_now().await;
    tracing::info!(request_id = n, "end");
    "done"
}

async fn spawn_job() -> &'static str {
    let job = tracing::info_span!("job", kind = "reindex");
    tokio::spawn(
        async {
            tracing::info!("in the job");
            tokio::time::sleep(Duration::from_millis(2)).await;
            tracing::info!("job done");
        }
        .instrument(job)
        .with_current_subscriber(),
    )
    .await
    .unwrap();
    "spawned"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_events_are_logs_on_the_server_span_and_instrumented_calls_nest() {
    let h = Harness::start(128).await;
    // Outside any request: goes nowhere.
    tracing::dispatcher::with_default(&h.dispatch, || tracing::info!("test started"));
    let (status, body) = h.get("/orders/17").await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"ok"[..]));
    let spans = h.wait_for(4).await;
    assert_eq!(spans.len(), 4, "{spans:?}");

    let server = named(&spans, "GET /orders/{id}");
    let load = named(&spans, "load");
    let downstream = named(&spans, "GET /downstream");
    let client = spans
        .iter()
        .find(|s| s.tag("span.kind") == Some(&TagValue::from("client")))
        .unwrap();
    let trace = server.context.trace_id();
    assert!(spans.iter().all(|s| s.context.trace_id() == trace));

    // The handler's event, with typed fields.
    assert_eq!(events(server), ["order loaded"], "{server:?}");
    let log = &server.logs[0];
    assert_eq!(field(log, "order_id"), Some(&TagValue::I64(17)));
    assert_eq!(field(log, "express"), Some(&TagValue::Bool(true)));
    assert_eq!(field(log, "weight"), Some(&TagValue::F64(1.5)));
    assert_eq!(field(log, "customer"), Some(&TagValue::from("ada")));
    assert_eq!(field(log, "level"), Some(&TagValue::from("INFO")));
    assert_eq!(field(log, "target"), Some(&TagValue::from("http")));
    assert!(log.timestamp >= server.start_time && log.timestamp <= server.finish_time);
    assert_eq!(server.tag("error"), None);

    // `#[instrument]`: a child of the server span, its argument a tag, its
    // events its logs, and the client call made in it its child.
    assert_eq!(load.parent_span_id(), Some(server.context.span_id()));
    assert_eq!(load.tag("order_id"), Some(&TagValue::I64(17)));
    assert_eq!(events(load), ["calling downstream", "downstream answered"]);
    assert_eq!(field(&load.logs[1], "bytes"), Some(&TagValue::I64(2)));
    assert_eq!(client.parent_span_id(), Some(load.context.span_id()));
    assert_eq!(downstream.parent_span_id(), Some(client.context.span_id()));

    // The console lines carry the ids of the span they were logged on.
    let lines = h.output.lines();
    let line = |text: &str| {
        lines
            .iter()
            .find(|l| l.contains(text))
            .unwrap_or_else(|| panic!("no line with {text}: {lines:?}"))
    };
    assert!(!line("test started").contains("trace_id="));
    assert!(!line("background, outside").contains("trace_id="));
    assert!(line("order loaded").starts_with(&format!(
        "trace_id={trace} span_id={} ",
        server.context.span_id()
    )));
    assert!(line("calling downstream").starts_with(&format!(
        "trace_id={trace} span_id={} ",
        load.context.span_id()
    )));
    assert!(line("order loaded").contains("order_id=17"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_events_fail_the_server_span() {
    let h = Harness::start(128).await;
    assert_eq!(h.get("/fail").await.0, StatusCode::OK);
    let spans = h.wait_for(1).await;
    let s = &spans[0];
    assert_eq!(s.tag("error"), Some(&TagValue::Bool(true)));
    assert_eq!(events(s), ["about to fail", "payment declined"]);
    assert_eq!(field(&s.logs[1], "level"), Some(&TagValue::from("ERROR")));
    assert_eq!(field(&s.logs[1], "code"), Some(&TagValue::I64(42)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loop_cannot_grow_the_server_span_past_the_cap() {
    let h = Harness::start(16).await;
    assert_eq!(h.get("/loop").await.0, StatusCode::OK);
    let spans = h.wait_for(1).await;
    let s = &spans[0];
    assert_eq!(s.logs.len(), 16);
    assert_eq!(s.tag(LOGS_DROPPED_TAG), Some(&TagValue::I64(984)));
    assert_eq!(h.dropped.get(), 984);
    // A second request has a cap of its own.
    assert_eq!(h.get("/loop").await.0, StatusCode::OK);
    let spans = h.wait_for(2).await;
    assert_eq!(spans[1].logs.len(), 16);
    assert_eq!(h.dropped.get(), 2 * 984);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawned_instrumented_tasks_nest_under_the_request() {
    let h = Harness::start(128).await;
    assert_eq!(h.get("/spawn").await.0, StatusCode::OK);
    let spans = h.wait_for(2).await;
    let server = named(&spans, "GET /spawn");
    let job = named(&spans, "job");
    assert_eq!(job.parent_span_id(), Some(server.context.span_id()));
    assert_eq!(job.tag("kind"), Some(&TagValue::from("reindex")));
    assert_eq!(events(job), ["in the job", "job done"]);
    assert!(server.logs.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_keep_their_logs_apart() {
    let h = Arc::new(Harness::start(128).await);
    let mut requests = tokio::task::JoinSet::new();
    for n in 0..50u64 {
        let h = h.clone();
        requests.spawn(async move { h.get(&format!("/req/{n}")).await.0 });
    }
    while let Some(status) = requests.join_next().await {
        assert_eq!(status.unwrap(), StatusCode::OK);
    }
    let spans = h.wait_for(50).await;
    assert_eq!(spans.len(), 50);
    let mut seen = Vec::new();
    for s in &spans {
        let url = s.tag("http.url").unwrap().to_string();
        let n: i64 = url.rsplit('/').next().unwrap().parse().unwrap();
        assert_eq!(events(s), ["start", "middle", "end"], "{s:?}");
        for log in &s.logs {
            assert_eq!(
                field(log, "request_id"),
                Some(&TagValue::I64(n)),
                "request {n} holds another request's log: {s:?}"
            );
        }
        seen.push(n);
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..50).collect::<Vec<_>>());
    assert_eq!(h.dropped.get(), 0);
}
