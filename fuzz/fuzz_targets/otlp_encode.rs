#![no_main]
//! The OTLP/protobuf encoder fed arbitrary span data: what it writes must
//! decode as an `ExportTraceServiceRequest` holding every span, with its
//! name and ids.
use libfuzzer_sys::fuzz_target;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentracing_jaeger::transport::encode_otlp;
use prost::Message;

#[path = "span_input.rs"]
mod span_input;

fuzz_target!(|input: span_input::BatchInput| {
    let (process, spans) = input.build();
    let bytes = encode_otlp(&process, &spans);
    let req = ExportTraceServiceRequest::decode(bytes.as_slice())
        .expect("the OTLP encoder writes a valid ExportTraceServiceRequest");
    let decoded: Vec<_> = req
        .resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .collect();
    assert_eq!(decoded.len(), spans.len());
    for (d, s) in decoded.iter().zip(&spans) {
        assert_eq!(d.name, s.operation_name);
        assert_eq!(d.trace_id, s.context.trace_id().to_u128().to_be_bytes());
        assert_eq!(d.span_id, s.context.span_id().to_u64().to_be_bytes());
    }
});
