//! The propagation policy: where trace headers may go, and what to trust in
//! the ones that come in.
//!
//! Trace context and baggage can leak internal details (baggage may carry
//! user ids) and can be forged by callers (a forged sampled flag makes a
//! service record everything). Synapse's `homeserver_whitelist` is the model:
//! inject only towards trusted destinations, and trust incoming sampling
//! decisions and baggage only when the callers are trusted.

use opentracing_api::{Baggage, SpanContext, TraceFlags};

/// A destination host pattern: `"*"` (any host), `"*.example.com"` (any
/// subdomain, not `example.com` itself), or an exact host name or address.
/// Matching ignores ASCII case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPattern(String);

impl HostPattern {
    /// A pattern.
    pub fn new(pattern: impl Into<String>) -> Self {
        HostPattern(pattern.into().to_ascii_lowercase())
    }

    /// Whether `host` matches. IPv6 brackets (`[::1]`) and a trailing dot
    /// (`api.internal.`) are ignored on both sides.
    pub fn matches(&self, host: &str) -> bool {
        let p = normalize(&self.0);
        let host = normalize(host).as_bytes();
        if p == "*" {
            return true;
        }
        if let Some(suffix) = p.strip_prefix("*.") {
            let suffix = suffix.as_bytes();
            return host.len() > suffix.len() + 1
                && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
                && host[host.len() - suffix.len() - 1] == b'.';
        }
        p.as_bytes().eq_ignore_ascii_case(host)
    }
}

fn normalize(host: &str) -> &str {
    let h = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    h.strip_suffix('.').unwrap_or(h)
}

/// The trace headers of the standard propagators (Jaeger, W3C trace
/// context and baggage, B3), besides Jaeger's `uberctx-` baggage prefix.
const TRACE_HEADERS: [&str; 12] = [
    "uber-trace-id",
    "jaeger-debug-id",
    "jaeger-baggage",
    "traceparent",
    "tracestate",
    "baggage",
    "b3",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
];

fn is_trace_header(name: &http::HeaderName) -> bool {
    let n = name.as_str();
    n.starts_with("uberctx-") || TRACE_HEADERS.contains(&n)
}

/// Removes every trace header the standard propagators use (Jaeger, W3C
/// trace context and baggage, B3, Jaeger's `uberctx-*` baggage). Custom
/// header names configured on a propagator are not known here.
///
/// ```
/// let mut h = http::HeaderMap::new();
/// h.insert("traceparent", http::HeaderValue::from_static("00-..."));
/// h.insert("accept", http::HeaderValue::from_static("*/*"));
/// opentracing_tower::policy::strip_trace_headers(&mut h);
/// assert_eq!(h.len(), 1);
/// ```
pub fn strip_trace_headers(headers: &mut http::HeaderMap) {
    // One pass over the (few) names; removal only for what is there, which
    // is usually nothing (and then the vector never allocates).
    let present: Vec<http::HeaderName> = headers
        .keys()
        .filter(|k| is_trace_header(k))
        .cloned()
        .collect();
    for k in present {
        headers.remove(k);
    }
}

/// Where outgoing requests get trace headers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum InjectPolicy {
    /// Every destination (the default).
    #[default]
    All,
    /// Only destinations whose host matches one of the patterns; others get
    /// no trace headers and no baggage.
    Allowlist(Vec<HostPattern>),
    /// No destination.
    None,
}

impl InjectPolicy {
    /// An allowlist from patterns such as `"*.internal"`, `"localhost"`.
    pub fn allowlist<I, S>(patterns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        InjectPolicy::Allowlist(patterns.into_iter().map(HostPattern::new).collect())
    }

    /// Whether requests to `host` get trace headers.
    pub fn allows(&self, host: Option<&str>) -> bool {
        match self {
            InjectPolicy::All => true,
            InjectPolicy::None => false,
            InjectPolicy::Allowlist(patterns) => {
                host.is_some_and(|h| patterns.iter().any(|p| p.matches(h)))
            }
        }
    }
}

/// What to trust in an incoming span context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExtractTrust {
    /// Keep the caller's sampling decision (default true). When false, the
    /// trace continues but the local sampler decides.
    pub sampling: bool,
    /// Keep the caller's baggage (default true).
    pub baggage: bool,
    /// Continue the caller's trace at all (default true). When false every
    /// request starts a new root trace.
    pub parent: bool,
}

impl Default for ExtractTrust {
    fn default() -> Self {
        ExtractTrust {
            sampling: true,
            baggage: true,
            parent: true,
        }
    }
}

impl ExtractTrust {
    /// Trust nothing: every request starts a new trace, with no baggage.
    pub fn none() -> Self {
        ExtractTrust {
            sampling: false,
            baggage: false,
            parent: false,
        }
    }

    /// Applies the policy to an extracted context.
    pub fn apply(&self, cx: Option<SpanContext>) -> Option<SpanContext> {
        if !self.parent {
            // A new root, which may still carry the caller's baggage.
            return cx
                .filter(|cx| self.baggage && !cx.baggage().is_empty())
                .map(|cx| SpanContext::default().with_baggage(cx.baggage().clone()));
        }
        let mut cx = cx?;
        if !self.sampling {
            cx = cx
                .with_flags(TraceFlags::NONE)
                .with_sampling_decided(false)
                .with_debug_id(None);
        }
        if !self.baggage && !cx.baggage().is_empty() {
            cx = cx.with_baggage(Baggage::new());
        }
        Some(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_patterns() {
        assert!(HostPattern::new("*").matches("anything"));
        assert!(HostPattern::new("*.internal").matches("api.internal"));
        assert!(HostPattern::new("*.Internal").matches("a.b.INTERNAL"));
        assert!(!HostPattern::new("*.internal").matches("internal"));
        assert!(!HostPattern::new("*.internal").matches("evilinternal"));
        assert!(HostPattern::new("localhost").matches("LocalHost"));
        assert!(HostPattern::new("::1").matches("[::1]"));
        assert!(HostPattern::new("*.internal").matches("api.internal."));
        assert!(
            !HostPattern::new("*.b").matches("aé"),
            "no panic on multi-byte hosts"
        );
        let mut h = http::HeaderMap::new();
        h.insert("traceparent", http::HeaderValue::from_static("x"));
        h.insert("uberctx-user", http::HeaderValue::from_static("x"));
        h.insert("accept", http::HeaderValue::from_static("x"));
        strip_trace_headers(&mut h);
        assert_eq!(h.len(), 1);
        let p = InjectPolicy::allowlist(["*.internal", "127.0.0.1"]);
        assert!(p.allows(Some("127.0.0.1")) && !p.allows(Some("example.com")) && !p.allows(None));
    }

    #[test]
    fn a_new_root_may_keep_the_callers_baggage() {
        use opentracing_api::{SpanId, TraceId};
        let mut baggage = Baggage::new();
        baggage.insert("tenant", "acme").unwrap();
        let cx = SpanContext::new(
            TraceId::from_u64(1),
            SpanId::from_u64(2),
            TraceFlags::SAMPLED,
        )
        .with_baggage(baggage);
        let keep_baggage = ExtractTrust {
            parent: false,
            ..ExtractTrust::default()
        };
        let root = keep_baggage.apply(Some(cx.clone())).unwrap();
        assert!(!root.is_valid(), "no parent: a new root");
        assert_eq!(root.baggage_item("tenant"), Some("acme"));
        assert_eq!(ExtractTrust::none().apply(Some(cx.clone())), None);
        let no_baggage = SpanContext::new(
            TraceId::from_u64(1),
            SpanId::from_u64(2),
            TraceFlags::SAMPLED,
        );
        assert_eq!(keep_baggage.apply(Some(no_baggage)), None);
        let trusted = ExtractTrust::default().apply(Some(cx)).unwrap();
        assert_eq!(trusted.trace_id(), TraceId::from_u64(1));
    }
}
