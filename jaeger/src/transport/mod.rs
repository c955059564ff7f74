//! Transports: how encoded batches leave the process.
//!
//! A transport is driven by the reporter's single background task, so it
//! needs no internal synchronization. Each `send` gets a whole batch of
//! finished spans and reports how it went; the reporter counts the result.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::BodyExt;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use opentracing_api::FinishedSpan;

use crate::process::Process;

mod http_collector;
pub(crate) mod local;
mod otlp;
mod otlp_encode;
#[cfg(test)]
mod otlp_reference;
pub(crate) mod thrift;
mod udp;

pub use http_collector::{CollectorAuth, HttpCollectorTransport};
#[cfg(feature = "otlp-grpc")]
pub use otlp::OtlpGrpcTransport;
pub use otlp::OtlpHttpTransport;

/// The OTLP/protobuf body (`ExportTraceServiceRequest`) for these spans, as
/// the OTLP transports send it: written directly from the spans, without
/// building intermediate messages.
pub fn encode_otlp(process: &Process, spans: &[Box<FinishedSpan>]) -> Vec<u8> {
    otlp_encode::encode_export_request(process, spans)
}
pub use udp::{
    UdpAgentTransport, DEFAULT_MAX_PACKET_SIZE, DEFAULT_RESOLVE_TIMEOUT, MAX_PACKET_SIZE,
};

/// Checks an exporter or sampling-server URL: absolute, with a host, and
/// `http://`. This build has no TLS: an `https://` endpoint would accept
/// the configuration and then fail every send, so it is refused up front
/// (export through a local collector or agent, which forwards over TLS).
pub(crate) fn check_http_url(url: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("{e}"))?;
    match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("http") => {}
        Some(s) if s.eq_ignore_ascii_case("https") => {
            return Err("https:// is not supported (no TLS in this build): use an http:// endpoint, such as a local collector or agent".into())
        }
        _ => return Err("expected an absolute http:// URL".into()),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("expected an absolute http:// URL with a host".into());
    }
    Ok(uri)
}

/// The HTTP client the transports and the remote sampler share.
pub(crate) type HttpClient = Client<HttpConnector, BoxBody<Bytes, std::convert::Infallible>>;

pub(crate) fn http_client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(Duration::from_secs(5)));
    connector.set_nodelay(true);
    Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector)
}

pub(crate) fn body<B>(b: B) -> BoxBody<Bytes, std::convert::Infallible>
where
    B: http_body::Body<Data = Bytes, Error = std::convert::Infallible> + Send + Sync + 'static,
{
    b.boxed()
}

/// What a send produced.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SendOutcome {
    /// Spans delivered.
    pub sent: usize,
    /// Spans dropped because one alone was too large to send.
    pub too_large: usize,
    /// Spans that could not be sent (part of a batch, when some packets of
    /// it went out and a later one failed).
    pub failed: usize,
}

impl SendOutcome {
    /// Every one of `n` spans delivered (the struct is non-exhaustive, so
    /// transports outside this crate build it this way).
    pub fn sent(n: usize) -> Self {
        SendOutcome {
            sent: n,
            ..SendOutcome::default()
        }
    }
}

/// Why a batch was not delivered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// A network or protocol error that may go away (connection refused,
    /// timeout, HTTP 429 / 502 / 503 / 504, gRPC UNAVAILABLE...).
    #[error("retryable: {0}")]
    Retryable(String),
    /// An error that retrying will not fix (HTTP 400, a bad URL...).
    #[error("{0}")]
    Permanent(String),
}

/// A boxed future, so that transports are object-safe.
pub type SendFuture<'a> =
    Pin<Box<dyn Future<Output = Result<SendOutcome, TransportError>> + Send + 'a>>;

/// Sends batches of finished spans somewhere.
pub trait Transport: Send + 'static {
    /// Sends `spans`, from `process`.
    fn send<'a>(
        &'a mut self,
        process: &'a Process,
        spans: &'a [Box<FinishedSpan>],
    ) -> SendFuture<'a>;

    /// Sends `spans` again after a retryable error. Transports that fan out
    /// to several destinations resend only to those that failed; the
    /// default sends again.
    fn resend<'a>(
        &'a mut self,
        process: &'a Process,
        spans: &'a [Box<FinishedSpan>],
    ) -> SendFuture<'a> {
        self.send(process, spans)
    }

    /// A short name for logs (`"udp"`, `"http"`, `"otlp-http"`...).
    fn name(&self) -> &'static str;
}

/// Whether an HTTP status is worth retrying (per the OTLP specification:
/// 429, 502, 503, 504).
pub(crate) fn retryable_status(status: http::StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 502 | 503 | 504)
}

/// A URL that batches are sent to with `POST`, with fixed extra headers (auth,
/// `OTEL_EXPORTER_OTLP_HEADERS`) and a timeout: what the collector and
/// OTLP/HTTP transports share.
#[derive(Debug)]
pub(crate) struct HttpEndpoint {
    pub(crate) uri: http::Uri,
    pub(crate) headers: Vec<(http::HeaderName, http::HeaderValue)>,
    pub(crate) timeout: Duration,
    pub(crate) client: HttpClient,
}

impl HttpEndpoint {
    pub(crate) fn new(url: &str, what: &str, timeout: Duration) -> Result<Self, TransportError> {
        let uri = check_http_url(url)
            .map_err(|e| TransportError::Permanent(format!("invalid {what} URL {url:?}: {e}")))?;
        Ok(HttpEndpoint {
            uri,
            headers: Vec::new(),
            timeout,
            client: http_client(),
        })
    }

    /// POSTs `bytes`; `n` spans are reported sent on success.
    pub(crate) async fn post_batch(
        &self,
        content_type: &'static str,
        bytes: Vec<u8>,
        n: usize,
    ) -> Result<SendOutcome, TransportError> {
        self.post(content_type, bytes).await?;
        Ok(SendOutcome::sent(n))
    }

    /// POSTs `bytes` and returns the successful reply.
    pub(crate) async fn post(
        &self,
        content_type: &'static str,
        bytes: Vec<u8>,
    ) -> Result<Reply, TransportError> {
        let mut req = http::Request::post(self.uri.clone())
            .header(http::header::CONTENT_TYPE, content_type)
            .body(body(http_body_util::Full::new(Bytes::from(bytes))))
            .map_err(|e| TransportError::Permanent(e.to_string()))?;
        for (k, v) in &self.headers {
            req.headers_mut().insert(k.clone(), v.clone());
        }
        post(&self.client, req, self.timeout).await
    }
}

/// The most of a reply's body that is read.
pub(crate) const MAX_REPLY_BODY: usize = 64 * 1024;

/// A successful (2xx) HTTP reply.
#[derive(Debug)]
pub(crate) struct Reply {
    /// Its `Content-Type`.
    pub(crate) content_type: Option<http::HeaderValue>,
    /// Its body; `None` when it could not be read in time, or was longer
    /// than [`MAX_REPLY_BODY`].
    pub(crate) body: Option<Bytes>,
}

/// Sends one HTTP request with a timeout, mapping failures to
/// [`TransportError`].
pub(crate) async fn post(
    client: &HttpClient,
    req: http::Request<BoxBody<Bytes, std::convert::Infallible>>,
    timeout: Duration,
) -> Result<Reply, TransportError> {
    let resp = match tokio::time::timeout(timeout, client.request(req)).await {
        Err(_) => return Err(TransportError::Retryable("request timed out".into())),
        Ok(Err(e)) => return Err(TransportError::Retryable(e.to_string())),
        Ok(Ok(resp)) => resp,
    };
    let status = resp.status();
    let content_type = resp.headers().get(http::header::CONTENT_TYPE).cloned();
    // Read (a bounded amount of) the body, which also lets the connection
    // be reused.
    let body = tokio::time::timeout(
        timeout,
        http_body_util::Limited::new(resp.into_body(), MAX_REPLY_BODY).collect(),
    )
    .await
    .ok()
    .and_then(Result::ok)
    .map(http_body_util::Collected::to_bytes);
    if status.is_success() {
        Ok(Reply { content_type, body })
    } else if retryable_status(status) {
        Err(TransportError::Retryable(format!("HTTP {status}")))
    } else {
        Err(TransportError::Permanent(format!("HTTP {status}")))
    }
}
