//! Proves with a counting allocator that an unsampled span (start, three
//! tags, finish) allocates nothing on the heap, root or child.
#![allow(unsafe_code, clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use opentracing_api::prelude::*;
use opentracing_jaeger::sampler::ConstSampler;
use opentracing_jaeger::{Exporter, JaegerTracer};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every method delegates to `System`, which upholds the
// `GlobalAlloc` contract; the only extra work is bumping a thread-local
// counter, which neither allocates nor unwinds.
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

#[test]
fn unsampled_spans_allocate_nothing() {
    let tracer = JaegerTracer::builder("zero-alloc")
        .sampler(ConstSampler(false))
        .exporter(Exporter::None)
        .build()
        .unwrap();
    // Warm up thread-locals (id generator, current-span stack).
    tracer.span("warm").start().finish();
    let before = ALLOCATIONS.with(Cell::get);
    for _ in 0..1000 {
        let mut root = tracer.span("GET /customer").start();
        root.set_tag(tags::HTTP_METHOD, "GET");
        root.set_tag(tags::HTTP_STATUS_CODE, 200);
        root.set_tag(tags::ERROR, false);
        let child = tracer.span("SQL SELECT").child_of(root.context()).start();
        assert!(!child.is_recording());
        child.finish();
        root.finish();
    }
    assert_eq!(ALLOCATIONS.with(Cell::get) - before, 0);
}
