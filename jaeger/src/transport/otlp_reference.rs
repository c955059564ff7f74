//! The OTLP mapping written with the official `opentelemetry-proto`
//! types: the reference the direct encoder (`otlp_encode`) is checked
//! against, byte for byte. Test-only: the product has one mapping, the
//! encoder's.

use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span, status, ResourceSpans, ScopeSpans, Span, Status,
};
use opentracing_api::{log_fields, tags, FinishedSpan, ReferenceKind, Tag, TagValue};

use crate::process::Process;

fn any(v: &TagValue) -> AnyValue {
    AnyValue {
        value: Some(match v {
            TagValue::String(s) => any_value::Value::StringValue(s.to_string()),
            TagValue::Bool(b) => any_value::Value::BoolValue(*b),
            TagValue::I64(i) => any_value::Value::IntValue(*i),
            TagValue::F64(f) => any_value::Value::DoubleValue(*f),
        }),
    }
}

fn kv(t: &Tag) -> KeyValue {
    KeyValue {
        key: t.key.to_string(),
        value: Some(any(&t.value)),
        ..Default::default()
    }
}

fn kv_str(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..Default::default()
    }
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn kind(span: &FinishedSpan) -> span::SpanKind {
    match span.tag(tags::SPAN_KIND).and_then(TagValue::as_str) {
        Some(tags::SPAN_KIND_SERVER) => span::SpanKind::Server,
        Some(tags::SPAN_KIND_CLIENT) => span::SpanKind::Client,
        Some(tags::SPAN_KIND_PRODUCER) => span::SpanKind::Producer,
        Some(tags::SPAN_KIND_CONSUMER) => span::SpanKind::Consumer,
        _ => span::SpanKind::Internal,
    }
}

/// Converts one finished span.
pub(super) fn otlp_span(s: &FinishedSpan) -> Span {
    let cx = &s.context;
    let parent = s
        .references
        .iter()
        .position(|r| r.kind == ReferenceKind::ChildOf)
        .or(if s.references.is_empty() {
            None
        } else {
            Some(0)
        });
    let links = s
        .references
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != parent)
        .map(|(_, r)| span::Link {
            trace_id: r.context.trace_id().to_u128().to_be_bytes().to_vec(),
            span_id: r.context.span_id().to_u64().to_be_bytes().to_vec(),
            attributes: vec![kv_str(
                "opentracing.ref_type",
                if r.kind == ReferenceKind::ChildOf {
                    "child_of"
                } else {
                    "follows_from"
                },
            )],
            ..Default::default()
        })
        .collect();
    let failed = s.tag(tags::ERROR).and_then(TagValue::as_bool) == Some(true);
    let status = if failed {
        let message = s
            .logs
            .iter()
            .flat_map(|l| &l.fields)
            .find(|f| f.key == log_fields::MESSAGE || f.key == log_fields::ERROR_OBJECT)
            .map(|f| f.value.to_string())
            .unwrap_or_default();
        Some(Status {
            message,
            code: status::StatusCode::Error as i32,
        })
    } else {
        None
    };
    Span {
        trace_id: cx.trace_id().to_u128().to_be_bytes().to_vec(),
        span_id: cx.span_id().to_u64().to_be_bytes().to_vec(),
        trace_state: cx.trace_state().unwrap_or_default().to_owned(),
        parent_span_id: parent.map_or_else(Vec::new, |i| {
            s.references[i]
                .context
                .span_id()
                .to_u64()
                .to_be_bytes()
                .to_vec()
        }),
        flags: u32::from(cx.flags().to_u8() & 0x01),
        name: s.operation_name.to_string(),
        kind: kind(s) as i32,
        start_time_unix_nano: nanos(s.start_time),
        // A clock stepped back mid-span must not end it before it starts.
        end_time_unix_nano: nanos(s.finish_time).max(nanos(s.start_time)),
        attributes: s
            .tags
            .iter()
            .filter(|t| t.key != tags::SPAN_KIND)
            .map(kv)
            .collect(),
        events: s
            .logs
            .iter()
            .map(|l| span::Event {
                time_unix_nano: nanos(l.timestamp),
                name: l
                    .fields
                    .iter()
                    .find(|f| f.key == log_fields::EVENT)
                    .map_or_else(|| "log".to_owned(), |f| f.value.to_string()),
                attributes: l.fields.iter().map(kv).collect(),
                ..Default::default()
            })
            .collect(),
        links,
        status,
        ..Default::default()
    }
}

/// The OTLP export request for a batch of spans from one process.
pub(crate) fn otlp_export_request(
    process: &Process,
    spans: &[Box<FinishedSpan>],
) -> ExportTraceServiceRequest {
    let mut attributes = vec![kv_str("service.name", &process.service_name)];
    attributes.extend(process.tags.iter().map(kv));
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes,
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "opentracing-jaeger".to_owned(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    ..Default::default()
                }),
                spans: spans.iter().map(|s| otlp_span(s)).collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}
