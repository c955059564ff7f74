#![no_main]
use libfuzzer_sys::fuzz_target;
use opentracing_api::{B3Encoding, B3Propagator};

fuzz_target!(|data: &[u8]| {
    opentracing_api_fuzz::run(
        &B3Propagator::with_encoding(B3Encoding::Both),
        &["b3", "x-b3-traceid", "x-b3-spanid", "x-b3-sampled", "x-b3-flags", "x-b3-parentspanid"],
        data,
    );
});
