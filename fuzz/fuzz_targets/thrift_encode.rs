#![no_main]
//! The Jaeger collector's binary-Thrift `Batch` encoder fed arbitrary span
//! data: it must not panic, and it must be deterministic.
use libfuzzer_sys::fuzz_target;
use opentracing_jaeger::transport::HttpCollectorTransport;

#[path = "span_input.rs"]
mod span_input;

fuzz_target!(|input: span_input::BatchInput| {
    let (process, spans) = input.build();
    let bytes = HttpCollectorTransport::encode(&process, &spans);
    assert!(!bytes.is_empty());
    assert_eq!(bytes, HttpCollectorTransport::encode(&process, &spans));
});
