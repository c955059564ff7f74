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
                let name = pair.split_once('=').map_or(pair, |(k, _)| k);
                out.push_str(name);
                out.push_str("=REDACTED");
            }
        }
    }
}

/// The full URL of a request: absolute URIs as they are, origin-form ones
/// completed with the `Host` header (and `http`, the scheme a server cannot
/// see from the request line).
pub(crate) fn url(uri: &Uri, host: Option<&str>, policy: QueryPolicy) -> String {
    let mut out = String::with_capacity(64);
    match (uri.scheme_str(), uri.authority(), host) {
        (Some(scheme), Some(auth), _) => {
            out.push_str(scheme);
            out.push_str("://");
            out.push_str(auth.as_str());
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

pub(crate) fn host_header(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
