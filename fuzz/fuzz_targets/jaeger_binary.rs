#![no_main]
use libfuzzer_sys::fuzz_target;
use opentracing_api::{JaegerPropagator, Propagator};

fuzz_target!(|data: &[u8]| {
    let p = JaegerPropagator::new();
    if let Ok(Some(cx)) = p.extract_binary(data) {
        let mut out = Vec::new();
        p.inject_binary(&cx, &mut out).expect("jaeger has a binary format");
        assert_eq!(p.extract_binary(&out).ok().flatten(), Some(cx));
    }
});
