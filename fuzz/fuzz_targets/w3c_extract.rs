#![no_main]
use libfuzzer_sys::fuzz_target;
use opentracing_api::{CompositePropagator, TraceContextPropagator, W3CBaggagePropagator};

fuzz_target!(|data: &[u8]| {
    let p = CompositePropagator::new(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(W3CBaggagePropagator::new()),
    ]);
    opentracing_api_fuzz::run(&p, &["traceparent", "tracestate", "baggage"], data);
});
