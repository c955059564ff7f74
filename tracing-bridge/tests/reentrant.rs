//! A field whose `Debug` form logs an event of its own, under a global
//! subscriber: there `tracing` hands the nested event to the layer while
//! the outer one is being recorded, so the layer must not hold the span's
//! lock while it formats fields. (Its own test binary: a process has one
//! global subscriber.)

use std::fmt;
use std::sync::mpsc;
use std::time::Duration;

use opentracing_api::{MockTracer, TracerExt};
use opentracing_tracing_bridge::OpenTracingLayer;
use tracing_subscriber::prelude::*;

struct Chatty;

impl fmt::Debug for Chatty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        tracing::info!("formatting a field");
        f.write_str("chatty")
    }
}

#[test]
fn a_field_that_logs_while_it_is_formatted_does_not_deadlock() {
    let tracer = MockTracer::new();
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry().with(OpenTracingLayer::new(tracer.clone())),
    )
    .expect("the only global subscriber of this test binary");
    let (done, finished) = mpsc::channel();
    let t = tracer.clone();
    std::thread::spawn(move || {
        let request = t.span("request").start_shared();
        request.in_scope(|| tracing::info!(value = ?Chatty, "outer"));
        request.finish();
        let _ = done.send(());
    });
    finished
        .recv_timeout(Duration::from_secs(10))
        .expect("the event was logged (a deadlock never returns)");
    let spans = tracer.finished_spans();
    assert_eq!(spans.len(), 1);
    // The nested event is logged while the outer one's fields are read.
    assert_eq!(spans[0].logs.len(), 2);
}
