//! The logging reporter writes one line per span through the `log` crate.
#![allow(clippy::unwrap_used)]

use std::sync::Mutex;
use std::time::Duration;

use opentracing_api::prelude::*;
use opentracing_jaeger::{Exporter, JaegerTracer};

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        if record.target().starts_with("opentracing_jaeger") {
            LINES.lock().unwrap().push(record.args().to_string());
        }
    }
    fn flush(&self) {}
}

#[test]
fn log_spans_writes_one_line_per_span() {
    log::set_logger(&Capture).unwrap();
    log::set_max_level(log::LevelFilter::Info);
    let tracer = JaegerTracer::builder("logged")
        .exporter(Exporter::None)
        .log_spans(true)
        .build()
        .unwrap();
    let span = tracer
        .span("GET /dispatch")
        .tag(tags::HTTP_STATUS_CODE, 200)
        .start();
    let trace_id = span.context().trace_id();
    span.finish();
    tracer.flush(Duration::from_secs(10)).unwrap();
    let lines = LINES.lock().unwrap();
    let line = lines.iter().find(|l| l.contains("GET /dispatch")).unwrap();
    assert!(line.contains(&trace_id.to_string()), "{line}");
    assert!(
        line.contains("service=logged") && line.contains("http.status_code=200"),
        "{line}"
    );
}
