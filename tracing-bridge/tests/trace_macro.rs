//! Events inside `#[trace]`ed functions (spans of the global tracer) land
//! on their spans, and `tracing` spans inside them are their children. In
//! a test binary of its own: it sets the global tracer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use opentracing_api::{set_global_tracer, trace, MockTracer, TagValue, TracerExt};
use opentracing_tracing_bridge::OpenTracingLayer;
use tracing_subscriber::prelude::*;

#[trace]
fn charge(amount: u32) -> Result<u32, String> {
    tracing::info!(amount, "charging");
    let _step = tracing::info_span!("card_network").entered();
    tracing::error!("declined");
    Err("declined".to_owned())
}

#[test]
fn events_in_trace_functions_are_logs_on_their_spans() {
    let tracer = MockTracer::new();
    set_global_tracer(std::sync::Arc::new(tracer.clone())).unwrap();
    let subscriber = tracing_subscriber::registry().with(OpenTracingLayer::new(tracer.clone()));
    tracing::subscriber::with_default(subscriber, || {
        let request = tracer.span("request").start_shared();
        let _ = request.in_scope(|| charge(12));
        request.finish();
    });
    let spans = tracer.finished_spans();
    let find = |name: &str| spans.iter().find(|s| s.operation_name == name).unwrap();
    let (request, charge, network) = (find("request"), find("charge"), find("card_network"));
    assert_eq!(charge.parent_span_id(), Some(request.context.span_id()));
    assert_eq!(network.parent_span_id(), Some(charge.context.span_id()));
    assert_eq!(charge.logs[0].fields[0].value, TagValue::from("charging"));
    assert!(charge.logs[0]
        .fields
        .iter()
        .any(|f| f.key == "amount" && f.value == TagValue::I64(12)));
    assert_eq!(
        network.logs.len(),
        1,
        "the error! is logged in the inner span"
    );
    assert_eq!(network.tag("error"), Some(&TagValue::Bool(true)));
    assert_eq!(
        charge.tag("error"),
        Some(&TagValue::Bool(true)),
        "from the Err"
    );
    assert!(request.logs.is_empty());
}
