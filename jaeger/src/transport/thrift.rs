//! Jaeger's Thrift model (`jaeger.thrift`, `agent.thrift`), written in the
//! compact protocol (UDP to an agent) and the binary protocol (HTTP to a
//! collector).
//!
//! Hand-written rather than generated: only encoding is needed, the structs
//! are few and frozen, and writing straight from a finished span into the
//! output buffer avoids building an intermediate Thrift object per span on
//! the reporter's hot path.

// Thrift has only signed integers: Jaeger carries its unsigned 64-bit ids in
// `i64` fields bit for bit, and zigzag/varint encoding reinterprets signs by
// design. These casts are the wire format, not accidents.
#![allow(clippy::cast_sign_loss, clippy::cast_possible_wrap)]

use std::time::{SystemTime, UNIX_EPOCH};

use opentracing_api::{FinishedSpan, ReferenceKind, Tag, TagValue};

use crate::process::Process;

/// Thrift field types, as the two protocols name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ty {
    Bool,
    I32,
    I64,
    Double,
    Binary,
    List,
    Struct,
}

/// The primitives a Thrift protocol writes.
pub(crate) trait Protocol: Default {
    fn field(&mut self, out: &mut Vec<u8>, ty: Ty, id: i16);
    fn bool_field(&mut self, out: &mut Vec<u8>, id: i16, v: bool);
    fn struct_begin(&mut self);
    fn struct_end(&mut self, out: &mut Vec<u8>);
    fn i32(out: &mut Vec<u8>, v: i32);
    fn i64(out: &mut Vec<u8>, v: i64);
    fn double(out: &mut Vec<u8>, v: f64);
    fn binary(out: &mut Vec<u8>, v: &[u8]);
    fn list(out: &mut Vec<u8>, elem: Ty, len: usize);
}

/// The compact protocol: varints, zigzag integers, field-id deltas.
#[derive(Default)]
pub(crate) struct Compact {
    last: i16,
    stack: Vec<i16>,
}

impl Compact {
    fn code(ty: Ty) -> u8 {
        match ty {
            Ty::Bool => 1,
            Ty::I32 => 5,
            Ty::I64 => 6,
            Ty::Double => 7,
            Ty::Binary => 8,
            Ty::List => 9,
            Ty::Struct => 12,
        }
    }

    pub(crate) fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn header(&mut self, out: &mut Vec<u8>, code: u8, id: i16) {
        let delta = id.wrapping_sub(self.last);
        if (1..=15).contains(&delta) {
            out.push(((delta as u8) << 4) | code);
        } else {
            out.push(code);
            Self::varint(out, u64::from(zigzag32(i32::from(id))));
        }
        self.last = id;
    }
}

fn zigzag32(v: i32) -> u32 {
    ((v << 1) ^ (v >> 31)) as u32
}

fn zigzag64(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

impl Protocol for Compact {
    fn field(&mut self, out: &mut Vec<u8>, ty: Ty, id: i16) {
        self.header(out, Self::code(ty), id);
    }
    fn bool_field(&mut self, out: &mut Vec<u8>, id: i16, v: bool) {
        self.header(out, if v { 1 } else { 2 }, id);
    }
    fn struct_begin(&mut self) {
        self.stack.push(self.last);
        self.last = 0;
    }
    fn struct_end(&mut self, out: &mut Vec<u8>) {
        out.push(0);
        self.last = self.stack.pop().unwrap_or(0);
    }
    fn i32(out: &mut Vec<u8>, v: i32) {
        Self::varint(out, u64::from(zigzag32(v)));
    }
    fn i64(out: &mut Vec<u8>, v: i64) {
        Self::varint(out, zigzag64(v));
    }
    fn double(out: &mut Vec<u8>, v: f64) {
        out.extend_from_slice(&v.to_le_bytes());
    }
    fn binary(out: &mut Vec<u8>, v: &[u8]) {
        Self::varint(out, v.len() as u64);
        out.extend_from_slice(v);
    }
    fn list(out: &mut Vec<u8>, elem: Ty, len: usize) {
        let code = if elem == Ty::Bool {
            1
        } else {
            Self::code(elem)
        };
        if len < 15 {
            out.push(((len as u8) << 4) | code);
        } else {
            out.push(0xf0 | code);
            Self::varint(out, len as u64);
        }
    }
}

/// The binary protocol: fixed-width big-endian values.
#[derive(Default)]
pub(crate) struct Binary;

impl Binary {
    fn code(ty: Ty) -> u8 {
        match ty {
            Ty::Bool => 2,
            Ty::Double => 4,
            Ty::I32 => 8,
            Ty::I64 => 10,
            Ty::Binary => 11,
            Ty::Struct => 12,
            Ty::List => 15,
        }
    }
}

impl Protocol for Binary {
    fn field(&mut self, out: &mut Vec<u8>, ty: Ty, id: i16) {
        out.push(Self::code(ty));
        out.extend_from_slice(&id.to_be_bytes());
    }
    fn bool_field(&mut self, out: &mut Vec<u8>, id: i16, v: bool) {
        self.field(out, Ty::Bool, id);
        out.push(u8::from(v));
    }
    fn struct_begin(&mut self) {}
    fn struct_end(&mut self, out: &mut Vec<u8>) {
        out.push(0);
    }
    fn i32(out: &mut Vec<u8>, v: i32) {
        out.extend_from_slice(&v.to_be_bytes());
    }
    fn i64(out: &mut Vec<u8>, v: i64) {
        out.extend_from_slice(&v.to_be_bytes());
    }
    fn double(out: &mut Vec<u8>, v: f64) {
        out.extend_from_slice(&v.to_bits().to_be_bytes());
    }
    fn binary(out: &mut Vec<u8>, v: &[u8]) {
        Self::i32(out, i32::try_from(v.len()).unwrap_or(i32::MAX));
        out.extend_from_slice(v);
    }
    fn list(out: &mut Vec<u8>, elem: Ty, len: usize) {
        out.push(Self::code(elem));
        Self::i32(out, i32::try_from(len).unwrap_or(i32::MAX));
    }
}

/// Counters sent with each UDP batch (`ClientStats`), as the agent expects.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ClientStats {
    pub(crate) full_queue_dropped: i64,
    pub(crate) too_large_dropped: i64,
    pub(crate) failed_to_emit: i64,
}

/// Longest string tag value written; longer values are cut (on a UTF-8
/// character boundary), as the Jaeger clients do (their default is 256;
/// ours is larger because URLs and SQL statements are common values).
pub(crate) const MAX_TAG_VALUE_LEN: usize = 4096;

fn truncate(s: &str) -> &str {
    if s.len() <= MAX_TAG_VALUE_LEN {
        return s;
    }
    let mut end = MAX_TAG_VALUE_LEN;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn micros(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

pub(crate) fn write_tag<P: Protocol>(p: &mut P, out: &mut Vec<u8>, tag: &Tag) {
    p.struct_begin();
    p.field(out, Ty::Binary, 1);
    P::binary(out, tag.key.as_bytes());
    p.field(out, Ty::I32, 2);
    match &tag.value {
        TagValue::String(s) => {
            P::i32(out, 0);
            p.field(out, Ty::Binary, 3);
            P::binary(out, truncate(s).as_bytes());
        }
        TagValue::F64(v) => {
            P::i32(out, 1);
            p.field(out, Ty::Double, 4);
            P::double(out, *v);
        }
        TagValue::Bool(v) => {
            P::i32(out, 2);
            p.bool_field(out, 5, *v);
        }
        TagValue::I64(v) => {
            P::i32(out, 3);
            p.field(out, Ty::I64, 6);
            P::i64(out, *v);
        }
    }
    p.struct_end(out);
}

fn write_tags<P: Protocol>(p: &mut P, out: &mut Vec<u8>, id: i16, tags: &[Tag]) {
    p.field(out, Ty::List, id);
    P::list(out, Ty::Struct, tags.len());
    for t in tags {
        write_tag(p, out, t);
    }
}

/// Writes one `Span` struct.
pub(crate) fn write_span<P: Protocol>(p: &mut P, out: &mut Vec<u8>, span: &FinishedSpan) {
    let cx = &span.context;
    let parent = span
        .parent_span_id()
        .map_or(0, opentracing_api::SpanId::to_u64);
    p.struct_begin();
    p.field(out, Ty::I64, 1);
    P::i64(out, cx.trace_id().low() as i64);
    p.field(out, Ty::I64, 2);
    P::i64(out, cx.trace_id().high() as i64);
    p.field(out, Ty::I64, 3);
    P::i64(out, cx.span_id().to_u64() as i64);
    p.field(out, Ty::I64, 4);
    P::i64(out, parent as i64);
    p.field(out, Ty::Binary, 5);
    P::binary(out, span.operation_name.as_bytes());
    if !span.references.is_empty() {
        p.field(out, Ty::List, 6);
        P::list(out, Ty::Struct, span.references.len());
        for r in &span.references {
            p.struct_begin();
            p.field(out, Ty::I32, 1);
            P::i32(out, i32::from(r.kind != ReferenceKind::ChildOf));
            p.field(out, Ty::I64, 2);
            P::i64(out, r.context.trace_id().low() as i64);
            p.field(out, Ty::I64, 3);
            P::i64(out, r.context.trace_id().high() as i64);
            p.field(out, Ty::I64, 4);
            P::i64(out, r.context.span_id().to_u64() as i64);
            p.struct_end(out);
        }
    }
    p.field(out, Ty::I32, 7);
    P::i32(out, i32::from(cx.flags().to_u8()));
    p.field(out, Ty::I64, 8);
    P::i64(out, micros(span.start_time));
    p.field(out, Ty::I64, 9);
    P::i64(
        out,
        i64::try_from(span.duration().as_micros()).unwrap_or(i64::MAX),
    );
    if !span.tags.is_empty() {
        write_tags(p, out, 10, &span.tags);
    }
    if !span.logs.is_empty() {
        p.field(out, Ty::List, 11);
        P::list(out, Ty::Struct, span.logs.len());
        for log in &span.logs {
            p.struct_begin();
            p.field(out, Ty::I64, 1);
            P::i64(out, micros(log.timestamp));
            write_tags(p, out, 2, &log.fields);
            p.struct_end(out);
        }
    }
    p.struct_end(out);
}

pub(crate) fn write_process<P: Protocol>(p: &mut P, out: &mut Vec<u8>, process: &Process) {
    p.struct_begin();
    p.field(out, Ty::Binary, 1);
    P::binary(out, process.service_name.as_bytes());
    if !process.tags.is_empty() {
        write_tags(p, out, 2, &process.tags);
    }
    p.struct_end(out);
}

/// Writes a `Batch` struct whose spans are already encoded (each in `P`).
pub(crate) fn write_batch<P: Protocol>(
    p: &mut P,
    out: &mut Vec<u8>,
    process: &[u8],
    spans: &[&[u8]],
    seq_no: Option<i64>,
    stats: Option<ClientStats>,
) {
    p.struct_begin();
    p.field(out, Ty::Struct, 1);
    out.extend_from_slice(process);
    p.field(out, Ty::List, 2);
    P::list(out, Ty::Struct, spans.len());
    for s in spans {
        out.extend_from_slice(s);
    }
    if let Some(seq) = seq_no {
        p.field(out, Ty::I64, 3);
        P::i64(out, seq);
    }
    if let Some(st) = stats {
        p.field(out, Ty::Struct, 4);
        p.struct_begin();
        p.field(out, Ty::I64, 1);
        P::i64(out, st.full_queue_dropped);
        p.field(out, Ty::I64, 2);
        P::i64(out, st.too_large_dropped);
        p.field(out, Ty::I64, 3);
        P::i64(out, st.failed_to_emit);
        p.struct_end(out);
    }
    p.struct_end(out);
}

/// Encodes a struct on its own (for spans and the process, encoded once and
/// then copied into batches).
pub(crate) fn encode<P: Protocol>(f: impl FnOnce(&mut P, &mut Vec<u8>)) -> Vec<u8> {
    let mut p = P::default();
    let mut out = Vec::with_capacity(256);
    f(&mut p, &mut out);
    out
}

/// Each span encoded on its own (in `P`), prefetching the spans ahead.
pub(crate) fn encode_spans<P: Protocol>(spans: &[Box<FinishedSpan>]) -> Vec<Vec<u8>> {
    crate::prefetch::start(spans);
    spans
        .iter()
        .enumerate()
        .map(|(i, s)| {
            crate::prefetch::all_ahead(spans, i);
            encode::<P>(|p, out| write_span(p, out, s))
        })
        .collect()
}

/// The compact-protocol message header of a oneway `Agent.emitBatch` call,
/// followed by the argument struct's header for field 1 (the batch).
pub(crate) fn emit_batch_header(out: &mut Vec<u8>, seq_id: u32) {
    out.push(0x82); // compact protocol id
    out.push(0x81); // version 1, message type ONEWAY (4) << 5
    Compact::varint(out, u64::from(seq_id)); // a plain (not zigzag) varint
    Compact::binary(out, b"emitBatch");
    // emitBatch_args { 1: Batch batch }: field 1, type struct.
    out.push(0x1c);
}

/// Ends the `emitBatch_args` struct.
pub(crate) fn emit_batch_footer(out: &mut Vec<u8>) {
    out.push(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_primitives_match_the_spec() {
        let mut out = Vec::new();
        Compact::varint(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
        assert_eq!(zigzag64(-1), 1);
        assert_eq!(zigzag64(1), 2);
        assert_eq!(zigzag32(-2), 3);
        let mut p = Compact::default();
        let mut out = Vec::new();
        p.struct_begin();
        p.field(&mut out, Ty::I64, 1);
        p.field(&mut out, Ty::I64, 20);
        p.bool_field(&mut out, 21, true);
        p.struct_end(&mut out);
        assert_eq!(out, [0x16, 0x06, 40, 0x11, 0x00]);
        let mut out = Vec::new();
        Compact::list(&mut out, Ty::Struct, 20);
        assert_eq!(out, [0xfc, 20]);
    }

    #[test]
    fn binary_primitives_match_the_spec() {
        let mut p = Binary;
        let mut out = Vec::new();
        p.field(&mut out, Ty::Binary, 5);
        Binary::binary(&mut out, b"ab");
        p.bool_field(&mut out, 6, true);
        assert_eq!(out, [11, 0, 5, 0, 0, 0, 2, b'a', b'b', 2, 0, 6, 1]);
    }

    #[test]
    fn long_tag_values_are_cut_on_a_char_boundary() {
        let s = "é".repeat(MAX_TAG_VALUE_LEN);
        let t = truncate(&s);
        assert!(t.len() <= MAX_TAG_VALUE_LEN && t.len() >= MAX_TAG_VALUE_LEN - 1);
    }
}
