//! A direct protobuf encoder for OTLP `ExportTraceServiceRequest`.
//!
//! Building the `opentelemetry-proto` messages first allocates an owned
//! `String` for every attribute key and value and a `Vec` for every list,
//! only to throw them away after encoding. This encoder writes the same
//! bytes straight from the finished spans: each message's length is
//! computed first (protobuf prefixes nested messages with their length),
//! then the message is written. `tests::matches_prost` checks that the
//! bytes are exactly those of the same request built with the official
//! `opentelemetry-proto` types and encoded by prost (a test-only reference).

// Protobuf's int64 is written as the two's-complement varint of the value:
// these casts are the wire format.
#![allow(clippy::cast_sign_loss, clippy::cast_possible_wrap)]

use std::time::{SystemTime, UNIX_EPOCH};

use opentracing_api::{log_fields, tags, FinishedSpan, ReferenceKind, Tag, TagValue};

use crate::process::Process;

const LEN: u8 = 2;
const VARINT: u8 = 0;
const I64: u8 = 1;
const I32: u8 = 5;

fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn key(out: &mut Vec<u8>, field: u32, wire: u8) {
    put_varint(out, u64::from(field << 3 | u32::from(wire)));
}

/// Size of a length-delimited field (1-byte key: fields below 16).
fn ld_size(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    key(out, field, LEN);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_len(out: &mut Vec<u8>, field: u32, len: usize) {
    key(out, field, LEN);
    put_varint(out, len as u64);
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

// AnyValue { string_value = 1; bool_value = 2; int_value = 3; double_value = 4 }
fn any_size(v: &TagValue) -> usize {
    match v {
        TagValue::String(s) => ld_size(s.len()),
        TagValue::Bool(_) => 2,
        TagValue::I64(i) => 1 + varint_len(*i as u64),
        TagValue::F64(_) => 9,
    }
}

fn put_any(out: &mut Vec<u8>, v: &TagValue) {
    match v {
        TagValue::String(s) => put_bytes(out, 1, s.as_bytes()),
        TagValue::Bool(b) => {
            key(out, 2, VARINT);
            out.push(u8::from(*b));
        }
        TagValue::I64(i) => {
            key(out, 3, VARINT);
            put_varint(out, *i as u64);
        }
        TagValue::F64(f) => {
            key(out, 4, I64);
            out.extend_from_slice(&f.to_le_bytes());
        }
    }
}

// KeyValue { key = 1; value = 2 }
fn kv_size(k: &str, v: &TagValue) -> usize {
    ld_size(k.len()) + ld_size(any_size(v))
}

fn put_kv(out: &mut Vec<u8>, field: u32, k: &str, v: &TagValue) {
    put_len(out, field, kv_size(k, v));
    put_bytes(out, 1, k.as_bytes());
    put_len(out, 2, any_size(v));
    put_any(out, v);
}

fn parent_index(s: &FinishedSpan) -> Option<usize> {
    s.references
        .iter()
        .position(|r| r.kind == ReferenceKind::ChildOf)
        .or(if s.references.is_empty() {
            None
        } else {
            Some(0)
        })
}

fn kind(span_kind: &TagValue) -> u64 {
    match span_kind.as_str() {
        Some(tags::SPAN_KIND_SERVER) => 2,
        Some(tags::SPAN_KIND_CLIENT) => 3,
        Some(tags::SPAN_KIND_PRODUCER) => 4,
        Some(tags::SPAN_KIND_CONSUMER) => 5,
        _ => 1,
    }
}

fn event_name(fields: &[Tag]) -> Option<&TagValue> {
    fields
        .iter()
        .find(|f| f.key == log_fields::EVENT)
        .map(|f| &f.value)
}

fn ref_type(kind: ReferenceKind) -> TagValue {
    TagValue::from(if kind == ReferenceKind::ChildOf {
        "child_of"
    } else {
        "follows_from"
    })
}

/// The status message of a failed span: its first logged message.
fn error_message(s: &FinishedSpan) -> &TagValue {
    static NONE: TagValue = TagValue::String(std::borrow::Cow::Borrowed(""));
    s.logs
        .iter()
        .flat_map(|l| &l.fields)
        .find(|f| f.key == log_fields::MESSAGE || f.key == log_fields::ERROR_OBJECT)
        .map_or(&NONE, |f| &f.value)
}

/// The display form of a value, as `TagValue::to_string` gives it, without
/// allocating for strings.
fn text(v: &TagValue) -> std::borrow::Cow<'_, str> {
    match v {
        TagValue::String(s) => std::borrow::Cow::Borrowed(s),
        other => std::borrow::Cow::Owned(other.to_string()),
    }
}

/// What the encoder needs to know of a span, found in one pass over its
/// tags and kept for the writing pass (which would otherwise search the
/// tags again for the kind and the error flag).
struct SpanFacts<'a> {
    /// The encoded size of the `Span` message.
    size: usize,
    kind: u64,
    parent: Option<usize>,
    /// The status message, for spans tagged `error=true`.
    error: Option<&'a TagValue>,
}

fn span_facts(s: &FinishedSpan) -> SpanFacts<'_> {
    let cx = &s.context;
    let parent = parent_index(s);
    let mut kind_code = 1;
    let mut failed = false;
    let mut n = ld_size(16) + ld_size(8);
    if let Some(ts) = cx.trace_state().filter(|t| !t.is_empty()) {
        n += ld_size(ts.len());
    }
    if parent.is_some() {
        n += ld_size(8);
    }
    n += ld_size(s.operation_name.len());
    n += 9 + 9; // start and end, fixed64
    for t in &s.tags {
        if t.key == tags::SPAN_KIND {
            kind_code = kind(&t.value);
            continue;
        }
        if t.key == tags::ERROR {
            failed = t.value.as_bool() == Some(true);
        }
        n += ld_size(kv_size(&t.key, &t.value));
    }
    n += 1 + varint_len(kind_code);
    for l in &s.logs {
        n += ld_size(event_size(&l.fields, l.timestamp));
    }
    for (i, r) in s.references.iter().enumerate() {
        if Some(i) != parent {
            n += ld_size(link_size(r.kind));
        }
    }
    let error = failed.then(|| error_message(s));
    if let Some(m) = error {
        n += ld_size(status_size(m));
    }
    let flags = u32::from(cx.flags().to_u8() & 1);
    if flags != 0 {
        n += 2 + 4; // field 16 takes a two-byte key
    }
    SpanFacts {
        size: n,
        kind: kind_code,
        parent,
        error,
    }
}

fn event_size(fields: &[Tag], ts: SystemTime) -> usize {
    let name_len = event_name(fields).map_or(3, |v| text(v).len());
    let mut n = 9 + ld_size(name_len);
    for f in fields {
        n += ld_size(kv_size(&f.key, &f.value));
    }
    let _ = ts;
    n
}

fn link_size(kind: ReferenceKind) -> usize {
    ld_size(16) + ld_size(8) + ld_size(kv_size("opentracing.ref_type", &ref_type(kind)))
}

fn status_size(message: &TagValue) -> usize {
    let m = text(message);
    (if m.is_empty() { 0 } else { ld_size(m.len()) }) + 2
}

fn put_span(out: &mut Vec<u8>, s: &FinishedSpan, facts: &SpanFacts<'_>) {
    let cx = &s.context;
    put_bytes(out, 1, &cx.trace_id().to_u128().to_be_bytes());
    put_bytes(out, 2, &cx.span_id().to_u64().to_be_bytes());
    if let Some(ts) = cx.trace_state().filter(|t| !t.is_empty()) {
        put_bytes(out, 3, ts.as_bytes());
    }
    let parent = facts.parent;
    if let Some(i) = parent {
        put_bytes(
            out,
            4,
            &s.references[i].context.span_id().to_u64().to_be_bytes(),
        );
    }
    put_bytes(out, 5, s.operation_name.as_bytes());
    key(out, 6, VARINT);
    put_varint(out, facts.kind);
    key(out, 7, I64);
    out.extend_from_slice(&nanos(s.start_time).to_le_bytes());
    key(out, 8, I64);
    // A clock stepped back mid-span must not end it before it starts.
    out.extend_from_slice(&nanos(s.finish_time).max(nanos(s.start_time)).to_le_bytes());
    for t in s.tags.iter().filter(|t| t.key != tags::SPAN_KIND) {
        put_kv(out, 9, &t.key, &t.value);
    }
    for l in &s.logs {
        put_len(out, 11, event_size(&l.fields, l.timestamp));
        key(out, 1, I64);
        out.extend_from_slice(&nanos(l.timestamp).to_le_bytes());
        match event_name(&l.fields) {
            Some(v) => put_bytes(out, 2, text(v).as_bytes()),
            None => put_bytes(out, 2, b"log"),
        }
        for f in &l.fields {
            put_kv(out, 3, &f.key, &f.value);
        }
    }
    for (i, r) in s.references.iter().enumerate() {
        if Some(i) == parent {
            continue;
        }
        put_len(out, 13, link_size(r.kind));
        put_bytes(out, 1, &r.context.trace_id().to_u128().to_be_bytes());
        put_bytes(out, 2, &r.context.span_id().to_u64().to_be_bytes());
        put_kv(out, 4, "opentracing.ref_type", &ref_type(r.kind));
    }
    if let Some(m) = facts.error {
        put_len(out, 15, status_size(m));
        let m = text(m);
        if !m.is_empty() {
            put_bytes(out, 2, m.as_bytes());
        }
        key(out, 3, VARINT);
        put_varint(out, 2); // STATUS_CODE_ERROR
    }
    let flags = u32::from(cx.flags().to_u8() & 1);
    if flags != 0 {
        key(out, 16, I32);
        out.extend_from_slice(&flags.to_le_bytes());
    }
}

const SCOPE_NAME: &str = "opentracing-jaeger";
const SCOPE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Encodes the `ExportTraceServiceRequest` for `spans` from `process`.
pub(crate) fn encode_export_request(process: &Process, spans: &[Box<FinishedSpan>]) -> Vec<u8> {
    let service = TagValue::from(process.service_name.clone());
    let resource = ld_size(kv_size("service.name", &service))
        + process
            .tags
            .iter()
            .map(|t| ld_size(kv_size(&t.key, &t.value)))
            .sum::<usize>();
    let scope = ld_size(SCOPE_NAME.len()) + ld_size(SCOPE_VERSION.len());
    crate::prefetch::start(spans);
    let facts: Vec<SpanFacts<'_>> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| {
            crate::prefetch::layout_ahead(spans, i);
            span_facts(s)
        })
        .collect();
    let scope_spans = ld_size(scope) + facts.iter().map(|f| ld_size(f.size)).sum::<usize>();
    let resource_spans = ld_size(resource) + ld_size(scope_spans);
    let mut out = Vec::with_capacity(ld_size(resource_spans));
    put_len(&mut out, 1, resource_spans);
    put_len(&mut out, 1, resource);
    put_kv(&mut out, 1, "service.name", &service);
    for t in &process.tags {
        put_kv(&mut out, 1, &t.key, &t.value);
    }
    put_len(&mut out, 2, scope_spans);
    put_len(&mut out, 1, scope);
    put_bytes(&mut out, 1, SCOPE_NAME.as_bytes());
    put_bytes(&mut out, 2, SCOPE_VERSION.as_bytes());
    for (i, (s, f)) in spans.iter().zip(&facts).enumerate() {
        crate::prefetch::strings_ahead(spans, i);
        put_len(&mut out, 2, f.size);
        let before = out.len();
        put_span(&mut out, s, f);
        debug_assert_eq!(out.len() - before, f.size, "span size mismatch");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentracing_api::{MockTracer, TracerExt};
    use prost::Message;

    #[allow(clippy::vec_box)] // batches are boxes, as the reporter hands them over
    fn spans() -> Vec<Box<FinishedSpan>> {
        let t = MockTracer::new();
        let producer = t.span("producer").start();
        let pcx = producer.context().clone();
        producer.finish();
        let mut s = t
            .span("GET /users/{id}")
            .follows_from(&pcx)
            .tag(tags::SPAN_KIND, tags::SPAN_KIND_SERVER)
            .tag(tags::HTTP_STATUS_CODE, 503)
            .tag("ratio", 0.5)
            .tag("x".repeat(200), "y".repeat(300))
            .start();
        s.log([(log_fields::EVENT, "cache miss")]);
        s.log([Tag::new("attempt", 3_i64), Tag::new("ok", false)]);
        s.set_error(&"upstream timed out");
        let child = t
            .span("child")
            .child_of(s.context())
            .follows_from(&pcx)
            .start();
        child.finish();
        s.finish();
        t.finished_spans().into_iter().map(Box::new).collect()
    }

    #[test]
    fn matches_prost() {
        let process = Process {
            service_name: "svc".into(),
            tags: vec![Tag::new("hostname", "h"), Tag::new("n", -5_i64)],
        };
        let spans = spans();
        let ours = encode_export_request(&process, &spans);
        let decoded = ExportTraceServiceRequest::decode(ours.as_slice()).unwrap();
        let expected = super::super::otlp_reference::otlp_export_request(&process, &spans);
        assert_eq!(decoded, expected);
        assert_eq!(
            ours,
            expected.encode_to_vec(),
            "byte-identical to prost's encoding"
        );
    }

    #[test]
    fn a_clock_stepped_back_never_ends_a_span_before_it_starts() {
        let process = Process {
            service_name: "svc".into(),
            tags: Vec::new(),
        };
        let mut spans = spans();
        spans[0].finish_time = spans[0].start_time - std::time::Duration::from_secs(3);
        let ours = encode_export_request(&process, &spans);
        let decoded = ExportTraceServiceRequest::decode(ours.as_slice()).unwrap();
        assert_eq!(
            decoded,
            super::super::otlp_reference::otlp_export_request(&process, &spans)
        );
        let s = &decoded.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(s.end_time_unix_nano, s.start_time_unix_nano);
    }
}
