//! Property tests: inject then extract gives back the same context for
//! every format and carrier; no extractor panics on arbitrary input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use http::{HeaderMap, HeaderName, HeaderValue};
use opentracing_api::{
    B3Encoding, B3Propagator, Baggage, CompositePropagator, Format, JaegerPropagator, Propagator,
    SpanContext, SpanId, TraceContextPropagator, TraceFlags, TraceId, W3CBaggagePropagator,
};
use proptest::prelude::*;

fn trace_id() -> impl Strategy<Value = TraceId> {
    prop_oneof![
        (1u64..).prop_map(TraceId::from_u64),
        (1u64.., any::<u64>()).prop_map(|(h, l)| TraceId::from_parts(h, l)),
    ]
}

fn baggage() -> impl Strategy<Value = Baggage> {
    proptest::collection::vec(("[a-z][a-z0-9-]{0,15}", "\\PC{0,40}"), 0..6)
        .prop_map(|items| items.into_iter().collect::<Baggage>())
}

prop_compose! {
    fn context()(t in trace_id(), s in 1u64.., p in any::<u64>(), sampled in any::<bool>(),
                 debug in any::<bool>(), b in baggage()) -> SpanContext {
        let flags = TraceFlags::NONE.with_sampled(sampled || debug).with_debug(debug);
        SpanContext::new(t, SpanId::from_u64(s), flags).with_parent_id(SpanId::from_u64(p)).with_baggage(b)
    }
}

fn round_trip_header_map(p: &dyn Propagator, cx: &SpanContext) -> SpanContext {
    let mut h = HeaderMap::new();
    p.inject(cx, Format::HttpHeaders, &mut h);
    p.extract(Format::HttpHeaders, &h).unwrap().unwrap()
}

fn round_trip_text_map(p: &dyn Propagator, cx: &SpanContext, format: Format) -> SpanContext {
    let mut m = HashMap::new();
    p.inject(cx, format, &mut m);
    p.extract(format, &m).unwrap().unwrap()
}

proptest! {
    #[test]
    fn jaeger_round_trip(cx in context()) {
        let p = JaegerPropagator::new();
        prop_assert_eq!(&round_trip_header_map(&p, &cx), &cx);
        prop_assert_eq!(&round_trip_text_map(&p, &cx, Format::TextMap), &cx);
        prop_assert_eq!(&round_trip_text_map(&p, &cx, Format::HttpHeaders), &cx);
        let mut bin = Vec::new();
        p.inject_binary(&cx, &mut bin).unwrap();
        prop_assert_eq!(p.extract_binary(&bin).unwrap().unwrap(), cx);
    }

    #[test]
    fn w3c_round_trip(cx in context()) {
        let p = CompositePropagator::new(vec![Box::new(TraceContextPropagator::new()), Box::new(W3CBaggagePropagator::new())]);
        // W3C carries the sampled bit only, and no parent id.
        let expect = cx.clone().with_flags(TraceFlags::NONE.with_sampled(cx.is_sampled())).with_parent_id(SpanId::INVALID);
        prop_assert_eq!(&round_trip_header_map(&p, &cx), &expect);
        prop_assert_eq!(&round_trip_text_map(&p, &cx, Format::TextMap), &expect);
    }

    #[test]
    fn b3_round_trip(cx in context(), enc in prop_oneof![Just(B3Encoding::MultiHeader), Just(B3Encoding::SingleHeader), Just(B3Encoding::Both)]) {
        let p = B3Propagator::with_encoding(enc);
        // B3 carries no baggage; a zero parent id is not sent.
        let expect = cx.clone().with_baggage(Baggage::new());
        prop_assert_eq!(&round_trip_header_map(&p, &cx), &expect);
        prop_assert_eq!(&round_trip_text_map(&p, &cx, Format::TextMap), &expect);
    }

    #[test]
    fn extractors_never_panic_on_arbitrary_bytes(
        headers in proptest::collection::vec((prop_oneof![
            Just("uber-trace-id".to_owned()), Just("uberctx-k".to_owned()), Just("jaeger-debug-id".to_owned()),
            Just("jaeger-baggage".to_owned()), Just("traceparent".to_owned()), Just("tracestate".to_owned()),
            Just("baggage".to_owned()), Just("b3".to_owned()), Just("x-b3-traceid".to_owned()),
            Just("x-b3-spanid".to_owned()), Just("x-b3-sampled".to_owned()), Just("x-b3-flags".to_owned()),
            Just("x-b3-parentspanid".to_owned()), "[a-z-]{1,20}"
        ], proptest::collection::vec(any::<u8>(), 0..200)), 0..12),
        binary in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut h = HeaderMap::new();
        for (k, v) in &headers {
            if let (Ok(k), Ok(v)) = (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_bytes(v)) {
                h.append(k, v);
            }
        }
        let all: Vec<Box<dyn Propagator>> = vec![
            Box::new(JaegerPropagator::new()), Box::new(TraceContextPropagator::new()),
            Box::new(W3CBaggagePropagator::new()), Box::new(B3Propagator::new()),
        ];
        for p in &all {
            for format in [Format::HttpHeaders, Format::TextMap] {
                if let Ok(Some(cx)) = p.extract(format, &h) {
                    prop_assert!(cx.baggage().len() <= 64);
                    prop_assert!(cx.baggage().total_len() <= 8192);
                    // Whatever was accepted can be injected again.
                    let mut out = HeaderMap::new();
                    p.inject(&cx, format, &mut out);
                }
            }
        }
        let _ = JaegerPropagator::new().extract_binary(&binary);
    }

    #[test]
    fn mutated_valid_headers_never_panic(cx in context(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        for p in [&JaegerPropagator::new() as &dyn Propagator, &TraceContextPropagator::new(), &B3Propagator::with_encoding(B3Encoding::Both), &W3CBaggagePropagator::new()] {
            let mut m: HashMap<String, String> = HashMap::new();
            p.inject(&cx, Format::HttpHeaders, &mut m);
            let mut h = HeaderMap::new();
            for (k, v) in &m {
                let mut v = v.clone().into_bytes();
                if !v.is_empty() {
                    let i = at.index(v.len());
                    v[i] = byte;
                }
                if let Ok(v) = HeaderValue::from_bytes(&v) {
                    h.insert(HeaderName::from_bytes(k.as_bytes()).unwrap(), v);
                }
            }
            let _ = p.extract(Format::HttpHeaders, &h);
        }
    }
}
