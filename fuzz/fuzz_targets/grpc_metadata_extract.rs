#![no_main]
//! Arbitrary gRPC metadata read through `opentracing_tonic::MetadataExtractor`
//! by every propagator (Jaeger, W3C trace context and baggage, B3, and the
//! composite of all): no panic, baggage within the limits, and what is
//! accepted and injected back (through `MetadataInjector`) is valid
//! metadata that extracts again to the same ids.
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use opentracing_api::{
    B3Encoding, B3Propagator, Format, JaegerPropagator, Propagator, TraceContextPropagator,
    W3CBaggagePropagator,
};
use opentracing_jaeger::{propagator_for, PropagationFormat};
use opentracing_tonic::{MetadataExtractor, MetadataInjector};
use tonic::metadata::MetadataMap;

/// Header names the propagators look at, so inputs reach them often.
const NAMES: [&str; 14] = [
    "uber-trace-id",
    "uberctx-a",
    "uberctx-b-bin",
    "jaeger-debug-id",
    "jaeger-baggage",
    "traceparent",
    "tracestate",
    "baggage",
    "b3",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-sampled",
    "x-b3-flags",
    "grpc-trace-bin",
];

fuzz_target!(|input: Vec<(u8, Vec<u8>, Vec<u8>)>| {
    let mut headers = HeaderMap::new();
    for (pick, name, value) in input.iter().take(128) {
        // Either a known name or an arbitrary one.
        let name = if *pick < 200 {
            HeaderName::from_static(NAMES[usize::from(*pick) % NAMES.len()])
        } else if let Ok(n) = HeaderName::from_bytes(name) {
            n
        } else {
            continue;
        };
        if let Ok(v) = HeaderValue::from_bytes(value) {
            headers.append(name, v);
        }
    }
    let metadata = MetadataMap::from_headers(headers);
    let all = [
        PropagationFormat::Jaeger,
        PropagationFormat::TraceContext,
        PropagationFormat::Baggage,
        PropagationFormat::B3Single,
        PropagationFormat::B3Multi,
    ];
    let propagators: [Box<dyn Propagator>; 6] = [
        Box::new(JaegerPropagator::new()),
        Box::new(TraceContextPropagator::new()),
        Box::new(W3CBaggagePropagator::new()),
        Box::new(B3Propagator::with_encoding(B3Encoding::Both)),
        Box::new(propagator_for(&all)),
        Box::new(propagator_for(&all).extracting_also(vec![Box::new(B3Propagator::new())])),
    ];
    for p in &propagators {
        let Ok(Some(cx)) = p.extract(Format::HttpHeaders, &MetadataExtractor::new(&metadata))
        else {
            continue;
        };
        assert!(cx.baggage().len() <= 64);
        assert!(cx.baggage().total_len() <= 8192);
        let mut out = MetadataMap::new();
        p.inject(
            &cx,
            Format::HttpHeaders,
            &mut MetadataInjector::new(&mut out),
        );
        for (k, v) in out.as_ref() {
            assert!(!k.as_str().ends_with("-bin"), "binary key injected: {k}");
            assert!(
                v.as_bytes().iter().all(|b| (0x20..0x7f).contains(b)),
                "{k}: not visible ASCII"
            );
        }
        if cx.is_valid() {
            let again = p.extract(Format::HttpHeaders, &MetadataExtractor::new(&out));
            assert!(
                matches!(again, Ok(Some(ref c)) if c.trace_id() == cx.trace_id() && c.span_id() == cx.span_id()),
                "{again:?} != {cx:?}"
            );
        }
    }
});
