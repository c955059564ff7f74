//! Shared by the reliability tests (`outage`, `burst`, `hostile`,
//! `policy_all_adapters`): a collector on one port whose behaviour the test
//! switches (reset, hang, slow, live), traced servers and clients to put
//! under load, and the tracer's counters.
//!
//! Everything listens on 127.0.0.1 on a port the system picked, and runs on
//! the test's runtime: it stops when the test's runtime does (the accept
//! loops and their connections are aborted when their handle is dropped).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::IntoResponse;
use axum::Router;
use bytes::Bytes;
use grpc_echo_proto::{Echo, EchoClient, EchoReply, EchoRequest, EchoServer};
use http::{HeaderMap, StatusCode};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentracing_jaeger::{Exporter, JaegerTracer, MetricsSnapshot};
use prost::Message;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Bound of every wait on a counter.
pub const T: Duration = Duration::from_secs(15);
/// How long a slow collector takes to answer.
pub const SLOW: Duration = Duration::from_secs(2);

/// A TCP port nothing listens on (bound once by the system, then freed).
pub fn closed_tcp_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A UDP port no socket is bound to.
pub fn closed_udp_port() -> u16 {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap().port()
}

/// Polls `f` until it holds, failing the test after [`T`].
pub async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < T, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub fn snap(tracer: &JaegerTracer) -> MetricsSnapshot {
    tracer.metrics().snapshot()
}

/// Every finished span is in exactly one outcome counter.
pub fn assert_accounted(m: &MetricsSnapshot) {
    assert_eq!(
        m.spans_reported
            + m.spans_dropped_queue_full
            + m.spans_dropped_closed
            + m.spans_dropped_too_large
            + m.spans_failed,
        m.spans_finished,
        "every finished span is reported, dropped or failed: {m:?}"
    );
}

/// `close`, off the runtime's worker threads (it blocks, and the collector
/// it may be waiting for runs on this runtime).
pub async fn close(tracer: &JaegerTracer) {
    let t = tracer.clone();
    tokio::task::spawn_blocking(move || t.close(Duration::from_secs(15)))
        .await
        .unwrap()
        .expect("close within its timeout");
}

/// `flush`, off the runtime's worker threads.
pub async fn flush(tracer: &JaegerTracer) {
    let t = tracer.clone();
    tokio::task::spawn_blocking(move || t.flush(Duration::from_secs(15)))
        .await
        .unwrap()
        .expect("flush within its timeout");
}

/// Samples `queue_len()` on a thread of its own, keeping the largest value
/// seen, until dropped.
pub struct QueueWatch {
    max: Arc<AtomicUsize>,
    samples: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl QueueWatch {
    pub fn start(tracer: &JaegerTracer) -> Self {
        let (max, samples, stop) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let (t, m, n, s) = (tracer.clone(), max.clone(), samples.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                m.fetch_max(t.queue_len(), Ordering::Relaxed);
                n.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_micros(200));
            }
        });
        QueueWatch {
            max,
            samples,
            stop,
            thread: Some(thread),
        }
    }

    /// The largest queue length seen, and how many samples were taken.
    pub fn max(&self) -> (usize, usize) {
        (
            self.max.load(Ordering::Relaxed),
            self.samples.load(Ordering::Relaxed),
        )
    }
}

impl Drop for QueueWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------
// The switchable collector.

/// How the collector treats what reaches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Accepts connections and resets them at once (`SO_LINGER` 0).
    Reset,
    /// Accepts connections and holds them, reading and answering nothing,
    /// until the mode changes (then drops them).
    Hang,
    /// Answers every request with success after [`SLOW`].
    Slow,
    /// Answers every request with success at once.
    Live,
}

/// What the collector speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// `POST /v1/traces`, protobuf: spans are decoded and counted.
    OtlpHttp,
    /// `POST /api/traces`, binary Thrift (answered 202, not decoded).
    JaegerThrift,
    /// `TraceService/Export` over gRPC (tonic): spans are counted.
    OtlpGrpc,
}

/// What the collector saw.
#[derive(Debug, Default)]
pub struct SinkCounters {
    /// Connections reset in [`Mode::Reset`].
    pub resets: AtomicUsize,
    /// Connections held in [`Mode::Hang`].
    pub held: AtomicUsize,
    /// Requests answered with success.
    pub answered: AtomicUsize,
    /// OTLP spans in the requests answered with success.
    pub spans: AtomicUsize,
}

impl SinkCounters {
    pub fn get(&self, c: fn(&SinkCounters) -> &AtomicUsize) -> usize {
        c(self).load(Ordering::SeqCst)
    }
}

/// A collector on a fixed port whose behaviour the test switches.
pub struct Sink {
    pub addr: SocketAddr,
    mode: watch::Sender<Mode>,
    pub counters: Arc<SinkCounters>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Sink {
    fn drop(&mut self) {
        // Dropping the accept loop drops its `JoinSet`: every connection
        // task is aborted with it.
        self.task.abort();
    }
}

fn otlp_span_count(req: &ExportTraceServiceRequest) -> usize {
    req.resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .map(|ss| ss.spans.len())
        .sum()
}

#[derive(Clone)]
struct HttpSink {
    mode: watch::Receiver<Mode>,
    counters: Arc<SinkCounters>,
    protocol: Protocol,
}

async fn http_sink(State(s): State<HttpSink>, body: Bytes) -> axum::response::Response {
    let slow = *s.mode.borrow() == Mode::Slow;
    if slow {
        tokio::time::sleep(SLOW).await;
    }
    if s.protocol == Protocol::OtlpHttp {
        let n = ExportTraceServiceRequest::decode(body).map_or(0, |r| otlp_span_count(&r));
        s.counters.spans.fetch_add(n, Ordering::SeqCst);
        s.counters.answered.fetch_add(1, Ordering::SeqCst);
        (
            StatusCode::OK,
            [(http::header::CONTENT_TYPE, "application/x-protobuf")],
            ExportTraceServiceResponse::default().encode_to_vec(),
        )
            .into_response()
    } else {
        s.counters.answered.fetch_add(1, Ordering::SeqCst);
        StatusCode::ACCEPTED.into_response()
    }
}

#[derive(Clone)]
struct GrpcSink {
    mode: watch::Receiver<Mode>,
    counters: Arc<SinkCounters>,
}

#[tonic::async_trait]
impl TraceService for GrpcSink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let slow = *self.mode.borrow() == Mode::Slow;
        if slow {
            tokio::time::sleep(SLOW).await;
        }
        let n = otlp_span_count(request.get_ref());
        self.counters.spans.fetch_add(n, Ordering::SeqCst);
        self.counters.answered.fetch_add(1, Ordering::SeqCst);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// Serves one connection with HTTP/1 or HTTP/2, whichever the client speaks.
pub async fn serve_connection<S, B>(stream: TcpStream, svc: S)
where
    S: tower::Service<
            http::Request<hyper::body::Incoming>,
            Response = http::Response<B>,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let _ = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
        .serve_connection(
            hyper_util::rt::TokioIo::new(stream),
            hyper_util::service::TowerToHyperService::new(svc),
        )
        .await;
}

/// Holds `stream` until the mode is no longer [`Mode::Hang`].
async fn hold(stream: TcpStream, mut mode: watch::Receiver<Mode>) {
    let _stream = stream;
    if *mode.borrow_and_update() != Mode::Hang {
        return;
    }
    while mode.changed().await.is_ok() {
        if *mode.borrow_and_update() != Mode::Hang {
            return;
        }
    }
}

async fn accept_loop<S, B>(
    listener: tokio::net::TcpListener,
    mode: watch::Receiver<Mode>,
    counters: Arc<SinkCounters>,
    svc: S,
) where
    S: tower::Service<
            http::Request<hyper::body::Incoming>,
            Response = http::Response<B>,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        while connections.try_join_next().is_some() {}
        let current = *mode.borrow();
        match current {
            Mode::Reset => {
                let _ = stream.set_zero_linger();
                drop(stream);
                counters.resets.fetch_add(1, Ordering::SeqCst);
            }
            Mode::Hang => {
                counters.held.fetch_add(1, Ordering::SeqCst);
                connections.spawn(hold(stream, mode.clone()));
            }
            Mode::Slow | Mode::Live => {
                connections.spawn(serve_connection(stream, svc.clone()));
            }
        }
    }
}

/// Binds `port` on 127.0.0.1, retrying for a while (the port was freed a
/// moment ago; a stray connection attempt may hold it briefly).
async fn bind_tcp(port: u16) -> tokio::net::TcpListener {
    let start = Instant::now();
    loop {
        match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
            Ok(l) => return l,
            Err(e) => {
                assert!(start.elapsed() < T, "cannot bind 127.0.0.1:{port}: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

impl Sink {
    /// A collector speaking `protocol` on 127.0.0.1:`port` (0: any port),
    /// starting in `mode`.
    pub async fn start(port: u16, mode: Mode, protocol: Protocol) -> Sink {
        let listener = bind_tcp(port).await;
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = watch::channel(mode);
        let counters = Arc::new(SinkCounters::default());
        let task = match protocol {
            Protocol::OtlpHttp | Protocol::JaegerThrift => {
                let app = Router::new().fallback(http_sink).with_state(HttpSink {
                    mode: rx.clone(),
                    counters: counters.clone(),
                    protocol,
                });
                tokio::spawn(accept_loop(listener, rx, counters.clone(), app))
            }
            Protocol::OtlpGrpc => {
                let svc = TraceServiceServer::new(GrpcSink {
                    mode: rx.clone(),
                    counters: counters.clone(),
                });
                tokio::spawn(accept_loop(listener, rx, counters.clone(), svc))
            }
        };
        Sink {
            addr,
            mode: tx,
            counters,
            task,
        }
    }

    pub fn set_mode(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    pub fn get(&self, c: fn(&SinkCounters) -> &AtomicUsize) -> usize {
        self.counters.get(c)
    }
}

/// A Jaeger agent stand-in: a UDP socket that counts the datagrams it gets.
pub struct UdpSink {
    pub datagrams: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl UdpSink {
    pub async fn start(port: u16) -> UdpSink {
        let start = Instant::now();
        let socket = loop {
            match tokio::net::UdpSocket::bind(("127.0.0.1", port)).await {
                Ok(s) => break s,
                Err(e) => {
                    assert!(start.elapsed() < T, "cannot bind udp 127.0.0.1:{port}: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        let datagrams = Arc::new(AtomicUsize::new(0));
        let d = datagrams.clone();
        let task = tokio::spawn(async move {
            let mut buf = vec![0; 65_536];
            while socket.recv(&mut buf).await.is_ok() {
                d.fetch_add(1, Ordering::SeqCst);
            }
        });
        UdpSink { datagrams, task }
    }
}

impl Drop for UdpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ---------------------------------------------------------------------------
// Load.

/// One call of the service under test.
pub type Call =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// Makes `n` calls from `concurrency` tasks; returns the errors.
pub async fn drive(call: &Call, n: usize, concurrency: usize) -> Vec<String> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    for _ in 0..concurrency {
        let (call, next) = (call.clone(), next.clone());
        tasks.spawn(async move {
            let mut errors = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < n {
                if let Err(e) = call().await {
                    errors.push(e);
                }
            }
            errors
        });
    }
    let mut errors = Vec::new();
    while let Some(r) = tasks.join_next().await {
        errors.extend(r.unwrap());
    }
    errors
}

/// A task that is aborted when this is dropped.
pub struct Serving(pub tokio::task::JoinHandle<()>);

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Serves `app` (axum) on 127.0.0.1:0.
pub async fn serve_axum(app: Router) -> (SocketAddr, Serving) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            while connections.try_join_next().is_some() {}
            connections.spawn(serve_connection(stream, app.clone()));
        }
    });
    (addr, Serving(task))
}

/// Serves `app` with hyper's HTTP/1 limits raised far enough for hostile
/// header sets (hyper's defaults would answer 431 before any layer runs).
pub async fn serve_axum_large_headers(app: Router) -> (SocketAddr, Serving) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            while connections.try_join_next().is_some() {}
            let svc = hyper_util::service::TowerToHyperService::new(app.clone());
            connections.spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .max_headers(20_000)
                    .max_buf_size(8 << 20)
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, Serving(task))
}

/// An HTTP/1 client (hyper's pooled client).
pub fn http_client() -> hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Full<Bytes>,
> {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http()
}

/// A server that records the headers of every request and answers "ok".
pub async fn recording_server() -> (SocketAddr, Arc<Mutex<Vec<HeaderMap>>>, Serving) {
    let seen: Arc<Mutex<Vec<HeaderMap>>> = Arc::default();
    let s = seen.clone();
    let app = Router::new().fallback(move |headers: HeaderMap| {
        s.lock().unwrap().push(headers);
        async { "ok" }
    });
    let (addr, serving) = serve_axum(app).await;
    (addr, seen, serving)
}

/// What a test's `bench.Echo` does with a unary call; the streaming calls
/// are not used by these tests (see [`UnaryEcho`]).
#[tonic::async_trait]
pub trait Unary: Send + Sync + 'static {
    /// Answers one `unary` call.
    async fn unary(
        &self,
        request: tonic::Request<EchoRequest>,
    ) -> Result<tonic::Response<EchoReply>, tonic::Status>;
}

/// `bench.Echo` answering `unary` with `U`, and `UNIMPLEMENTED` to the
/// streaming calls.
pub struct UnaryEcho<U>(pub U);

type ReplyStream =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<EchoReply, tonic::Status>> + Send>>;

#[tonic::async_trait]
impl<U: Unary> Echo for UnaryEcho<U> {
    async fn unary(
        &self,
        request: tonic::Request<EchoRequest>,
    ) -> Result<tonic::Response<EchoReply>, tonic::Status> {
        self.0.unary(request).await
    }

    type ServerStreamStream = ReplyStream;

    async fn server_stream(
        &self,
        _: tonic::Request<EchoRequest>,
    ) -> Result<tonic::Response<ReplyStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("not used"))
    }

    async fn client_stream(
        &self,
        _: tonic::Request<tonic::Streaming<EchoRequest>>,
    ) -> Result<tonic::Response<EchoReply>, tonic::Status> {
        Err(tonic::Status::unimplemented("not used"))
    }

    type BidiStream = ReplyStream;

    async fn bidi(
        &self,
        _: tonic::Request<tonic::Streaming<EchoRequest>>,
    ) -> Result<tonic::Response<ReplyStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("not used"))
    }
}

/// Answers `unary` with the message, or with the status `code` asks for.
#[derive(Clone, Copy, Default)]
pub struct PlainEcho;

#[tonic::async_trait]
impl Unary for PlainEcho {
    async fn unary(
        &self,
        request: tonic::Request<EchoRequest>,
    ) -> Result<tonic::Response<EchoReply>, tonic::Status> {
        let r = request.into_inner();
        if r.code != 0 {
            return Err(tonic::Status::new(tonic::Code::from(r.code), "as asked"));
        }
        Ok(tonic::Response::new(EchoReply { message: r.message }))
    }
}

/// Serves `echo` (as a `bench.Echo`) behind `layer` with tonic on 127.0.0.1:0, with HTTP/2
/// header limits raised for hostile metadata.
pub async fn serve_grpc<T, U>(
    layer: opentracing_tonic::GrpcServerLayer<T>,
    echo: U,
) -> (SocketAddr, Serving)
where
    T: opentracing_api::Tracer + Clone + Send + Sync + 'static,
    U: Unary,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .http2_max_header_list_size(8 << 20)
            .layer(layer)
            .add_service(EchoServer::new(UnaryEcho(echo)))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await;
    });
    (addr, Serving(task))
}

/// A channel to `addr`.
pub async fn channel(addr: SocketAddr) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// An echo client over `channel`.
pub fn echo_client(channel: tonic::transport::Channel) -> EchoClient<tonic::transport::Channel> {
    EchoClient::new(channel)
}

/// The tracer the outage and burst tests use: a small queue and a short
/// flush interval.
pub fn small_queue_tracer(service: &str, exporter: Exporter, queue: usize) -> JaegerTracer {
    JaegerTracer::builder(service)
        .exporter(exporter)
        .queue_size(queue)
        .flush_interval(Duration::from_millis(50))
        .build()
        .unwrap()
}
