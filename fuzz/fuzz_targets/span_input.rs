//! Arbitrary span data for the encoder fuzz targets, turned into finished
//! spans through the public API (the mock tracer records them): names,
//! tags, logs, baggage, references and times all come from the input.

use std::time::{Duration, SystemTime};

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use opentracing_api::{
    FinishedSpan, MockTracer, SpanContext, SpanId, Tag, TagValue, TraceFlags, TraceId, TracerExt,
};
use opentracing_jaeger::Process;

#[derive(Arbitrary, Debug, Clone)]
pub enum Value {
    S(String),
    B(bool),
    I(i64),
    F(f64),
    /// A tag the encoders map specially (`span.kind`, `error`, ...).
    Known(u8, String),
}

#[derive(Arbitrary, Debug)]
pub struct SpanInput {
    pub name: String,
    pub tags: Vec<(String, Value)>,
    pub logs: Vec<(u32, Vec<(String, Value)>)>,
    pub baggage: Vec<(String, String)>,
    /// A parent given by ids (zero ids make an invalid, ignored parent).
    pub parent: Option<(u64, u64, u64, u8)>,
    /// Also a child of the previous span.
    pub child_of_previous: bool,
    /// Also follows from the previous span.
    pub follows_previous: bool,
    pub start_nanos: u64,
    /// Finish this long after (or, when negative, before) the start.
    pub duration_nanos: i64,
}

#[derive(Arbitrary, Debug)]
pub struct BatchInput {
    pub service: String,
    pub process_tags: Vec<(String, Value)>,
    pub spans: Vec<SpanInput>,
}

const KNOWN: [&str; 8] = [
    "span.kind",
    "error",
    "sampling.priority",
    "peer.service",
    "http.status_code",
    "message",
    "event",
    "error.object",
];

fn tag(key: &str, v: &Value) -> Tag {
    let key = key.to_owned();
    match v {
        Value::S(s) => Tag::new(key, s.clone()),
        Value::B(b) => Tag::new(key, *b),
        Value::I(i) => Tag::new(key, *i),
        Value::F(f) => Tag::new(key, TagValue::F64(*f)),
        Value::Known(k, s) => {
            let known = KNOWN[usize::from(*k) % KNOWN.len()];
            match k % 3 {
                0 => Tag::new(known, s.clone()),
                1 => Tag::new(known, s.len() % 2 == 0),
                _ => Tag::new(known, i64::try_from(s.len()).unwrap_or(0) - 2),
            }
        }
    }
}

fn time(nanos: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_nanos(nanos)
}

impl BatchInput {
    /// The process and the finished spans this input describes (at most
    /// 32 spans, 64 tags and logs each, so an input stays cheap).
    pub fn build(&self) -> (Process, Vec<Box<FinishedSpan>>) {
        let process = Process {
            service_name: self.service.clone(),
            tags: self
                .process_tags
                .iter()
                .take(64)
                .map(|(k, v)| tag(k, v))
                .collect(),
        };
        let tracer = MockTracer::new();
        let mut previous: Option<SpanContext> = None;
        for s in self.spans.iter().take(32) {
            let start = time(s.start_nanos);
            let mut b = tracer
                .span(s.name.clone())
                .ignore_current_span()
                .start_time(start);
            if let Some((hi, lo, span, flags)) = s.parent {
                let cx = SpanContext::new(
                    TraceId::from_parts(hi, lo),
                    SpanId::from_u64(span),
                    TraceFlags::from_u8(flags),
                );
                b = b.child_of(&cx);
            }
            if let Some(p) = &previous {
                if s.child_of_previous {
                    b = b.child_of(p);
                }
                if s.follows_previous {
                    b = b.follows_from(p);
                }
            }
            for (k, v) in s.tags.iter().take(64) {
                let t = tag(k, v);
                b = b.tag(t.key, t.value);
            }
            let mut span = b.start();
            for (k, v) in s.baggage.iter().take(80) {
                let _ = span.set_baggage_item(k.clone(), v.clone());
            }
            for (offset, fields) in s.logs.iter().take(64) {
                let at = start + Duration::from_nanos(u64::from(*offset));
                span.log_at(at, fields.iter().take(16).map(|(k, v)| tag(k, v)));
            }
            previous = Some(span.context().clone());
            let finish = if s.duration_nanos >= 0 {
                start.checked_add(Duration::from_nanos(s.duration_nanos.unsigned_abs()))
            } else {
                start.checked_sub(Duration::from_nanos(s.duration_nanos.unsigned_abs()))
            };
            span.finish_at(finish.unwrap_or(start));
        }
        let spans = tracer.finished_spans().into_iter().map(Box::new).collect();
        (process, spans)
    }
}
