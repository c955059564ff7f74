//! OTLP export: how spans reach Jaeger v2, Grafana Tempo or any
//! OpenTelemetry collector.
//!
//! OpenTracing concepts map onto OTLP as follows: tags become attributes;
//! `span.kind` becomes the span kind; `error=true` becomes an error status
//! (its message from the error log's `message` or `error.object`); logs
//! become events named by their `event` field; the parent reference becomes
//! `parent_span_id` and every other reference a link, with
//! `opentracing.ref_type` = `child_of` / `follows_from` as the OpenTelemetry
//! OpenTracing shim does; process tags become resource attributes next to
//! `service.name`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span, status, ResourceSpans, ScopeSpans, Span, Status,
};
use opentracing_api::{log_fields, tags, FinishedSpan, ReferenceKind, Tag, TagValue};

#[cfg(feature = "otlp-grpc")]
use super::SendOutcome;
use super::{HttpEndpoint, SendFuture, Transport, TransportError};
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
pub(crate) fn otlp_span(s: &FinishedSpan) -> Span {
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
pub fn otlp_export_request(
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

/// OTLP over HTTP with protobuf bodies: `POST {endpoint}/v1/traces`
/// (port 4318).
#[derive(Debug)]
pub struct OtlpHttpTransport {
    endpoint: HttpEndpoint,
}

impl OtlpHttpTransport {
    /// A transport posting to `traces_url`, the full URL (for example
    /// `http://localhost:4318/v1/traces`).
    pub fn new(traces_url: &str) -> Result<Self, TransportError> {
        Ok(OtlpHttpTransport {
            endpoint: HttpEndpoint::new(traces_url, "OTLP", Duration::from_secs(10))?,
        })
    }

    /// Adds a header to every request (`OTEL_EXPORTER_OTLP_HEADERS`).
    pub fn with_header(mut self, name: http::HeaderName, value: http::HeaderValue) -> Self {
        self.endpoint.headers.push((name, value));
        self
    }

    /// Sets the request timeout (default 10 s, as OpenTelemetry's).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.endpoint.timeout = timeout;
        self
    }
}

impl Transport for OtlpHttpTransport {
    fn send<'a>(
        &'a mut self,
        process: &'a Process,
        spans: &'a [Box<FinishedSpan>],
    ) -> SendFuture<'a> {
        // Written directly: see `otlp_encode` (same bytes as prost, no
        // intermediate messages).
        let bytes = super::otlp_encode::encode_export_request(process, spans);
        Box::pin(
            self.endpoint
                .post_batch("application/x-protobuf", bytes, spans.len()),
        )
    }

    fn name(&self) -> &'static str {
        "otlp-http"
    }
}

/// OTLP over gRPC: `opentelemetry.proto.collector.trace.v1.TraceService/Export`
/// (port 4317).
#[cfg(feature = "otlp-grpc")]
#[derive(Debug)]
pub struct OtlpGrpcTransport {
    endpoint: tonic::transport::Endpoint,
    client: Option<
        opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient<
            tonic::transport::Channel,
        >,
    >,
    headers: Vec<(
        tonic::metadata::AsciiMetadataKey,
        tonic::metadata::AsciiMetadataValue,
    )>,
}

#[cfg(feature = "otlp-grpc")]
impl OtlpGrpcTransport {
    /// A transport to `endpoint` (for example `http://localhost:4317`).
    pub fn new(endpoint: &str) -> Result<Self, TransportError> {
        super::check_http_url(endpoint)
            .map_err(|e| TransportError::Permanent(format!("invalid OTLP gRPC endpoint: {e}")))?;
        let endpoint = tonic::transport::Endpoint::from_shared(endpoint.to_owned())
            .map_err(|e| TransportError::Permanent(format!("invalid OTLP gRPC endpoint: {e}")))?
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5));
        Ok(OtlpGrpcTransport {
            endpoint,
            client: None,
            headers: Vec::new(),
        })
    }

    /// Adds metadata to every request.
    pub fn with_header(mut self, name: &str, value: &str) -> Result<Self, TransportError> {
        let k = name
            .parse()
            .map_err(|_| TransportError::Permanent(format!("invalid metadata key {name:?}")))?;
        let v = value.parse().map_err(|_| {
            TransportError::Permanent(format!("invalid metadata value for {name:?}"))
        })?;
        self.headers.push((k, v));
        Ok(self)
    }

    async fn export(
        &mut self,
        request: ExportTraceServiceRequest,
        n: usize,
    ) -> Result<SendOutcome, TransportError> {
        use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
        if self.client.is_none() {
            let channel = self
                .endpoint
                .connect()
                .await
                .map_err(|e| TransportError::Retryable(e.to_string()))?;
            self.client = Some(TraceServiceClient::new(channel));
        }
        let Some(client) = self.client.as_mut() else {
            return Err(TransportError::Retryable("not connected".into()));
        };
        let mut req = tonic::Request::new(request);
        for (k, v) in &self.headers {
            req.metadata_mut().insert(k.clone(), v.clone());
        }
        match client.export(req).await {
            Ok(_) => Ok(SendOutcome::sent(n)),
            Err(status) => {
                use tonic::Code;
                let retryable = matches!(
                    status.code(),
                    Code::Cancelled
                        | Code::DeadlineExceeded
                        | Code::ResourceExhausted
                        | Code::Aborted
                        | Code::OutOfRange
                        | Code::Unavailable
                        | Code::DataLoss
                );
                if status.code() == Code::Unavailable {
                    self.client = None;
                }
                let msg = format!("gRPC {:?}: {}", status.code(), status.message());
                Err(if retryable {
                    TransportError::Retryable(msg)
                } else {
                    TransportError::Permanent(msg)
                })
            }
        }
    }
}

#[cfg(feature = "otlp-grpc")]
impl Transport for OtlpGrpcTransport {
    fn send<'a>(
        &'a mut self,
        process: &'a Process,
        spans: &'a [Box<FinishedSpan>],
    ) -> SendFuture<'a> {
        let request = otlp_export_request(process, spans);
        Box::pin(self.export(request, spans.len()))
    }

    fn name(&self) -> &'static str {
        "otlp-grpc"
    }
}
