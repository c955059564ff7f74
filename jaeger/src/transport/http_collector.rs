//! HTTP to a Jaeger collector: a binary-Thrift `Batch` to `/api/traces`.

use std::time::Duration;

use opentracing_api::FinishedSpan;

use super::thrift::{self, Binary};
use super::{HttpEndpoint, SendFuture, Transport, TransportError};
use crate::process::Process;

/// How a collector request authenticates.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CollectorAuth {
    /// None.
    None,
    /// HTTP basic authentication (`JAEGER_USER` / `JAEGER_PASSWORD`).
    Basic {
        /// User name.
        user: String,
        /// Password.
        password: String,
    },
    /// A bearer token (`JAEGER_AUTH_TOKEN`).
    Bearer(String),
}

/// Posts binary-Thrift batches to a Jaeger collector
/// (`http://host:14268/api/traces`), with `Content-Type:
/// application/x-thrift` and optional basic or bearer authentication.
#[derive(Debug)]
pub struct HttpCollectorTransport {
    endpoint: HttpEndpoint,
}

impl HttpCollectorTransport {
    /// A transport posting to `endpoint` (the full URL, such as
    /// `http://localhost:14268/api/traces`).
    pub fn new(endpoint: &str, auth: CollectorAuth) -> Result<Self, TransportError> {
        let mut endpoint = HttpEndpoint::new(endpoint, "collector", Duration::from_secs(5))?;
        let authorization = match auth {
            CollectorAuth::None => None,
            CollectorAuth::Basic { user, password } => Some(format!(
                "Basic {}",
                base64(format!("{user}:{password}").as_bytes())
            )),
            CollectorAuth::Bearer(token) => Some(format!("Bearer {token}")),
        };
        if let Some(a) = authorization {
            let v = http::HeaderValue::try_from(a)
                .map_err(|e| TransportError::Permanent(format!("invalid credentials: {e}")))?;
            endpoint.headers.push((http::header::AUTHORIZATION, v));
        }
        Ok(HttpCollectorTransport { endpoint })
    }

    /// Adds a header to every request.
    pub fn with_header(mut self, name: http::HeaderName, value: http::HeaderValue) -> Self {
        self.endpoint.headers.push((name, value));
        self
    }

    /// Sets the request timeout (default 5 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.endpoint.timeout = timeout;
        self
    }

    /// The binary-Thrift `Batch` body for these spans.
    pub fn encode(process: &Process, spans: &[Box<FinishedSpan>]) -> Vec<u8> {
        let process = thrift::encode::<Binary>(|p, out| thrift::write_process(p, out, process));
        let encoded = thrift::encode_spans::<Binary>(spans);
        let refs: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
        let mut out =
            Vec::with_capacity(process.len() + refs.iter().map(|s| s.len()).sum::<usize>() + 32);
        thrift::write_batch(&mut Binary, &mut out, &process, &refs, None, None);
        out
    }
}

impl Transport for HttpCollectorTransport {
    fn send<'a>(
        &'a mut self,
        process: &'a Process,
        spans: &'a [Box<FinishedSpan>],
    ) -> SendFuture<'a> {
        let bytes = Self::encode(process, spans);
        Box::pin(
            self.endpoint
                .post_batch("application/x-thrift", bytes, spans.len()),
        )
    }

    fn name(&self) -> &'static str {
        "http"
    }
}

/// Standard base64 with padding (for the basic-auth header only).
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(super::base64(i.as_bytes()), o);
        }
    }
}
