//! gRPC status codes on spans: where a call's status is read from, and how
//! it is recorded.
//!
//! A gRPC response carries its status in the `grpc-status` and
//! `grpc-message` (percent-encoded) fields: in the headers of a
//! *trailers-only* response (a call that failed before sending anything),
//! otherwise in the trailers after the last message. The layers read it
//! from whichever comes, tag it as the integer [`GRPC_STATUS_CODE`], and
//! for any code but `OK` mark the span failed (`error=true`) with an error
//! log: `error.kind` is the code's canonical name (`NOT_FOUND`), `message`
//! the status message.
//!
//! A response that is not gRPC at all (an HTTP error from a proxy) maps to
//! a code as gRPC clients map it ([`code_from_http`]).

use std::borrow::Cow;
use std::time::Duration;

use http::{HeaderMap, HeaderName, StatusCode};
use opentracing_api::find_header;
use opentracing_tower::lifecycle::RequestSpan;
use percent_encoding::percent_decode;
use tonic::Code;

/// The tag holding the call's gRPC status code, an integer (`0` for `OK`,
/// `5` for `NOT_FOUND`, ...), as in OpenTelemetry's gRPC conventions.
pub const GRPC_STATUS_CODE: &str = "rpc.grpc.status_code";

/// The status in `headers` (response headers of a trailers-only response,
/// or trailers): the code and the decoded message, if `grpc-status` is
/// there. An unknown code reads as `UNKNOWN`; a message that is not
/// percent-encoded UTF-8 is decoded lossily.
///
/// ```
/// use http::{HeaderMap, HeaderValue};
/// use opentracing_tonic::status::read_status;
/// use tonic::Code;
///
/// let mut trailers = HeaderMap::new();
/// trailers.insert("grpc-status", HeaderValue::from_static("5"));
/// trailers.insert("grpc-message", HeaderValue::from_static("no%20such%20driver"));
/// let (code, message) = read_status(&trailers).unwrap();
/// assert_eq!((code, &*message), (Code::NotFound, "no such driver"));
/// ```
pub fn read_status(headers: &HeaderMap) -> Option<(Code, Cow<'_, str>)> {
    let code = Code::from_bytes(find_header(headers, &GRPC_STATUS_H)?.as_bytes());
    let message = find_header(headers, &GRPC_MESSAGE_H).map_or(Cow::Borrowed(""), |m| {
        percent_decode(m.as_bytes()).decode_utf8_lossy()
    });
    Some((code, message))
}

// Looked up on every call: by `HeaderName`, since a `&str` key is parsed
// (and hashed) on each lookup.
static GRPC_STATUS_H: HeaderName = HeaderName::from_static("grpc-status");
static GRPC_MESSAGE_H: HeaderName = HeaderName::from_static("grpc-message");
static GRPC_TIMEOUT_H: HeaderName = HeaderName::from_static("grpc-timeout");

/// The gRPC code of a non-gRPC HTTP response, as gRPC clients map it
/// (`400` `INTERNAL`, `401` `UNAUTHENTICATED`, `403` `PERMISSION_DENIED`,
/// `404` `UNIMPLEMENTED`, `429`/`502`/`503`/`504` `UNAVAILABLE`, others
/// `UNKNOWN`).
pub fn code_from_http(status: StatusCode) -> Code {
    match status.as_u16() {
        400 => Code::Internal,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::Unimplemented,
        429 | 502 | 503 | 504 => Code::Unavailable,
        _ => Code::Unknown,
    }
}

/// The canonical name of `code` (`NOT_FOUND`), the `error.kind` of a
/// failed call's log.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Records `code` on the call's span: the [`GRPC_STATUS_CODE`] tag, the
/// status for the observer, and for a code other than `OK` the failure.
pub(crate) fn record(t: &mut RequestSpan, code: Code, message: &str) {
    let n = i32::from(code);
    t.span().set_tag(GRPC_STATUS_CODE, n);
    t.record_status(u16::try_from(n).unwrap_or(u16::MAX));
    if code != Code::Ok {
        let message = if message.is_empty() {
            code.description().to_owned()
        } else {
            message.to_owned()
        };
        t.fail(code_name(code), message);
    }
}

/// The call's timeout from its `grpc-timeout` header (`1..=8` digits and a
/// unit: `H`, `M`, `S`, `m`, `u`, `n`), if it has a valid one.
pub(crate) fn grpc_timeout(headers: &HeaderMap) -> Option<Duration> {
    let v = find_header(headers, &GRPC_TIMEOUT_H)?.as_bytes();
    let (&unit, digits) = v.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use http::HeaderValue;

    #[test]
    fn timeouts() {
        let mut h = HeaderMap::new();
        assert_eq!(grpc_timeout(&h), None);
        for (v, d) in [
            ("100m", Some(Duration::from_millis(100))),
            ("2S", Some(Duration::from_secs(2))),
            ("1H", Some(Duration::from_secs(3600))),
            ("5u", Some(Duration::from_micros(5))),
            ("123456789m", None),
            ("m", None),
            ("10x", None),
            ("-1S", None),
        ] {
            h.insert("grpc-timeout", HeaderValue::from_static(v));
            assert_eq!(grpc_timeout(&h), d, "{v}");
        }
    }

    #[test]
    fn statuses() {
        let mut h = HeaderMap::new();
        assert!(read_status(&h).is_none());
        h.insert("grpc-status", HeaderValue::from_static("99"));
        h.insert("grpc-message", HeaderValue::from_static("caf%C3%A9%FF"));
        let (code, msg) = read_status(&h).unwrap();
        assert_eq!(code, Code::Unknown);
        assert_eq!(msg, "café\u{fffd}");
        assert_eq!(code_from_http(StatusCode::NOT_FOUND), Code::Unimplemented);
        assert_eq!(code_from_http(StatusCode::IM_A_TEAPOT), Code::Unknown);
        assert_eq!(code_name(Code::DeadlineExceeded), "DEADLINE_EXCEEDED");
    }
}
