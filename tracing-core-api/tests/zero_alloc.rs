//! Proves with a counting allocator that the no-op and unsampled paths
//! allocate nothing on the heap.
#![allow(unsafe_code, clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use http::{HeaderMap, HeaderValue};
use opentracing_api::{
    Format, JaegerPropagator, NoopTracer, Propagator, Span, SpanContext, SpanId,
    TraceContextPropagator, TraceFlags, TraceId, TracerExt,
};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every method delegates to `System`, which upholds the
// `GlobalAlloc` contract; the only extra work is bumping a thread-local
// counter, which neither allocates nor unwinds (`try_with` ignores a
// thread-local that is being destroyed).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same layout contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: `ptr`/`layout` come from `System`; the caller upholds `new_size`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_in(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn noop_span_start_tags_logs_finish_allocate_nothing() {
    let parent = SpanContext::new(
        TraceId::from_u64(1),
        SpanId::from_u64(2),
        TraceFlags::SAMPLED,
    );
    let n = allocations_in(|| {
        for _ in 0..100 {
            let mut span = NoopTracer
                .span("operation")
                .child_of(&parent)
                .tag("k", "v")
                .start();
            span.set_tag("http.status_code", 200);
            span.set_tag("error", false);
            span.log([("event", "x")]);
            span.set_operation_name("renamed");
            span.finish();
        }
    });
    assert_eq!(n, 0);
}

#[test]
fn unsampled_span_with_parent_allocates_nothing() {
    let parent = SpanContext::new(TraceId::from_u64(1), SpanId::from_u64(2), TraceFlags::NONE);
    let n = allocations_in(|| {
        for i in 0..100 {
            let cx = parent
                .clone()
                .with_span_id(SpanId::from_u64(i + 3))
                .with_parent_id(parent.span_id());
            let mut span = Span::unrecorded(cx);
            span.set_tag("k", "v");
            drop(span);
        }
    });
    assert_eq!(n, 0);
}

#[test]
fn extracting_trace_headers_allocates_nothing() {
    let mut h = HeaderMap::new();
    h.insert(
        "uber-trace-id",
        HeaderValue::from_static("4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7:0:1"),
    );
    h.insert(
        "traceparent",
        HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    );
    h.insert("host", HeaderValue::from_static("localhost"));
    let (jaeger, w3c) = (JaegerPropagator::new(), TraceContextPropagator::new());
    let n = allocations_in(|| {
        assert!(jaeger
            .extract(Format::HttpHeaders, &h)
            .unwrap()
            .unwrap()
            .is_valid());
        assert!(w3c
            .extract(Format::HttpHeaders, &h)
            .unwrap()
            .unwrap()
            .is_valid());
    });
    assert_eq!(n, 0);
}
