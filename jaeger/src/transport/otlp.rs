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

use super::{HttpEndpoint, Reply, SendFuture, SendOutcome, Transport, TransportError};
use crate::process::Process;

/// OTLP over HTTP with protobuf bodies: `POST {endpoint}/v1/traces`
/// (port 4318).
///
/// A collector may accept only part of a batch: a `200` reply whose
/// `ExportTraceServiceResponse` carries `partial_success.rejected_spans`
/// has that many spans counted as failed, not sent. A reply body that is
/// not protobuf, or does not decode, counts the batch as fully sent (and
/// is logged at debug level).
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
        let n = spans.len();
        Box::pin(async move {
            let reply = self.endpoint.post("application/x-protobuf", bytes).await?;
            Ok(http_outcome(n, &reply))
        })
    }

    fn name(&self) -> &'static str {
        "otlp-http"
    }
}

/// What a successful OTLP/HTTP reply says of a batch of `n` spans: all
/// sent, unless it is an `ExportTraceServiceResponse` reporting rejected
/// spans.
fn http_outcome(n: usize, reply: &Reply) -> SendOutcome {
    let protobuf = reply.content_type.as_ref().is_none_or(|ct| {
        ct.to_str()
            .is_ok_and(|ct| ct.to_ascii_lowercase().contains("protobuf"))
    });
    if !protobuf {
        log::debug!(
            "OTLP/HTTP reply of type {:?} is not protobuf: the batch is counted as sent",
            reply.content_type
        );
        return SendOutcome::sent(n);
    }
    let Some(body) = &reply.body else {
        log::debug!("OTLP/HTTP reply body unreadable or too long: the batch is counted as sent");
        return SendOutcome::sent(n);
    };
    let Some(partial) = PartialSuccess::decode(body) else {
        log::debug!(
            "OTLP/HTTP reply body ({} bytes) is not an ExportTraceServiceResponse: the batch is counted as sent",
            body.len()
        );
        return SendOutcome::sent(n);
    };
    partial_outcome(n, &partial)
}

/// The outcome of `n` spans given the collector's partial success.
fn partial_outcome(n: usize, partial: &PartialSuccess) -> SendOutcome {
    let message: String = partial.error_message.chars().take(256).collect();
    if partial.rejected_spans < 0 {
        log::debug!(
            "the OTLP collector reports {} rejected spans: ignored",
            partial.rejected_spans
        );
    }
    let rejected = usize::try_from(partial.rejected_spans).unwrap_or(0).min(n);
    if rejected > 0 {
        log::warn!("the OTLP collector rejected {rejected} of {n} spans: {message:?}");
    } else if !message.is_empty() {
        log::info!("the OTLP collector accepted {n} spans with a warning: {message:?}");
    }
    let mut outcome = SendOutcome::sent(n - rejected);
    outcome.failed = rejected;
    outcome
}

/// The part of an `ExportTraceServiceResponse` that matters here: its
/// `partial_success` (field 1), an `ExportTracePartialSuccess` with
/// `rejected_spans` (field 1, `int64`) and `error_message` (field 2).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct PartialSuccess {
    pub(crate) rejected_spans: i64,
    pub(crate) error_message: String,
}

impl PartialSuccess {
    /// Decodes an `ExportTraceServiceResponse` (skipping unknown fields, as
    /// protobuf readers do); `None` if it is malformed. Never panics.
    pub(crate) fn decode(mut buf: &[u8]) -> Option<Self> {
        let mut out = PartialSuccess::default();
        while !buf.is_empty() {
            let (field, wire) = pb::key(&mut buf)?;
            match (field, wire) {
                // Repeated occurrences of a message field merge.
                (1, pb::LEN) => out.merge_partial(pb::bytes(&mut buf)?)?,
                (1, _) => return None,
                _ => pb::skip(&mut buf, wire)?,
            }
        }
        Some(out)
    }

    fn merge_partial(&mut self, mut buf: &[u8]) -> Option<()> {
        while !buf.is_empty() {
            let (field, wire) = pb::key(&mut buf)?;
            match (field, wire) {
                // `int64` is two's complement on the wire.
                (1, pb::VARINT) => {
                    self.rejected_spans = i64::from_le_bytes(pb::varint(&mut buf)?.to_le_bytes());
                }
                (2, pb::LEN) => {
                    self.error_message = String::from_utf8_lossy(pb::bytes(&mut buf)?).into_owned();
                }
                (1 | 2, _) => return None,
                _ => pb::skip(&mut buf, wire)?,
            }
        }
        Some(())
    }
}

/// Just enough of the protobuf wire format to read a reply, bounds-checked
/// everywhere: a malformed input is `None`.
mod pb {
    pub(super) const VARINT: u8 = 0;
    const I64: u8 = 1;
    pub(super) const LEN: u8 = 2;
    const I32: u8 = 5;

    pub(super) fn varint(buf: &mut &[u8]) -> Option<u64> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let (&b, rest) = buf.split_first()?;
            *buf = rest;
            // The tenth byte holds the 64th bit only.
            if i == 9 && b > 1 {
                return None;
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    /// A field's number and wire type.
    pub(super) fn key(buf: &mut &[u8]) -> Option<(u64, u8)> {
        let k = varint(buf)?;
        let field = k >> 3;
        if field == 0 || field > u64::from(u32::MAX >> 3) {
            return None;
        }
        Some((field, u8::try_from(k & 7).ok()?))
    }

    fn take<'a>(buf: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if buf.len() < n {
            return None;
        }
        let (head, rest) = buf.split_at(n);
        *buf = rest;
        Some(head)
    }

    /// A length-delimited field's bytes.
    pub(super) fn bytes<'a>(buf: &mut &'a [u8]) -> Option<&'a [u8]> {
        let n = usize::try_from(varint(buf)?).ok()?;
        take(buf, n)
    }

    /// Skips a field's value (groups, deprecated, are refused).
    pub(super) fn skip(buf: &mut &[u8], wire: u8) -> Option<()> {
        match wire {
            VARINT => varint(buf).map(drop),
            I64 => take(buf, 8).map(drop),
            LEN => bytes(buf).map(drop),
            I32 => take(buf, 4).map(drop),
            _ => None,
        }
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
                // A status the client made itself from a failed connection
                // (the collector restarted, a balancer closed the stream)
                // carries its cause; one the collector sent does not.
                let broken_connection =
                    status.code() == Code::Unknown && std::error::Error::source(&status).is_some();
                let retryable = broken_connection
                    || matches!(
                        status.code(),
                        Code::Cancelled
                            | Code::DeadlineExceeded
                            | Code::ResourceExhausted
                            | Code::Aborted
                            | Code::OutOfRange
                            | Code::Unavailable
                            | Code::DataLoss
                    );
                if broken_connection || status.code() == Code::Unavailable {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTracePartialSuccess, ExportTraceServiceResponse,
    };
    use prost::Message;

    fn response(rejected: i64, message: &str) -> Vec<u8> {
        ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: rejected,
                error_message: message.into(),
            }),
        }
        .encode_to_vec()
    }

    fn reply(content_type: Option<&'static str>, body: &[u8]) -> Reply {
        Reply {
            content_type: content_type.map(http::HeaderValue::from_static),
            body: Some(bytes::Bytes::copy_from_slice(body)),
        }
    }

    #[test]
    fn partial_success_decodes_as_prost_encodes_it() {
        for (rejected, message) in [
            (0, ""),
            (3, "span too old"),
            (i64::MAX, "max"),
            (-1, "negative"),
            (300, "é\u{0}"),
        ] {
            let got = PartialSuccess::decode(&response(rejected, message)).unwrap();
            assert_eq!(got.rejected_spans, rejected);
            assert_eq!(got.error_message, message);
        }
        // No partial_success at all (prost writes nothing), and the same
        // with an unknown field of each wire type around it.
        assert_eq!(
            PartialSuccess::decode(&ExportTraceServiceResponse::default().encode_to_vec()),
            Some(PartialSuccess::default())
        );
        let mut body = vec![0x10, 0x96, 0x01, 0x19, 1, 2, 3, 4, 5, 6, 7, 8];
        body.extend(response(2, "x"));
        body.extend([0x25, 1, 2, 3, 4, 0x2a, 1, 0xff]);
        let got = PartialSuccess::decode(&body).unwrap();
        assert_eq!((got.rejected_spans, got.error_message.as_str()), (2, "x"));
    }

    #[test]
    fn rejected_spans_are_failed_not_sent() {
        let body = response(2, "quota");
        for ct in [None, Some("application/x-protobuf")] {
            let out = http_outcome(5, &reply(ct, &body));
            assert_eq!((out.sent, out.failed, out.too_large), (3, 2, 0));
        }
        // Never more than the batch, never negative.
        assert_eq!(http_outcome(1, &reply(None, &body)).failed, 1);
        assert_eq!(
            http_outcome(4, &reply(None, &response(-7, ""))),
            SendOutcome::sent(4)
        );
        // A JSON reply is not read as protobuf.
        assert_eq!(
            http_outcome(4, &reply(Some("application/json"), &body)),
            SendOutcome::sent(4)
        );
    }

    #[test]
    fn garbage_replies_count_as_fully_sent_and_never_panic() {
        let good = response(9, "a message long enough to be cut anywhere");
        // Every truncation of a good reply, and each byte corrupted.
        let mut bodies: Vec<Vec<u8>> = (0..good.len()).map(|n| good[..n].to_vec()).collect();
        for i in 0..good.len() {
            for b in [0x00, 0x7f, 0x80, 0xff] {
                let mut v = good.clone();
                v[i] = b;
                bodies.push(v);
            }
        }
        // Pseudo-random bytes.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in 0..2000 {
            bodies.push(
                (0..len % 64)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x.to_le_bytes()[0]
                    })
                    .collect(),
            );
        }
        // Known-bad shapes: an overlong varint, a length past the end, a
        // huge length, a group, field 0, partial_success of the wrong type.
        bodies.extend([
            vec![
                0x0a, 0x0b, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
            ],
            vec![0x0a, 0x05, 0x08, 0x01],
            vec![
                0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
            ],
            vec![0x0b, 0x08, 0x01, 0x0c],
            vec![0x00, 0x01],
            vec![0x08, 0x03],
            b"{\"partialSuccess\":{\"rejectedSpans\":\"2\"}}".to_vec(),
        ]);
        for body in &bodies {
            let out = http_outcome(5, &reply(Some("application/x-protobuf"), body));
            assert_eq!(out.sent + out.failed, 5, "{body:?}");
            if PartialSuccess::decode(body).is_none() {
                assert_eq!(out, SendOutcome::sent(5), "{body:?}");
            }
        }
        for bad in &bodies[bodies.len() - 7..] {
            assert_eq!(PartialSuccess::decode(bad), None, "{bad:?}");
        }
    }
}
