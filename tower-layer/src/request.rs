//! Reading the tags of a request.

use std::borrow::Cow;

use http::{Method, Uri};

/// What `http.url` records of the query string.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueryPolicy {
    /// The query as sent (the default).
    #[default]
    Keep,
    /// No query.
    Strip,
    /// Parameter names kept, values replaced by `REDACTED`.
    Redact,
}

/// The method as a static string for the common methods (no allocation).
pub(crate) fn method(m: &Method) -> Cow<'static, str> {
    match *m {
        Method::GET => Cow::Borrowed("GET"),
        Method::POST => Cow::Borrowed("POST"),
        Method::PUT => Cow::Borrowed("PUT"),
        Method::DELETE => Cow::Borrowed("DELETE"),
        Method::HEAD => Cow::Borrowed("HEAD"),
        Method::OPTIONS => Cow::Borrowed("OPTIONS"),
        Method::PATCH => Cow::Borrowed("PATCH"),
        Method::CONNECT => Cow::Borrowed("CONNECT"),
        Method::TRACE => Cow::Borrowed("TRACE"),
        _ => Cow::Owned(m.as_str().to_owned()),
    }
}

/// The method as it appears in operation names: extension methods (any
/// token a client sends, `X1`, `X2`, ...) all read `_OTHER`, as in
/// OpenTelemetry's HTTP conventions, so that callers cannot mint new
/// operation names, metrics endpoints and interned names at will. The
/// `http.method` tag keeps the method as sent.
pub(crate) fn operation_method(m: &Method) -> &'static str {
    match method(m) {
        Cow::Borrowed(name) => name,
        Cow::Owned(_) => "_OTHER",
    }
}

fn push_query(out: &mut String, query: &str, policy: QueryPolicy) {
    match policy {
        QueryPolicy::Keep => {
            out.push('?');
            out.push_str(query);
        }
        QueryPolicy::Strip => {}
        QueryPolicy::Redact => {
            out.push('?');
            for (i, pair) in query.split('&').enumerate() {
                if i > 0 {
                    out.push('&');
                }
                // A parameter without `=` may be a bare secret (`?s3cr3t`):
                // only what comes before an `=` is a name.
                if let Some((name, _)) = pair.split_once('=') {
                    out.push_str(name);
                    out.push('=');
                }
                out.push_str("REDACTED");
            }
        }
    }
}

/// The full URL of a request: absolute URIs as they are but for any
/// credentials (`user:password@`, never recorded), origin-form ones
/// completed with the `Host` header (and `http`, the scheme a server cannot
/// see from the request line).
pub(crate) fn url(uri: &Uri, host: Option<&str>, policy: QueryPolicy) -> String {
    let mut out = String::with_capacity(64);
    match (uri.scheme_str(), uri.authority(), host) {
        (Some(scheme), Some(auth), _) => {
            out.push_str(scheme);
            out.push_str("://");
            let auth = auth.as_str();
            // Userinfo ends at the last `@` of the authority (a password
            // may contain `@` only percent-encoded, a host never).
            out.push_str(auth.rsplit_once('@').map_or(auth, |(_, host)| host));
        }
        (_, _, Some(host)) => {
            out.push_str("http://");
            out.push_str(host);
        }
        _ => {}
    }
    out.push_str(uri.path());
    if let Some(q) = uri.query() {
        push_query(&mut out, q, policy);
    }
    out
}

/// The URL `scheme://host[:port]path[?query]`, the query as `policy`
/// says (for clients whose requests carry a parsed URL rather than a
/// `Uri`).
pub(crate) fn url_from_parts(
    scheme: &str,
    host: &str,
    port: Option<u16>,
    path: &str,
    query: Option<&str>,
    policy: QueryPolicy,
) -> String {
    let mut out = String::with_capacity(scheme.len() + host.len() + path.len() + 16);
    out.push_str(scheme);
    out.push_str("://");
    out.push_str(host);
    if let Some(port) = port {
        out.push(':');
        out.push_str(itoa_u16(port).as_str());
    }
    out.push_str(path);
    if let Some(q) = query {
        push_query(&mut out, q, policy);
    }
    out
}

/// A port in decimal, without going through `fmt`.
fn itoa_u16(mut n: u16) -> PortText {
    let mut buf = [0u8; 5];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    PortText { buf, start: i }
}

struct PortText {
    buf: [u8; 5],
    start: usize,
}

impl PortText {
    fn as_str(&self) -> &str {
        // Only ASCII digits were written.
        std::str::from_utf8(&self.buf[self.start..]).unwrap_or_default()
    }
}

pub(crate) fn host_header(headers: &http::HeaderMap) -> Option<&str> {
    find_header(headers, &http::header::HOST).and_then(|h| h.to_str().ok())
}

pub(crate) use opentracing_api::find_header;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_among_few_or_many_headers() {
        for others in [0, 3, 16, 40] {
            let mut h = http::HeaderMap::new();
            for i in 0..others {
                h.insert(
                    http::HeaderName::from_bytes(format!("x-h{i}").as_bytes()).unwrap(),
                    http::HeaderValue::from_static("v"),
                );
            }
            assert_eq!(host_header(&h), None, "{others}");
            h.insert(
                http::header::HOST,
                http::HeaderValue::from_static("svc:8081"),
            );
            assert_eq!(host_header(&h), Some("svc:8081"), "{others}");
            h.insert(
                http::header::HOST,
                http::HeaderValue::from_bytes(b"\xffbad").unwrap(),
            );
            assert_eq!(host_header(&h), None, "{others}");
        }
    }

    #[test]
    fn urls() {
        let u: Uri = "/customer?customer=123&token=abc".parse().unwrap();
        assert_eq!(
            url(&u, Some("svc:8081"), QueryPolicy::Keep),
            "http://svc:8081/customer?customer=123&token=abc"
        );
        assert_eq!(
            url(&u, Some("svc:8081"), QueryPolicy::Strip),
            "http://svc:8081/customer"
        );
        assert_eq!(
            url(&u, None, QueryPolicy::Redact),
            "/customer?customer=REDACTED&token=REDACTED"
        );
        let u: Uri = "https://api.internal:8443/x".parse().unwrap();
        assert_eq!(
            url(&u, Some("ignored"), QueryPolicy::Keep),
            "https://api.internal:8443/x"
        );
        let u: Uri = "http://user:p%40ss@api.internal:8080/x?flag&a=1"
            .parse()
            .unwrap();
        assert_eq!(
            url(&u, None, QueryPolicy::Keep),
            "http://api.internal:8080/x?flag&a=1",
            "credentials are never recorded"
        );
        assert_eq!(
            url(&u, None, QueryPolicy::Redact),
            "http://api.internal:8080/x?REDACTED&a=REDACTED",
            "a parameter without `=` is redacted whole"
        );
        let u: Uri = "http://[::1]:8080/".parse().unwrap();
        assert_eq!(url(&u, None, QueryPolicy::Keep), "http://[::1]:8080/");
    }

    #[test]
    fn urls_from_parts() {
        assert_eq!(
            url_from_parts(
                "http",
                "[::1]",
                Some(8080),
                "/x",
                Some("a=1&b"),
                QueryPolicy::Redact
            ),
            "http://[::1]:8080/x?a=REDACTED&REDACTED"
        );
        assert_eq!(
            url_from_parts("https", "api.internal", None, "/", None, QueryPolicy::Keep),
            "https://api.internal/"
        );
        assert_eq!(
            url_from_parts("http", "h", Some(0), "/", Some("q"), QueryPolicy::Strip),
            "http://h:0/"
        );
        assert_eq!(
            url_from_parts("http", "h", Some(65535), "/", None, QueryPolicy::Keep),
            "http://h:65535/"
        );
    }

    #[test]
    fn extension_methods_share_one_operation_name() {
        assert_eq!(operation_method(&Method::GET), "GET");
        assert_eq!(operation_method(&Method::PATCH), "PATCH");
        for m in ["X1", "PROPFIND", "get"] {
            let m = Method::from_bytes(m.as_bytes()).unwrap();
            assert_eq!(operation_method(&m), "_OTHER");
            assert_eq!(method(&m), m.as_str(), "the tag keeps the method as sent");
        }
    }
}
