//! The layer on the mock tracer, without a server: what events and
//! `tracing` spans become, filtering, the cap, unsampled traces, async.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use opentracing_api::{
    FinishedSpan, MockTracer, NoopTracer, SpanFutureExt, TagValue, Tracer, TracerExt,
};
use opentracing_tracing_bridge::{OpenTracingLayer, WithTraceIds, LOGS_DROPPED_TAG};
use tracing::instrument::WithSubscriber;
use tracing::{Instrument, Level};
use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;

fn field<'a>(log: &'a opentracing_api::LogRecord, key: &str) -> Option<&'a TagValue> {
    log.fields.iter().find(|f| f.key == key).map(|f| &f.value)
}

fn span<'a>(spans: &'a [FinishedSpan], name: &str) -> &'a FinishedSpan {
    spans
        .iter()
        .find(|s| s.operation_name == name)
        .unwrap_or_else(|| panic!("no span {name} in {spans:?}"))
}

/// Runs `f` with only the bridge as subscriber.
fn with_bridge<R>(layer: OpenTracingLayer<MockTracer>, f: impl FnOnce() -> R) -> R {
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), f)
}

#[derive(Debug)]
struct Failure;

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("disk full")
    }
}

impl std::error::Error for Failure {}

#[test]
fn events_become_typed_logs_on_the_current_span() {
    let tracer = MockTracer::new();
    let before = SystemTime::now();
    with_bridge(OpenTracingLayer::new(tracer.clone()), || {
        let request = tracer.span("request").start_shared();
        request.in_scope(|| {
            let err = Failure;
            tracing::info!(
                count = 3,
                big = u64::MAX,
                unsigned = 7u64,
                ok = true,
                ratio = 0.25,
                name = "ada",
                list = ?[1, 2],
                shown = %"displayed",
                error = &err as &dyn std::error::Error,
                "order {} loaded",
                17
            );
            tracing::warn!(target: "billing", "slow");
        });
        request.finish();
    });
    let after = SystemTime::now();
    let spans = tracer.finished_spans();
    assert_eq!(spans.len(), 1, "no span for events: {spans:?}");
    let s = &spans[0];
    assert_eq!(s.logs.len(), 2);
    let log = &s.logs[0];
    assert!(log.timestamp >= before && log.timestamp <= after);
    assert_eq!(log.fields[0].key, "event", "the message comes first");
    assert_eq!(
        field(log, "event"),
        Some(&TagValue::from("order 17 loaded"))
    );
    assert_eq!(field(log, "count"), Some(&TagValue::I64(3)));
    assert_eq!(field(log, "unsigned"), Some(&TagValue::I64(7)));
    assert_eq!(
        field(log, "big"),
        Some(&TagValue::from(u64::MAX.to_string())),
        "too big for an i64: the exact number as text"
    );
    assert_eq!(field(log, "ok"), Some(&TagValue::Bool(true)));
    assert_eq!(field(log, "ratio"), Some(&TagValue::F64(0.25)));
    assert_eq!(field(log, "name"), Some(&TagValue::from("ada")));
    assert_eq!(field(log, "list"), Some(&TagValue::from("[1, 2]")));
    assert_eq!(field(log, "shown"), Some(&TagValue::from("displayed")));
    assert_eq!(field(log, "error"), Some(&TagValue::from("disk full")));
    assert_eq!(field(log, "level"), Some(&TagValue::from("INFO")));
    assert_eq!(field(log, "target"), Some(&TagValue::from("layer")));
    let warn = &s.logs[1];
    assert_eq!(field(warn, "level"), Some(&TagValue::from("WARN")));
    assert_eq!(field(warn, "target"), Some(&TagValue::from("billing")));
    assert_eq!(s.tag("error"), None, "only error! marks the span failed");
}

#[test]
fn error_events_mark_the_span_failed() {
    let tracer = MockTracer::new();
    with_bridge(OpenTracingLayer::new(tracer.clone()), || {
        let request = tracer.span("request").start_shared();
        request.in_scope(|| tracing::error!(code = 42, "payment declined"));
        request.finish();
    });
    let s = &tracer.finished_spans()[0];
    assert_eq!(s.tag("error"), Some(&TagValue::Bool(true)));
    assert_eq!(field(&s.logs[0], "level"), Some(&TagValue::from("ERROR")));
    assert_eq!(field(&s.logs[0], "code"), Some(&TagValue::I64(42)));
}

#[test]
fn events_outside_any_span_go_nowhere() {
    let tracer = MockTracer::new();
    with_bridge(OpenTracingLayer::new(tracer.clone()), || {
        tracing::info!("before");
        tracing::error!("no span to fail");
        let _outside = tracing::info_span!("outside").entered();
        tracing::info!("in a tracing span, outside any trace");
        let request = tracer.span("request").start_shared();
        request.in_scope(|| {
            tracing::info!(parent: None, "an explicit root");
        });
        request.finish();
    });
    let spans = tracer.finished_spans();
    assert_eq!(spans.len(), 1, "{spans:?}");
    assert!(spans[0].logs.is_empty(), "{spans:?}");
    assert_eq!(spans[0].tag("error"), None);
}

/// A value that counts how often it is formatted.
struct Counted(Arc<AtomicUsize>);

impl fmt::Debug for Counted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fetch_add(1, Ordering::Relaxed);
        f.write_str("counted")
    }
}

#[test]
fn unsampled_spans_get_nothing_and_fields_are_not_visited() {
    let tracer = MockTracer::new();
    let formatted = Arc::new(AtomicUsize::new(0));
    let layer = OpenTracingLayer::new(tracer.clone());
    let dropped = layer.dropped_logs_counter();
    with_bridge(layer, || {
        let unsampled = tracer.span("request").tag("sampling.priority", 0).start();
        let unsampled =
            opentracing_api::Span::unrecorded(unsampled.context().clone()).into_shared();
        unsampled.in_scope(|| {
            for _ in 0..1000 {
                tracing::error!(value = ?Counted(formatted.clone()), "ignored");
            }
            let _child = tracing::info_span!("child").entered();
            tracing::info!(value = ?Counted(formatted.clone()), "ignored too");
        });
    });
    assert_eq!(formatted.load(Ordering::Relaxed), 0);
    assert_eq!(dropped.get(), 0, "unrecorded spans do not count logs");
    let spans = tracer.finished_spans();
    assert!(
        spans.iter().all(|s| s.operation_name == "request"),
        "no child spans in an unsampled trace: {spans:?}"
    );
}

#[test]
fn the_noop_tracer_costs_no_spans_or_logs() {
    let layer = OpenTracingLayer::new(NoopTracer).with_root_spans(true);
    let dropped = layer.dropped_logs_counter();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        let span = NoopTracer.span("request").start_shared();
        span.in_scope(|| {
            let _s = tracing::info_span!("inner").entered();
            tracing::info!("nothing recorded");
        });
    });
    assert_eq!(dropped.get(), 0);
}

#[test]
fn logs_per_span_are_capped_and_counted() {
    let tracer = MockTracer::new();
    let layer = OpenTracingLayer::new(tracer.clone()).with_max_logs_per_span(5);
    let dropped = layer.dropped_logs_counter();
    let formatted = Arc::new(AtomicUsize::new(0));
    with_bridge(layer, || {
        let request = tracer.span("request").start_shared();
        request.in_scope(|| {
            for i in 0..100 {
                tracing::info!(i, value = ?Counted(formatted.clone()), "looping");
            }
            let _child = tracing::info_span!("child").entered();
            for i in 0..20 {
                tracing::info!(i, "child loop");
            }
        });
        request.finish();
    });
    assert_eq!(dropped.get(), 95 + 15);
    assert_eq!(
        formatted.load(Ordering::Relaxed),
        5,
        "dropped events are not formatted"
    );
    let spans = tracer.finished_spans();
    let request = span(&spans, "request");
    assert_eq!(request.logs.len(), 5);
    assert_eq!(field(&request.logs[4], "i"), Some(&TagValue::I64(4)));
    assert_eq!(request.tag(LOGS_DROPPED_TAG), Some(&TagValue::I64(95)));
    let child = span(&spans, "child");
    assert_eq!(child.logs.len(), 5);
    assert_eq!(child.tag(LOGS_DROPPED_TAG), Some(&TagValue::I64(15)));
}

#[test]
fn the_cap_holds_with_threads_logging_on_one_span() {
    let tracer = MockTracer::new();
    let layer = OpenTracingLayer::new(tracer.clone()).with_max_logs_per_span(50);
    let dropped = layer.dropped_logs_counter();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let request = tracer.span("request").start_shared();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (dispatch, request) = (dispatch.clone(), request.clone());
            std::thread::spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    request.in_scope(|| {
                        for i in 0..200 {
                            tracing::info!(i, "racing");
                        }
                    });
                });
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    request.finish();
    let s = span(&tracer.finished_spans(), "request").clone();
    // Past the cap by at most a log per thread racing at the bound, and
    // every event either logged or counted.
    let logged = i64::try_from(s.logs.len()).unwrap();
    assert!((50..=57).contains(&logged), "{logged}");
    assert_eq!(i64::try_from(dropped.get()).unwrap() + logged, 8 * 200);
    assert_eq!(
        s.tag(LOGS_DROPPED_TAG),
        Some(&TagValue::I64(8 * 200 - logged))
    );
}

#[test]
fn spans_under_the_cap_are_not_tagged() {
    let tracer = MockTracer::new();
    with_bridge(OpenTracingLayer::new(tracer.clone()), || {
        let request = tracer.span("request").start_shared();
        request.in_scope(|| {
            for _ in 0..128 {
                tracing::info!("within the default cap");
            }
        });
        request.finish();
    });
    let s = &tracer.finished_spans()[0];
    assert_eq!(s.logs.len(), 128);
    assert_eq!(s.tag(LOGS_DROPPED_TAG), None);
}

#[test]
fn per_layer_filters_choose_levels_and_targets() {
    let tracer = MockTracer::new();
    let filter = Targets::new()
        .with_default(Level::INFO)
        .with_target("noisy", Level::WARN);
    let subscriber = tracing_subscriber::registry()
        .with(OpenTracingLayer::new(tracer.clone()).with_filter(filter));
    tracing::subscriber::with_default(subscriber, || {
        let request = tracer.span("request").start_shared();
        request.in_scope(|| {
            tracing::debug!("below the default level");
            tracing::info!("kept");
            tracing::info!(target: "noisy", "below noisy's level");
            tracing::warn!(target: "noisy", "noisy but kept");
            let _s = tracing::info_span!(target: "noisy", "noisy_span").entered();
            tracing::info!("kept, on the request span");
        });
        request.finish();
    });
    let spans = tracer.finished_spans();
    assert_eq!(spans.len(), 1, "the noisy span is filtered out: {spans:?}");
    let events: Vec<_> = spans[0]
        .logs
        .iter()
        .map(|l| field(l, "event").unwrap().to_string())
        .collect();
    assert_eq!(
        events,
        ["kept", "noisy but kept", "kept, on the request span"]
    );
}

#[test]
fn env_filter_works_as_a_per_layer_filter() {
    let tracer = MockTracer::new();
    let filter = EnvFilter::new("warn,app=debug");
    let subscriber = tracing_subscriber::registry()
        .with(OpenTracingLayer::new(tracer.clone()).with_filter(filter));
    tracing::subscriber::with_default(subscriber, || {
        let request = tracer.span("request").start_shared();
        request.in_scope(|| {
            tracing::info!(target: "lib", "dropped");
            tracing::warn!(target: "lib", "lib warning");
            tracing::debug!(target: "app", "app debug");
            tracing::trace!(target: "app", "dropped");
        });
        request.finish();
    });
    let events: Vec<_> = tracer.finished_spans()[0]
        .logs
        .iter()
        .map(|l| field(l, "event").unwrap().to_string())
        .collect();
    assert_eq!(events, ["lib warning", "app debug"]);
}

#[tracing::instrument]
fn load_customer(customer_id: u64, region: &str) -> u64 {
    tracing::info!("loading");
    tracing::Span::current().record("rows", 3);
    customer_id
}

#[test]
fn tracing_spans_become_child_spans_with_fields_as_tags() {
    let tracer = MockTracer::new();
    with_bridge(OpenTracingLayer::new(tracer.clone()), || {
        let request = tracer.span("request").start_shared();
        request.in_scope(|| {
            let outer = tracing::info_span!("outer", user = "ada", rows = tracing::field::Empty);
            outer.in_scope(|| {
                load_customer(7, "eu");
                // A span started with the API inside is a child of `outer`.
                tracer.span("db query").start().finish();
                tracing::info!("in outer");
            });
            outer.record("rows", 12);
            tracing::info!("back in the request");
        });
        request.finish();
    });
    let spans = tracer.finished_spans();
    assert_eq!(spans.len(), 4, "{spans:?}");
    let request = span(&spans, "request");
    let outer = span(&spans, "outer");
    let load = span(&spans, "load_customer");
    let db = span(&spans, "db query");
    let trace = request.context.trace_id();
    assert!(spans.iter().all(|s| s.context.trace_id() == trace));
    assert_eq!(outer.parent_span_id(), Some(request.context.span_id()));
    assert_eq!(load.parent_span_id(), Some(outer.context.span_id()));
    assert_eq!(db.parent_span_id(), Some(outer.context.span_id()));
    assert_eq!(outer.tag("user"), Some(&TagValue::from("ada")));
    assert_eq!(
        outer.tag("rows"),
        Some(&TagValue::I64(12)),
        "recorded later"
    );
    assert_eq!(load.tag("customer_id"), Some(&TagValue::I64(7)));
    assert_eq!(load.tag("region"), Some(&TagValue::from("eu")));
    assert_eq!(load.logs.len(), 1);
    assert_eq!(
        field(&load.logs[0], "event"),
        Some(&TagValue::from("loading"))
    );
    assert_eq!(outer.logs.len(), 1);
    assert_eq!(request.logs.len(), 1);
    assert_eq!(
        field(&request.logs[0], "event"),
        Some(&TagValue::from("back in the request"))
    );
    assert!(outer.finish_time <= request.finish_time);
}

#[test]
fn explicit_parents_are_followed() {
    let tracer = MockTracer::new();
    with_bridge(OpenTracingLayer::new(tracer.clone()), || {
        let request = tracer.span("request").start_shared();
        let job = request.in_scope(|| tracing::info_span!("job"));
        // Created and logged on outside the request, attached explicitly.
        let step = tracing::info_span!(parent: &job, "step");
        tracing::info!(parent: &step, "explicitly on step");
        tracing::info!(parent: &job, "explicitly on job");
        drop((step, job));
        request.finish();
    });
    let spans = tracer.finished_spans();
    let job = span(&spans, "job");
    let step = span(&spans, "step");
    assert_eq!(step.parent_span_id(), Some(job.context.span_id()));
    assert_eq!(step.logs.len(), 1);
    assert_eq!(job.logs.len(), 1);
}

#[test]
fn spans_outside_a_trace_are_left_alone_unless_roots_are_asked_for() {
    let tracer = MockTracer::new();
    with_bridge(OpenTracingLayer::new(tracer.clone()), || {
        let _s = tracing::info_span!("background").entered();
        tracing::info!("nowhere");
    });
    assert!(tracer.finished_spans().is_empty());

    with_bridge(
        OpenTracingLayer::new(tracer.clone()).with_root_spans(true),
        || {
            let root = tracing::info_span!("background", job = 1);
            root.in_scope(|| {
                tracing::info!("on the root");
                let _child = tracing::info_span!("step").entered();
            });
        },
    );
    let spans = tracer.finished_spans();
    let root = span(&spans, "background");
    let step = span(&spans, "step");
    assert_eq!(root.parent_span_id(), None);
    assert_eq!(step.parent_span_id(), Some(root.context.span_id()));
    assert_eq!(root.logs.len(), 1);
}

#[test]
fn spans_can_be_turned_off_or_filtered_apart_from_events() {
    let tracer = MockTracer::new();
    with_bridge(
        OpenTracingLayer::new(tracer.clone()).with_spans(false),
        || {
            let request = tracer.span("request").start_shared();
            request.in_scope(|| {
                let _s = tracing::info_span!("not bridged").entered();
                tracing::info!("lands on the request");
            });
            request.finish();
        },
    );
    let spans = tracer.finished_spans();
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].logs.len(), 1);

    tracer.reset();
    let layer = OpenTracingLayer::new(tracer.clone())
        .with_span_filter(Targets::new().with_target("app", Level::TRACE));
    with_bridge(layer, || {
        let request = tracer.span("request").start_shared();
        request.in_scope(|| {
            let lib = tracing::info_span!(target: "lib", "lib_span");
            lib.in_scope(|| tracing::warn!(target: "lib", "lib warning"));
            let app = tracing::info_span!(target: "app", "app_span");
            app.in_scope(|| tracing::info!(target: "app", "app event"));
        });
        request.finish();
    });
    let spans = tracer.finished_spans();
    assert_eq!(spans.len(), 2, "{spans:?}");
    assert_eq!(span(&spans, "request").logs.len(), 1, "the lib warning");
    assert_eq!(span(&spans, "app_span").logs.len(), 1);
}

#[test]
fn works_with_an_arc_dyn_tracer() {
    let mock = MockTracer::new();
    let tracer: Arc<dyn Tracer> = Arc::new(mock.clone());
    let subscriber = tracing_subscriber::registry().with(OpenTracingLayer::new(tracer.clone()));
    tracing::subscriber::with_default(subscriber, || {
        let request = tracer.span("request").start_shared();
        request.in_scope(|| {
            let _s = tracing::info_span!("child").entered();
            tracing::info!("hello");
        });
        request.finish();
    });
    assert_eq!(span(&mock.finished_spans(), "child").logs.len(), 1);
}

#[tracing::instrument(skip(tracer))]
async fn fetch(tracer: MockTracer, item: u32) {
    tracing::info!("before await");
    tokio::task::yield_now().await;
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    tracer.span("call").start().finish();
    tracing::info!("after await");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_follow_futures_across_await_and_spawn() {
    let tracer = MockTracer::new();
    let subscriber = tracing_subscriber::registry().with(OpenTracingLayer::new(tracer.clone()));
    let dispatch = tracing::Dispatch::new(subscriber);
    let request = tracer.span("request").start_shared();
    let t = tracer.clone();
    async move {
        fetch(t.clone(), 1).await;
        // Created here, run on another worker thread.
        let job = tracing::info_span!("job", n = 2);
        let handle = tokio::spawn(
            async move {
                tracing::info!("in the job");
                fetch(t, 2).await;
            }
            .instrument(job)
            .with_current_subscriber(),
        );
        handle.await.unwrap();
        tracing::info!("request done");
    }
    .with_span(request.clone())
    .with_subscriber(dispatch)
    .await;
    request.finish();

    let spans = tracer.finished_spans();
    assert_eq!(spans.len(), 6, "{spans:?}");
    let request = span(&spans, "request");
    let job = span(&spans, "job");
    assert_eq!(job.parent_span_id(), Some(request.context.span_id()));
    assert_eq!(job.logs.len(), 1);
    let fetches: Vec<_> = spans
        .iter()
        .filter(|s| s.operation_name == "fetch")
        .collect();
    assert_eq!(fetches.len(), 2);
    for f in &fetches {
        let item = f.tag("item").and_then(TagValue::as_i64).unwrap();
        let parent = if item == 1 { request } else { job };
        assert_eq!(f.parent_span_id(), Some(parent.context.span_id()));
        assert_eq!(f.logs.len(), 2, "both sides of the awaits: {f:?}");
        let call = spans.iter().find(|s| {
            s.operation_name == "call" && s.parent_span_id() == Some(f.context.span_id())
        });
        assert!(
            call.is_some(),
            "the call made after the awaits nests under fetch {item}"
        );
    }
    assert_eq!(request.logs.len(), 1);
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

#[test]
fn console_lines_carry_the_trace_and_span_ids() {
    let tracer = MockTracer::new();
    let output = Output::default();
    let subscriber = tracing_subscriber::registry()
        .with(OpenTracingLayer::new(tracer.clone()).with_filter(LevelFilter::INFO))
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(output.clone())
                .with_ansi(false)
                .event_format(WithTraceIds::new(tracing_subscriber::fmt::format())),
        );
    let (request_cx, child_span_id) = tracing::subscriber::with_default(subscriber, || {
        tracing::info!("outside");
        let request = tracer.span("request").start_shared();
        let child = request.in_scope(|| {
            tracing::info!(n = 1, "in the request");
            let child = tracing::info_span!("child");
            child.in_scope(|| tracing::info!("in the child"));
            child
        });
        tracing::info!(parent: &child, "explicit parent");
        drop(child);
        request.finish();
        let spans = tracer.finished_spans();
        (request.context(), span(&spans, "child").context.span_id())
    });
    let lines = output.lines();
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert!(!lines[0].contains("trace_id="), "{}", lines[0]);
    assert!(lines[0].ends_with("outside"), "{}", lines[0]);
    let request_ids = format!(
        "trace_id={} span_id={} ",
        request_cx.trace_id(),
        request_cx.span_id()
    );
    let child_ids = format!(
        "trace_id={} span_id={child_span_id} ",
        request_cx.trace_id()
    );
    assert!(lines[1].starts_with(&request_ids), "{}", lines[1]);
    assert!(lines[1].contains("INFO") && lines[1].ends_with("in the request n=1"));
    assert!(lines[2].starts_with(&child_ids), "{}", lines[2]);
    assert!(lines[3].starts_with(&child_ids), "{}", lines[3]);
}
