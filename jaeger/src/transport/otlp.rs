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

use std::time::Duration;

use opentracing_api::FinishedSpan;

#[cfg(feature = "otlp-grpc")]
use super::SendOutcome;
use super::{HttpEndpoint, SendFuture, Transport, TransportError};
use crate::process::Process;

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
/// (port 4317). The request is the same protobuf body the HTTP transport
/// posts (one mapping, written directly from the spans), framed by tonic.
#[cfg(feature = "otlp-grpc")]
#[derive(Debug)]
pub struct OtlpGrpcTransport {
    endpoint: tonic::transport::Endpoint,
    client: Option<tonic::client::Grpc<tonic::transport::Channel>>,
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

    async fn export(&mut self, body: Vec<u8>, n: usize) -> Result<SendOutcome, TransportError> {
        if self.client.is_none() {
            let channel = self
                .endpoint
                .connect()
                .await
                .map_err(|e| TransportError::Retryable(e.to_string()))?;
            self.client = Some(tonic::client::Grpc::new(channel));
        }
        let Some(client) = self.client.as_mut() else {
            return Err(TransportError::Retryable("not connected".into()));
        };
        client
            .ready()
            .await
            .map_err(|e| TransportError::Retryable(e.to_string()))?;
        let mut req = tonic::Request::new(body);
        for (k, v) in &self.headers {
            req.metadata_mut().insert(k.clone(), v.clone());
        }
        let path = http::uri::PathAndQuery::from_static(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        );
        match client.unary(req, path, grpc_codec::EncodedRequest).await {
            Ok(reply) => {
                // A collector may take part of a batch: the spans it
                // rejected are counted as failed, not as sent.
                let rejected = reply
                    .get_ref()
                    .partial_success
                    .as_ref()
                    .map_or(0, |p| {
                        usize::try_from(p.rejected_spans).unwrap_or(usize::MAX)
                    })
                    .min(n);
                if rejected > 0 {
                    log::warn!("the OTLP collector rejected {rejected} of {n} spans");
                }
                let mut outcome = SendOutcome::sent(n - rejected);
                outcome.failed = rejected;
                Ok(outcome)
            }
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
        let body = super::otlp_encode::encode_export_request(process, spans);
        Box::pin(self.export(body, spans.len()))
    }

    fn name(&self) -> &'static str {
        "otlp-grpc"
    }
}

/// A tonic codec for a request already encoded as protobuf, and the
/// collector's reply, read with the official types.
#[cfg(feature = "otlp-grpc")]
mod grpc_codec {
    use bytes::{Buf, BufMut};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
    use prost::Message;
    use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
    use tonic::Status;

    #[derive(Clone, Copy, Debug, Default)]
    pub(super) struct EncodedRequest;

    impl Codec for EncodedRequest {
        type Encode = Vec<u8>;
        type Decode = ExportTraceServiceResponse;
        type Encoder = Self;
        type Decoder = Self;

        fn encoder(&mut self) -> Self::Encoder {
            *self
        }

        fn decoder(&mut self) -> Self::Decoder {
            *self
        }
    }

    impl Encoder for EncodedRequest {
        type Item = Vec<u8>;
        type Error = Status;

        fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
            dst.put_slice(&item);
            Ok(())
        }
    }

    impl Decoder for EncodedRequest {
        type Item = ExportTraceServiceResponse;
        type Error = Status;

        fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Status> {
            let bytes = src.copy_to_bytes(src.remaining());
            ExportTraceServiceResponse::decode(bytes)
                .map(Some)
                .map_err(|e| Status::internal(format!("undecodable OTLP response: {e}")))
        }
    }
}
