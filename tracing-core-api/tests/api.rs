//! Behaviour of spans, the mock tracer, the current span and `#[trace]`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, SystemTime};

use opentracing_api::prelude::*;
use opentracing_api::{
    current_context, current_span, trace, MockTracer, ReferenceKind, SpanContext, SpanFutureExt,
    TagValue,
};

#[test]
fn references_tags_logs_and_times_are_recorded() {
    let tracer = MockTracer::new();
    let parent = tracer.span("parent").start();
    let producer = tracer.span("producer").start();
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    let mut span = tracer
        .span("child")
        .child_of(parent.context())
        .follows_from(producer.context())
        .child_of(&SpanContext::empty()) // invalid: skipped
        .tag(tags::COMPONENT, "test")
        .start_time(t0)
        .start();
    span.set_tag(tags::HTTP_STATUS_CODE, 200);
    span.set_tag(tags::HTTP_STATUS_CODE, 503); // replaces
    span.set_tag("ratio", 0.5);
    span.log_at(
        t0 + Duration::from_millis(5),
        [(log_fields::EVENT, "retry")],
    );
    span.set_error(&std::io::Error::other("boom"));
    span.finish_at(t0 + Duration::from_millis(20));
    let spans = tracer.finished_spans();
    let s = &spans[0];
    assert_eq!(s.operation_name, "child");
    assert_eq!(s.references.len(), 2);
    assert_eq!(s.references[0].kind, ReferenceKind::ChildOf);
    assert_eq!(s.references[1].kind, ReferenceKind::FollowsFrom);
    assert_eq!(s.parent_span_id(), Some(parent.context().span_id()));
    assert_eq!(s.context.trace_id(), parent.context().trace_id());
    assert_eq!(s.tag(tags::HTTP_STATUS_CODE), Some(&TagValue::I64(503)));
    assert_eq!(
        s.tags
            .iter()
            .filter(|t| t.key == tags::HTTP_STATUS_CODE)
            .count(),
        1
    );
    assert_eq!(s.tag("ratio"), Some(&TagValue::F64(0.5)));
    assert_eq!(s.tag(tags::ERROR), Some(&TagValue::Bool(true)));
    assert_eq!(s.duration(), Duration::from_millis(20));
    assert_eq!(s.logs.len(), 2);
    assert_eq!(s.logs[0].timestamp, t0 + Duration::from_millis(5));
    let err_log = &s.logs[1].fields;
    assert!(err_log
        .iter()
        .any(|f| f.key == log_fields::EVENT && f.value.as_str() == Some("error")));
    assert!(err_log
        .iter()
        .any(|f| f.key == log_fields::ERROR_OBJECT && f.value.as_str() == Some("boom")));
    assert!(err_log
        .iter()
        .any(|f| f.key == log_fields::ERROR_KIND
            && f.value.as_str() == Some("std::io::error::Error")));
}

#[test]
fn baggage_flows_to_children_and_over_the_wire() {
    let tracer = MockTracer::new();
    let mut root = tracer.span("root").start();
    root.set_baggage_item("customer", "123").unwrap();
    assert!(root.set_baggage_item("big", "x".repeat(10_000)).is_err());
    let child = tracer.span("child").child_of(root.context()).start();
    assert_eq!(child.baggage_item("customer"), Some("123"));
    assert_eq!(child.baggage_item("big"), None);
    let mut headers = http::HeaderMap::new();
    tracer.inject(
        child.context(),
        opentracing_api::Format::HttpHeaders,
        &mut headers,
    );
    let remote = tracer
        .extract(opentracing_api::Format::HttpHeaders, &headers)
        .unwrap()
        .unwrap();
    assert_eq!(remote.baggage_item("customer"), Some("123"));
    assert_eq!(remote.span_id(), child.context().span_id());
}

#[test]
fn spans_finish_exactly_once_including_on_drop_and_panic() {
    let tracer = MockTracer::new();
    drop(tracer.span("dropped").start());
    let shared = tracer.span("shared").start_shared();
    let other = shared.clone();
    shared.finish();
    other.finish();
    other.set_tag("late", true); // ignored after finish
    drop(shared);
    drop(other);
    let last_handle = tracer.span("last-handle").start_shared();
    let clone = last_handle.clone();
    drop(last_handle);
    assert_eq!(
        tracer.finished_spans().len(),
        2,
        "one handle is still alive"
    );
    drop(clone);
    let panicking = tracer.span("panicking").start_shared();
    let p2 = panicking.clone();
    let result = std::panic::catch_unwind(move || {
        p2.with(|s| {
            s.set_tag("before", true);
            panic!("handler panicked");
        });
    });
    assert!(result.is_err());
    drop(panicking); // the lock was poisoned; the span still finishes
    let names: Vec<_> = tracer
        .finished_spans()
        .into_iter()
        .map(|s| s.operation_name)
        .collect();
    assert_eq!(names, ["dropped", "shared", "last-handle", "panicking"]);
    assert_eq!(tracer.finished_spans()[1].tag("late"), None);
    assert_eq!(
        tracer.finished_spans()[3].tag("before"),
        Some(&TagValue::Bool(true))
    );
}

#[test]
fn sampling_priority() {
    let tracer = MockTracer::new();
    let s = tracer
        .span("forced-off")
        .tag(tags::SAMPLING_PRIORITY, 0)
        .start();
    assert!(!s.context().is_sampled());
    let mut s = tracer.span("on").start();
    s.set_tag(tags::SAMPLING_PRIORITY, 1);
    assert!(s.context().is_sampled() && s.context().is_debug());
    s.set_tag(tags::SAMPLING_PRIORITY, 0);
    assert!(!s.context().is_sampled());
}

#[test]
fn current_span_is_the_default_parent_and_can_be_ignored() {
    let tracer = MockTracer::new();
    let root = tracer.span("root").start_shared();
    root.in_scope(|| {
        let child = tracer.span("child").start();
        assert_eq!(child.context().trace_id(), root.context().trace_id());
        let orphan = tracer.span("orphan").ignore_current_span().start();
        assert_ne!(orphan.context().trace_id(), root.context().trace_id());
    });
    assert!(current_span().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn current_span_follows_the_future_across_await_and_spawn() {
    let tracer = MockTracer::new();
    let request = tracer.span("request").start_shared();
    let trace_id = request.context().trace_id();
    let t = tracer.clone();
    async move {
        for i in 0..20 {
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(1)).await;
            assert_eq!(
                current_context().map(|c| c.trace_id()),
                Some(trace_id),
                "after await {i}"
            );
        }
        let spawned = tokio::spawn(
            async move {
                tokio::task::yield_now().await;
                t.span("spawned").start().finish();
                current_context().map(|c| c.trace_id())
            }
            .with_current_span(),
        );
        assert_eq!(spawned.await.unwrap(), Some(trace_id));
        // Without the wrapper, a spawned task has no current span.
        assert_eq!(
            tokio::spawn(async { current_context() }).await.unwrap(),
            None
        );
    }
    .with_span(request.clone())
    .await;
    assert!(current_context().is_none());
    request.finish();
    let spans = tracer.finished_spans();
    let spawned = spans
        .iter()
        .find(|s| s.operation_name == "spawned")
        .unwrap();
    assert_eq!(spawned.context.trace_id(), trace_id);
    assert_eq!(spawned.parent_span_id(), Some(request.context().span_id()));
}

#[tokio::test]
async fn dropping_an_instrumented_future_finishes_its_span() {
    let tracer = MockTracer::new();
    let fut = std::future::pending::<()>().with_span(tracer.span("cancelled").start());
    let _ = tokio::time::timeout(Duration::from_millis(5), fut).await;
    assert_eq!(tracer.finished_spans()[0].operation_name, "cancelled");
}

// `#[trace]` uses the global tracer; this test binary sets a mock once.
fn global_mock() -> MockTracer {
    static TRACER: std::sync::OnceLock<MockTracer> = std::sync::OnceLock::new();
    TRACER
        .get_or_init(|| {
            let t = MockTracer::new();
            opentracing_api::set_global_tracer(std::sync::Arc::new(t.clone())).unwrap();
            t
        })
        .clone()
}

#[trace]
fn parse_number(s: &str) -> Result<u32, std::num::ParseIntError> {
    let n: u32 = s.parse()?;
    if n == 0 {
        return Ok(1);
    }
    Ok(n)
}

#[trace(name = "load driver")]
async fn load_driver(id: u32) -> String {
    tokio::task::yield_now().await;
    let nested = parse_number("7").unwrap();
    format!("driver {id} {nested}")
}

struct Repo;
impl Repo {
    #[allow(clippy::unnecessary_wraps)]
    #[trace]
    fn find(&self, id: u32) -> Option<u32> {
        Some(id)
    }
}

#[tokio::test]
async fn trace_attribute_names_nests_and_tags_errors() {
    let tracer = global_mock();
    assert!(parse_number("x").is_err());
    assert_eq!(parse_number("0").unwrap(), 1);
    let root = tracer.span("root-for-macro").start_shared();
    let out = load_driver(3).with_span(root.clone()).await;
    assert_eq!(out, "driver 3 7");
    assert_eq!(Repo.find(4), Some(4));
    root.finish();
    let spans = tracer.finished_spans();
    let by_name = |n: &str| {
        spans
            .iter()
            .filter(|s| s.operation_name == n)
            .cloned()
            .collect::<Vec<_>>()
    };
    let parses = by_name("parse_number");
    assert_eq!(parses.len(), 3);
    assert_eq!(parses[0].tag(tags::ERROR), Some(&TagValue::Bool(true)));
    assert!(parses[0].logs[0]
        .fields
        .iter()
        .any(|f| f.key == log_fields::ERROR_OBJECT));
    assert_eq!(
        parses[1].tag(tags::ERROR),
        None,
        "early return is not an error"
    );
    let load = &by_name("load driver")[0];
    let root = &by_name("root-for-macro")[0];
    assert_eq!(load.parent_span_id(), Some(root.context.span_id()));
    assert_eq!(
        parses[2].parent_span_id(),
        Some(load.context.span_id()),
        "nested across .await"
    );
    assert_eq!(by_name("find").len(), 1);
}

#[trace]
fn generic_len<T: AsRef<str>>(items: &[T]) -> usize {
    items.iter().map(|s| s.as_ref().len()).sum()
}

#[trace]
fn evens(n: u32) -> impl Iterator<Item = u32> {
    (0..n).filter(|i| i % 2 == 0)
}

#[trace]
async fn fallible_async(fail: bool) -> Result<(), String> {
    tokio::task::yield_now().await;
    if fail {
        return Err("nope".to_owned());
    }
    Ok(())
}

#[tokio::test]
async fn trace_attribute_handles_generics_impl_trait_and_async_errors() {
    let tracer = global_mock();
    assert_eq!(generic_len(&["ab", "c"]), 3);
    assert_eq!(evens(5).count(), 3);
    assert!(fallible_async(true).await.is_err());
    assert!(fallible_async(false).await.is_ok());
    let spans = tracer.finished_spans();
    let failing: Vec<_> = spans
        .iter()
        .filter(|s| s.operation_name == "fallible_async")
        .collect();
    assert_eq!(failing.len(), 2);
    assert!(failing
        .iter()
        .any(|s| s.tag(tags::ERROR) == Some(&TagValue::Bool(true))));
    assert!(failing.iter().any(|s| s.tag(tags::ERROR).is_none()));
    assert!(spans.iter().any(|s| s.operation_name == "generic_len"));
    assert!(spans.iter().any(|s| s.operation_name == "evens"));
}

struct Counter {
    n: u32,
}

impl Counter {
    #[trace]
    fn get_mut(&mut self) -> &mut u32 {
        &mut self.n
    }
}

#[test]
fn trace_attribute_keeps_borrowing_bodies_as_written() {
    let tracer = global_mock();
    let mut c = Counter { n: 1 };
    *c.get_mut() += 1;
    assert_eq!(c.n, 2);
    assert!(tracer
        .finished_spans()
        .iter()
        .any(|s| s.operation_name == "get_mut"));
}
