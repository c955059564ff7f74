//! Interop of our propagators with real third-party implementations: `PyPI`
//! `jaeger-client` (`TextCodec`, `B3Codec`) and OpenTelemetry's Python Jaeger,
//! W3C trace-context, W3C baggage and B3 propagators.
//!
//! Both directions: headers they inject extract to the same ids, flags and
//! baggage in Rust; headers we inject extract to the same in their code.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::HashMap;

use http::{HeaderMap, HeaderName, HeaderValue};
use integration_tests::python_peer::run_json;
use opentracing_api::{
    B3Encoding, B3Propagator, Baggage, CompositePropagator, Format, JaegerPropagator, Propagator,
    SpanContext, SpanId, TraceContextPropagator, TraceFlags, TraceId, W3CBaggagePropagator,
};
use serde_json::{json, Value};

struct Case {
    trace_id: TraceId,
    span_id: SpanId,
    parent_id: SpanId,
    sampled: bool,
    debug: bool,
    baggage: Vec<(&'static str, &'static str)>,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            trace_id: TraceId::from_u64(0xa1b2_c3d4_e5f6_0718),
            span_id: SpanId::from_u64(0x1122_3344_5566_7788),
            parent_id: SpanId::INVALID,
            sampled: true,
            debug: false,
            baggage: vec![("user", "alice smith")],
        },
        Case {
            trace_id: TraceId::from_parts(0x4bf9_2f35_77b3_4da6, 0xa3ce_929d_0e0e_4736),
            span_id: SpanId::from_u64(0x00f0_67aa_0ba9_02b7),
            parent_id: SpanId::from_u64(0x05e3_ac9a_4f6e_3b90),
            sampled: false,
            debug: false,
            baggage: vec![("tenant", "a,b;c=d+e%f"), ("unicode", "héllo wörld ☃ 日本")],
        },
        Case {
            trace_id: TraceId::from_u64(1),
            span_id: SpanId::from_u64(2),
            parent_id: SpanId::INVALID,
            sampled: true,
            debug: true,
            baggage: vec![],
        },
    ]
}

impl Case {
    fn context(&self) -> SpanContext {
        let flags = TraceFlags::NONE
            .with_sampled(self.sampled)
            .with_debug(self.debug);
        SpanContext::new(self.trace_id, self.span_id, flags)
            .with_parent_id(self.parent_id)
            .with_baggage(self.baggage.iter().copied().collect::<Baggage>())
    }

    fn inject_request(&self, lib: &str) -> Value {
        json!({
            "op": "inject", "lib": lib,
            "trace_id": self.trace_id.to_hex32(),
            "span_id": self.span_id.to_string(),
            "parent_span_id": self.parent_id.to_string(),
            "sampled": self.sampled, "debug": self.debug,
            "baggage": self.baggage.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect::<serde_json::Map<_, _>>(),
        })
    }
}

fn header_map(headers: &Value) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in headers.as_object().expect("headers object") {
        map.append(
            HeaderName::from_bytes(k.as_bytes()).expect("header name"),
            HeaderValue::from_str(v.as_str().expect("string value")).expect("header value"),
        );
    }
    map
}

fn json_headers(map: &HeaderMap) -> Value {
    let obj: serde_json::Map<String, Value> = map
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                json!(v.to_str().expect("ascii header")),
            )
        })
        .collect();
    Value::Object(obj)
}

fn baggage_json(b: &Baggage) -> Value {
    Value::Object(b.iter().map(|(k, v)| (k.to_owned(), json!(v))).collect())
}

fn case_baggage_json(case: &Case) -> Value {
    Value::Object(
        case.baggage
            .iter()
            .map(|(k, v)| ((*k).to_owned(), json!(v)))
            .collect(),
    )
}

fn composite_w3c() -> CompositePropagator {
    CompositePropagator::new(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(W3CBaggagePropagator::new()),
    ])
}

/// (peer lib, our propagator, carries baggage, carries debug, carries parent id)
type Pair = (&'static str, Box<dyn Propagator>, bool, bool, bool);

fn pairs() -> Vec<Pair> {
    vec![
        (
            "jaeger_client",
            Box::new(JaegerPropagator::new()),
            true,
            true,
            true,
        ),
        (
            "otel_jaeger",
            Box::new(JaegerPropagator::new()),
            true,
            false,
            false,
        ),
        (
            "otel_tracecontext",
            Box::new(TraceContextPropagator::new()),
            false,
            false,
            false,
        ),
        (
            "otel_composite",
            Box::new(composite_w3c()),
            true,
            false,
            false,
        ),
        (
            "jaeger_client_b3",
            Box::new(B3Propagator::new()),
            false,
            true,
            true,
        ),
        (
            "otel_b3_multi",
            Box::new(B3Propagator::new()),
            false,
            false,
            false,
        ),
        (
            "otel_b3_single",
            Box::new(B3Propagator::with_encoding(B3Encoding::SingleHeader)),
            false,
            false,
            false,
        ),
    ]
}

#[test]
fn headers_injected_by_python_libraries_extract_in_rust() {
    let cases = cases();
    let pairs = pairs();
    let requests: Vec<Value> = pairs
        .iter()
        .flat_map(|(lib, ..)| cases.iter().map(move |c| c.inject_request(lib)))
        .collect();
    let results = run_json("propagation_peer.py", &requests);
    let mut results = results.iter();
    for (lib, propagator, baggage, debug, _) in &pairs {
        for case in &cases {
            let result = results.next().expect("result");
            let headers = result
                .get("headers")
                .unwrap_or_else(|| panic!("{lib} inject failed: {result}"));
            // Through a real HeaderMap (names lower-cased, as a server sees them)
            // and through a case-preserving text map.
            let via_header_map = propagator.extract(Format::HttpHeaders, &header_map(headers));
            let text: HashMap<String, String> =
                serde_json::from_value(headers.clone()).expect("map");
            let via_text_map = propagator.extract(Format::HttpHeaders, &text);
            assert_eq!(via_header_map, via_text_map, "{lib}: {headers}");
            let cx = via_header_map
                .unwrap_or_else(|e| panic!("{lib}: {headers}: {e}"))
                .unwrap_or_else(|| panic!("{lib}: nothing extracted from {headers}"));
            let what = format!("{lib} {headers}");
            assert_eq!(cx.trace_id(), case.trace_id, "{what}");
            assert_eq!(cx.span_id(), case.span_id, "{what}");
            // OpenTelemetry has no debug flag: its Jaeger propagator sets the
            // debug bit on every sampled context, and its B3 maps debug to sampled.
            assert_eq!(cx.is_sampled(), case.sampled || case.debug, "{what}");
            if *debug {
                assert_eq!(cx.is_debug(), case.debug, "{what}");
            }
            if *baggage {
                assert_eq!(
                    baggage_json(cx.baggage()),
                    case_baggage_json(case),
                    "{what}"
                );
            }
        }
    }
}

#[test]
fn headers_injected_by_rust_extract_in_python_libraries() {
    let cases = cases();
    let pairs = pairs();
    let mut requests = Vec::new();
    for (lib, propagator, ..) in &pairs {
        for case in &cases {
            let mut headers = HeaderMap::new();
            propagator.inject(&case.context(), Format::HttpHeaders, &mut headers);
            requests.push(json!({"op": "extract", "lib": lib, "headers": json_headers(&headers)}));
        }
    }
    let results = run_json("propagation_peer.py", &requests);
    let mut results = results.iter().zip(&requests);
    for (lib, _, baggage, debug, parent) in &pairs {
        for case in &cases {
            let (r, req) = results.next().expect("result");
            let what = format!("{lib} extracting {}: {r}", req["headers"]);
            assert_eq!(r["found"], json!(true), "{what}");
            assert_eq!(r["trace_id"], json!(case.trace_id.to_hex32()), "{what}");
            assert_eq!(r["span_id"], json!(case.span_id.to_string()), "{what}");
            // jaeger-client's B3 codec only knows X-B3-Sampled; debug travels
            // as X-B3-Flags: 1 instead (the B3 specification says not to send both).
            let expect_sampled = if *lib == "jaeger_client_b3" && case.debug {
                false
            } else {
                case.sampled || case.debug
            };
            assert_eq!(r["sampled"], json!(expect_sampled), "{what}");
            if *debug {
                assert_eq!(r["debug"], json!(case.debug), "{what}");
            }
            if *parent {
                assert_eq!(
                    r["parent_span_id"],
                    json!(case.parent_id.to_string()),
                    "{what}"
                );
            }
            if *baggage {
                assert_eq!(r["baggage"], case_baggage_json(case), "{what}");
            }
        }
    }
}

#[test]
fn w3c_baggage_and_tracestate_both_ways() {
    let cx = SpanContext::new(
        TraceId::from_u128(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736),
        SpanId::from_u64(7),
        TraceFlags::SAMPLED,
    )
    .with_trace_state(Some("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"))
    .with_baggage(Baggage::from_iter([("k1", "v 1"), ("k2", "ü+,;=%")]));
    let mut ours = HeaderMap::new();
    composite_w3c().inject(&cx, Format::HttpHeaders, &mut ours);
    let requests = vec![
        json!({"op": "extract", "lib": "otel_tracecontext", "headers": json_headers(&ours)}),
        json!({"op": "extract", "lib": "otel_baggage", "headers": json_headers(&ours)}),
        json!({"op": "inject", "lib": "otel_tracecontext", "trace_id": cx.trace_id().to_hex32(), "span_id": "0000000000000007",
               "parent_span_id": "0000000000000000", "sampled": true, "debug": false, "baggage": {},
               "tracestate": "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"}),
        json!({"op": "inject", "lib": "otel_baggage", "trace_id": cx.trace_id().to_hex32(), "span_id": "0000000000000007",
               "parent_span_id": "0000000000000000", "sampled": true, "debug": false, "baggage": {"k1": "v 1", "k2": "ü+,;=%"}}),
    ];
    let r = run_json("propagation_peer.py", &requests);
    assert_eq!(
        r[0]["tracestate"],
        json!("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"),
        "{}",
        r[0]
    );
    assert_eq!(
        r[1]["baggage"],
        json!({"k1": "v 1", "k2": "ü+,;=%"}),
        "{}",
        r[1]
    );
    let theirs = header_map(&r[2]["headers"]);
    let got = TraceContextPropagator::new()
        .extract(Format::HttpHeaders, &theirs)
        .unwrap()
        .unwrap();
    assert_eq!(
        got.trace_state(),
        Some("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")
    );
    let theirs = header_map(&r[3]["headers"]);
    let got = W3CBaggagePropagator::new()
        .extract(Format::HttpHeaders, &theirs)
        .unwrap()
        .unwrap();
    assert_eq!(got.baggage_item("k1"), Some("v 1"), "{:?}", r[3]);
    assert_eq!(got.baggage_item("k2"), Some("ü+,;=%"), "{:?}", r[3]);
}

#[test]
fn jaeger_client_debug_id_and_malformed_headers_agree() {
    // Inputs both sides must reject, and a lone debug id both must keep.
    let bad = ["1:2:0", "0:2:0:1", "1:0:0:1", "xyz:2:0:1", "1:2:0:1:1"];
    let mut requests: Vec<Value> = bad
        .iter()
        .map(|v| json!({"op": "extract", "lib": "jaeger_client", "headers": {"uber-trace-id": v}}))
        .collect();
    requests.push(
        json!({"op": "extract", "lib": "jaeger_client", "headers": {"jaeger-debug-id": "dbg-123"}}),
    );
    let results = run_json("propagation_peer.py", &requests);
    for (v, r) in bad.iter().zip(&results) {
        assert!(
            r.get("error").is_some() || r["found"] == json!(false),
            "jaeger-client accepted {v}: {r}"
        );
        let mut h = HashMap::new();
        h.insert("uber-trace-id".to_owned(), (*v).to_owned());
        assert!(
            JaegerPropagator::new()
                .extract(Format::HttpHeaders, &h)
                .is_err(),
            "we accepted {v}"
        );
    }
    let r = &results[bad.len()];
    assert_eq!(r["debug_id"], json!("dbg-123"), "{r}");
    let mut h = HashMap::new();
    h.insert("jaeger-debug-id".to_owned(), "dbg-123".to_owned());
    let cx = JaegerPropagator::new()
        .extract(Format::HttpHeaders, &h)
        .unwrap()
        .unwrap();
    assert_eq!(cx.debug_id(), Some("dbg-123"));
    assert!(!cx.is_valid());
}
