#![no_main]
use libfuzzer_sys::fuzz_target;
use opentracing_api::JaegerPropagator;

fuzz_target!(|data: &[u8]| {
    opentracing_api_fuzz::run(
        &JaegerPropagator::new(),
        &["uber-trace-id", "uberctx-a", "jaeger-debug-id", "jaeger-baggage", "uberctx-b"],
        data,
    );
});
