//! The middleware against real servers on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::Router;
use opentracing_api::{
    tags, FinishedSpan, Format, InjectPolicy, MockTracer, SpanContext, TagValue, Tracer, TracerExt,
};
use opentracing_reqwest::{
    OperationName, RouteTemplate, SkipTracing, TracingMiddleware, ATTEMPT_TAG,
};
use opentracing_tower::TracingLayer;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};

type Seen = Arc<Mutex<Vec<HeaderMap>>>;

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    addr
}

/// A server answering `/status/{code}` with that status, `/slow` after a
/// second, and `/flaky` with 503 on the first two calls; it records the
/// headers of every request.
async fn recording_server() -> (SocketAddr, Seen) {
    let seen: Seen = Arc::default();
    let flaky = Arc::new(AtomicU32::new(0));
    let s = seen.clone();
    let app = Router::new()
        .route(
            "/status/{code}",
            get(
                |axum::extract::Path(code): axum::extract::Path<u16>| async move {
                    StatusCode::from_u16(code).unwrap()
                },
            ),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(2)).await;
                "late"
            }),
        )
        .route(
            "/flaky",
            get(|State(n): State<Arc<AtomicU32>>| async move {
                if n.fetch_add(1, Ordering::SeqCst) < 2 {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::OK
                }
            }),
        )
        .route(
            "/big",
            get(|| async {
                let chunks =
                    (0..4).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b'x'; 1024])));
                axum::body::Body::from_stream(futures_util::stream::iter(chunks))
            }),
        )
        .with_state(flaky)
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                s.lock().unwrap().push(req.headers().clone());
                next.run(req)
            },
        ));
    (serve(app).await, seen)
}

fn client(middleware: TracingMiddleware<MockTracer>) -> ClientWithMiddleware {
    ClientBuilder::new(reqwest::Client::new())
        .with(middleware)
        .build()
}

fn tag<'a>(s: &'a FinishedSpan, k: &str) -> Option<&'a TagValue> {
    s.tag(k)
}

async fn wait_for(tracer: &MockTracer, n: usize) -> Vec<FinishedSpan> {
    let start = Instant::now();
    loop {
        let spans = tracer.finished_spans();
        if spans.len() >= n {
            return spans;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{spans:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Sends `GET path` inside a span of its own, returning the parent's context.
async fn get_in_span(
    tracer: &MockTracer,
    client: &ClientWithMiddleware,
    url: String,
) -> (SpanContext, reqwest_middleware::Result<reqwest::Response>) {
    let parent = tracer.span("parent").start_shared();
    let cx = parent.context();
    let result = {
        use opentracing_api::SpanFutureExt;
        client.get(url).send().with_span(parent.clone()).await
    };
    parent.finish();
    (cx, result)
}

fn extracted(tracer: &MockTracer, headers: &HeaderMap) -> Option<SpanContext> {
    tracer.extract(Format::HttpHeaders, headers).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_receives_the_client_spans_context_and_status_is_tagged() {
    let tracer = MockTracer::new();
    let (addr, seen) = recording_server().await;
    let client = client(TracingMiddleware::new(tracer.clone()));
    for code in [200_u16, 404, 500] {
        tracer.reset();
        let (parent, resp) = get_in_span(
            &tracer,
            &client,
            format!("http://{addr}/status/{code}?token=abc"),
        )
        .await;
        assert_eq!(resp.unwrap().status().as_u16(), code);
        let spans = wait_for(&tracer, 2).await;
        let span = spans
            .iter()
            .find(|s| s.operation_name == "HTTP GET")
            .unwrap();
        assert_eq!(span.parent_span_id(), Some(parent.span_id()));
        assert_eq!(span.context.trace_id(), parent.trace_id());
        let sent = extracted(&tracer, seen.lock().unwrap().last().unwrap()).unwrap();
        assert_eq!(
            sent.span_id(),
            span.context.span_id(),
            "the server sees this span"
        );
        assert_eq!(sent.trace_id(), span.context.trace_id());
        assert_eq!(tag(span, tags::SPAN_KIND), Some(&TagValue::from("client")));
        assert_eq!(tag(span, tags::HTTP_METHOD), Some(&TagValue::from("GET")));
        assert_eq!(
            tag(span, tags::HTTP_STATUS_CODE),
            Some(&TagValue::from(i64::from(code)))
        );
        assert_eq!(
            tag(span, tags::PEER_HOSTNAME),
            Some(&TagValue::from("127.0.0.1"))
        );
        assert_eq!(
            tag(span, tags::PEER_PORT),
            Some(&TagValue::from(i64::from(addr.port())))
        );
        assert_eq!(tag(span, ATTEMPT_TAG), Some(&TagValue::from(1_i64)));
        assert_eq!(
            tag(span, tags::HTTP_URL),
            Some(&TagValue::from(format!(
                "http://{addr}/status/{code}?token=abc"
            )))
        );
        let failed = tag(span, tags::ERROR) == Some(&TagValue::Bool(true));
        assert_eq!(failed, code == 500, "only 5xx fail by default ({code})");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_are_redacted_and_credentials_never_recorded() {
    let tracer = MockTracer::new();
    let (addr, _) = recording_server().await;
    let client = client(
        TracingMiddleware::new(tracer.clone())
            .with_query(opentracing_tower::QueryPolicy::Redact)
            .with_client_errors_fail(true),
    );
    let url = format!("http://user:secret@{addr}/status/404?token=abc");
    let _ = get_in_span(&tracer, &client, url).await;
    let spans = wait_for(&tracer, 2).await;
    let span = spans
        .iter()
        .find(|s| s.operation_name == "HTTP GET")
        .unwrap();
    assert_eq!(
        tag(span, tags::HTTP_URL),
        Some(&TagValue::from(format!(
            "http://{addr}/status/404?token=REDACTED"
        )))
    );
    assert_eq!(
        tag(span, tags::ERROR),
        Some(&TagValue::Bool(true)),
        "4xx fail when asked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused_and_timeouts_are_errors() {
    let tracer = MockTracer::new();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let client = client(TracingMiddleware::new(tracer.clone()));
    let (_, resp) = get_in_span(&tracer, &client, format!("http://{closed}/x")).await;
    assert!(resp.is_err());
    let (addr, _) = recording_server().await;
    let timing_out = ClientBuilder::new(
        reqwest::Client::builder()
            .timeout(Duration::from_millis(200))
            .build()
            .unwrap(),
    )
    .with(TracingMiddleware::new(tracer.clone()))
    .build();
    let (_, resp) = get_in_span(&tracer, &timing_out, format!("http://{addr}/slow")).await;
    assert!(resp.unwrap_err().is_timeout());
    let spans = wait_for(&tracer, 4).await;
    let clients: Vec<_> = spans
        .iter()
        .filter(|s| s.operation_name == "HTTP GET")
        .collect();
    assert_eq!(clients.len(), 2);
    let kinds: Vec<_> = clients
        .iter()
        .map(|s| {
            assert_eq!(tag(s, tags::ERROR), Some(&TagValue::Bool(true)));
            assert_eq!(tag(s, tags::HTTP_STATUS_CODE), None);
            s.logs[0]
                .fields
                .iter()
                .find(|f| f.key == "error.kind")
                .and_then(|f| f.value.as_str().map(str::to_owned))
                .unwrap()
        })
        .collect();
    assert_eq!(kinds, ["connect", "timeout"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_allowlist_withholds_trace_headers_and_forwarded_ones_are_replaced() {
    let tracer = MockTracer::new();
    let (addr, seen) = recording_server().await;
    let denied = client(
        TracingMiddleware::new(tracer.clone())
            .with_inject_policy(InjectPolicy::allowlist(["*.internal"])),
    );
    let allowed = client(TracingMiddleware::new(tracer.clone()));
    let forwarded = [
        (
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ),
        ("uber-trace-id", "abc:def:0:1"),
        ("uberctx-user", "alice"),
    ];
    for (client, allowed) in [(&denied, false), (&allowed, true)] {
        let parent = tracer.span("parent").start_shared();
        let mut req = client.get(format!("http://{addr}/status/200"));
        for (k, v) in forwarded {
            req = req.header(k, v);
        }
        {
            use opentracing_api::SpanFutureExt;
            req.send().with_span(parent.clone()).await.unwrap();
        }
        let headers = seen.lock().unwrap().pop().unwrap();
        assert!(
            headers.get_all("uber-trace-id").iter().count() <= 1,
            "never duplicated"
        );
        assert!(
            headers.get("uberctx-user").is_none(),
            "forwarded baggage is not passed on"
        );
        if allowed {
            let cx = extracted(&tracer, &headers).unwrap();
            assert_eq!(
                cx.trace_id(),
                parent.context().trace_id(),
                "ours replaced theirs"
            );
        } else {
            for h in ["uber-trace-id", "traceparent", "b3", "x-b3-traceid"] {
                assert!(headers.get(h).is_none(), "{h}: {headers:?}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_calls_from_one_handler_are_siblings() {
    let tracer = MockTracer::new();
    let (down, _) = recording_server().await;
    let client = client(TracingMiddleware::new(tracer.clone()));
    let app = Router::new()
        .route(
            "/fan-out",
            get(move || {
                let client = client.clone();
                async move {
                    let calls =
                        (0..100).map(|_| client.get(format!("http://{down}/status/200")).send());
                    let all = futures_util::future::join_all(calls).await;
                    all.iter().filter(|r| r.is_ok()).count().to_string()
                }
            }),
        )
        .layer(TracingLayer::new(tracer.clone()));
    let front = serve(app).await;
    let body = reqwest::get(format!("http://{front}/fan-out"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "100");
    let spans = wait_for(&tracer, 101).await;
    let server = spans
        .iter()
        .find(|s| s.tag(tags::SPAN_KIND) == Some(&TagValue::from("server")))
        .unwrap();
    let clients: Vec<_> = spans
        .iter()
        .filter(|s| s.operation_name == "HTTP GET")
        .collect();
    assert_eq!(clients.len(), 100);
    for c in &clients {
        assert_eq!(c.parent_span_id(), Some(server.context.span_id()));
        assert_eq!(c.context.trace_id(), server.context.trace_id());
    }
    let mut ids: Vec<_> = clients.iter().map(|c| c.context.span_id()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_give_one_span_per_attempt() {
    use reqwest_retry::policies::ExponentialBackoff;
    use reqwest_retry::RetryTransientMiddleware;
    let tracer = MockTracer::new();
    let (addr, seen) = recording_server().await;
    let retries = ExponentialBackoff::builder()
        .retry_bounds(Duration::from_millis(1), Duration::from_millis(5))
        .build_with_max_retries(3);
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(RetryTransientMiddleware::new_with_policy(retries))
        .with(TracingMiddleware::new(tracer.clone()))
        .build();
    let (parent, resp) = get_in_span(&tracer, &client, format!("http://{addr}/flaky")).await;
    assert_eq!(resp.unwrap().status(), StatusCode::OK);
    let spans = wait_for(&tracer, 4).await;
    let attempts: Vec<_> = spans
        .iter()
        .filter(|s| s.operation_name == "HTTP GET")
        .collect();
    assert_eq!(attempts.len(), 3);
    let mut numbers: Vec<i64> = attempts
        .iter()
        .map(|s| {
            assert_eq!(s.parent_span_id(), Some(parent.span_id()), "siblings");
            tag(s, ATTEMPT_TAG).and_then(TagValue::as_i64).unwrap()
        })
        .collect();
    numbers.sort_unstable();
    assert_eq!(numbers, [1, 2, 3]);
    let failed = attempts
        .iter()
        .filter(|s| tag(s, tags::ERROR) == Some(&TagValue::Bool(true)))
        .count();
    assert_eq!(failed, 2, "the two 503s");
    // Each attempt went out with its own span's context.
    let sent: Vec<_> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|h| extracted(&tracer, h).unwrap().span_id())
        .collect();
    for s in &attempts {
        assert!(sent.contains(&s.context.span_id()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_request_names_skips_and_root_spans() {
    let tracer = MockTracer::new();
    let (addr, seen) = recording_server().await;
    let client = client(TracingMiddleware::new(tracer.clone()));
    let parent = tracer.span("parent").start_shared();
    {
        use opentracing_api::SpanFutureExt;
        async {
            client
                .get(format!("http://{addr}/status/200"))
                .with_extension(OperationName::new("fetch status"))
                .send()
                .await
                .unwrap();
            client
                .get(format!("http://{addr}/status/201"))
                .with_extension(RouteTemplate::new("/status/{code}"))
                .send()
                .await
                .unwrap();
            client
                .get(format!("http://{addr}/status/202"))
                .with_extension(SkipTracing)
                .send()
                .await
                .unwrap();
        }
        .with_span(parent.clone())
        .await;
    }
    parent.finish();
    let names: Vec<_> = tracer
        .finished_spans()
        .into_iter()
        .map(|s| s.operation_name.to_string())
        .collect();
    assert_eq!(names, ["fetch status", "GET /status/{code}", "parent"]);
    assert!(
        extracted(&tracer, seen.lock().unwrap().last().unwrap()).is_none(),
        "skipped"
    );

    // Outside any span: untraced by default, a root span when asked.
    tracer.reset();
    client
        .get(format!("http://{addr}/status/200"))
        .send()
        .await
        .unwrap();
    assert!(tracer.finished_spans().is_empty());
    assert!(extracted(&tracer, seen.lock().unwrap().last().unwrap()).is_none());
    let rooted = self::client(TracingMiddleware::new(tracer.clone()).with_root_spans(true));
    rooted
        .get(format!("http://{addr}/status/200"))
        .send()
        .await
        .unwrap();
    let spans = wait_for(&tracer, 1).await;
    assert_eq!(spans[0].parent_span_id(), None);
    let sent = extracted(&tracer, seen.lock().unwrap().last().unwrap()).unwrap();
    assert_eq!(sent.span_id(), spans[0].context.span_id());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_tracking_keeps_the_span_open_until_the_body_is_read() {
    let tracer = MockTracer::new();
    let (addr, _) = recording_server().await;
    let client = client(TracingMiddleware::new(tracer.clone()).with_body_tracking(true));
    let (_, resp) = get_in_span(&tracer, &client, format!("http://{addr}/big")).await;
    let resp = resp.unwrap();
    assert_eq!(
        resp.url().as_str(),
        format!("http://{addr}/big"),
        "the URL is kept"
    );
    assert_eq!(resp.status(), StatusCode::OK);
    let names = |t: &MockTracer| {
        t.finished_spans()
            .into_iter()
            .map(|s| s.operation_name.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&tracer), ["parent"], "the client span is still open");
    let body = resp.bytes().await.unwrap();
    assert_eq!(body.len(), 4096);
    let spans = wait_for(&tracer, 2).await;
    let span = spans
        .iter()
        .find(|s| s.operation_name == "HTTP GET")
        .unwrap();
    assert_eq!(tag(span, tags::ERROR), None);

    // Dropped unread: finished, and not an error of the call.
    tracer.reset();
    let (_, resp) = get_in_span(&tracer, &client, format!("http://{addr}/big")).await;
    drop(resp.unwrap());
    let spans = wait_for(&tracer, 2).await;
    let span = spans
        .iter()
        .find(|s| s.operation_name == "HTTP GET")
        .unwrap();
    assert_eq!(tag(span, tags::ERROR), None);
}
