//! The propagation policy: what to trust in incoming contexts, and where
//! outgoing requests may carry trace headers.
//!
//! Trace context and baggage can leak internal details (baggage may carry
//! user ids), and callers can forge them (a forged sampled flag makes a
//! service record everything, a forged debug id forces a trace). The model
//! is a homeserver allowlist: trust incoming sampling decisions and baggage
//! only from trusted callers ([`ExtractPolicy`]), and inject only towards
//! trusted destinations ([`InjectPolicy`]).
//!
//! Every adapter and every extraction path of a tracer applies the same
//! [`ExtractPolicy`]; every client adapter decides injection with the same
//! [`InjectPolicy`] and removes forwarded trace headers with
//! [`strip_trace_headers`].
//!
//! ```
//! use opentracing_api::{ExtractPolicy, InjectPolicy, SpanContext, SpanId, TraceFlags, TraceId};
//!
//! // A public edge: continue callers' traces, decide sampling here, drop
//! // their baggage and debug ids.
//! let policy = ExtractPolicy::untrusted();
//! let forged = SpanContext::new(TraceId::from_u64(7), SpanId::from_u64(9), TraceFlags::SAMPLED);
//! let cx = policy.apply(Some(forged)).unwrap();
//! assert_eq!(cx.trace_id(), TraceId::from_u64(7));
//! assert!(!cx.is_sampling_decided(), "the local sampler decides");
//!
//! // Trace headers go to our own services only.
//! let inject = InjectPolicy::allowlist(["*.internal", "localhost"]);
//! assert!(inject.allows(Some("billing.internal")));
//! assert!(!inject.allows(Some("api.partner.com")));
//! ```

use crate::{Baggage, Propagator, SpanContext, TraceFlags};

/// What to trust in an incoming span context.
///
/// Applied by [`apply`](Self::apply) to the result of an extraction, by
/// tracers on every extraction path (text, binary, the propagator they hand
/// out) and by server adapters. The limits on baggage
/// ([`BaggageLimits`](crate::BaggageLimits)) apply whatever the policy.
///
/// The default trusts everything, as the Jaeger and OpenTelemetry clients
/// do: right for services that only internal callers reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[allow(clippy::struct_excessive_bools)] // four independent trust switches
pub struct ExtractPolicy {
    /// Continue the caller's trace at all. When false every request starts
    /// a new root trace (which keeps the caller's baggage if
    /// `trust_baggage` is set).
    pub trust_parent: bool,
    /// Keep the caller's sampling decision. When false the trace continues
    /// but the local sampler decides.
    pub trust_sampling: bool,
    /// Keep the caller's baggage. When false it is dropped.
    pub trust_baggage: bool,
    /// Honour a `jaeger-debug-id` (a forced, tagged trace). When false it
    /// is dropped.
    pub trust_debug_id: bool,
}

impl Default for ExtractPolicy {
    fn default() -> Self {
        Self::trusted()
    }
}

impl ExtractPolicy {
    /// Trust everything the caller sends (the default).
    pub const fn trusted() -> Self {
        ExtractPolicy {
            trust_parent: true,
            trust_sampling: true,
            trust_baggage: true,
            trust_debug_id: true,
        }
    }

    /// Continue the caller's trace ids, trust nothing else: the local
    /// sampler decides, baggage and debug ids are dropped. For services
    /// that untrusted callers reach.
    pub const fn untrusted() -> Self {
        ExtractPolicy {
            trust_parent: true,
            trust_sampling: false,
            trust_baggage: false,
            trust_debug_id: false,
        }
    }

    /// Trust nothing at all: every request starts a new root trace, with no
    /// baggage.
    pub const fn isolated() -> Self {
        ExtractPolicy {
            trust_parent: false,
            trust_sampling: false,
            trust_baggage: false,
            trust_debug_id: false,
        }
    }

    /// Sets [`trust_parent`](Self::trust_parent).
    #[must_use]
    pub const fn with_trust_parent(mut self, on: bool) -> Self {
        self.trust_parent = on;
        self
    }

    /// Sets [`trust_sampling`](Self::trust_sampling).
    #[must_use]
    pub const fn with_trust_sampling(mut self, on: bool) -> Self {
        self.trust_sampling = on;
        self
    }

    /// Sets [`trust_baggage`](Self::trust_baggage).
    #[must_use]
    pub const fn with_trust_baggage(mut self, on: bool) -> Self {
        self.trust_baggage = on;
        self
    }

    /// Sets [`trust_debug_id`](Self::trust_debug_id).
    #[must_use]
    pub const fn with_trust_debug_id(mut self, on: bool) -> Self {
        self.trust_debug_id = on;
        self
    }

    /// Whether the policy trusts everything (and [`apply`](Self::apply)
    /// returns its input unchanged).
    #[inline]
    pub const fn is_trusted(self) -> bool {
        self.trust_parent && self.trust_sampling && self.trust_baggage && self.trust_debug_id
    }

    /// Applies the policy to an extracted context. The result may be a
    /// context that is not a valid parent but still carries what the policy
    /// keeps (baggage for a new root): pass it to
    /// [`SpanBuilder::with_extracted`](crate::SpanBuilder::with_extracted).
    #[inline]
    pub fn apply(self, cx: Option<SpanContext>) -> Option<SpanContext> {
        if self.is_trusted() {
            return cx;
        }
        self.restrict(cx?)
    }

    fn restrict(self, mut cx: SpanContext) -> Option<SpanContext> {
        if !self.trust_parent {
            // A new root, which may still carry the caller's baggage.
            return (self.trust_baggage && !cx.baggage().is_empty())
                .then(|| SpanContext::default().with_baggage(std::mem::take(cx.baggage_mut())));
        }
        if !self.trust_sampling {
            cx = cx.with_flags(TraceFlags::NONE).with_sampling_decided(false);
        }
        if !self.trust_debug_id && cx.debug_id().is_some() {
            cx = cx.with_debug_id(None);
        }
        if !self.trust_baggage && !cx.baggage().is_empty() {
            *cx.baggage_mut() = Baggage::new();
        }
        // Whatever is left may be nothing at all (a debug-id-only context
        // whose debug id was dropped).
        let empty = !cx.is_valid()
            && cx.baggage().is_empty()
            && cx.debug_id().is_none()
            && !cx.is_sampling_decided();
        (!empty).then_some(cx)
    }
}

/// A destination host pattern: `"*"` (any host), `"*.example.com"` (any
/// subdomain, not `example.com` itself), or an exact host name or address.
/// Matching ignores ASCII case.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostPattern(String);

impl HostPattern {
    /// A pattern.
    pub fn new(pattern: impl Into<String>) -> Self {
        HostPattern(pattern.into().to_ascii_lowercase())
    }

    /// Whether `host` matches. IPv6 brackets (`[::1]`) and a trailing dot
    /// (`api.internal.`) are ignored on both sides.
    pub fn matches(&self, host: &str) -> bool {
        let p = normalize_host(&self.0);
        let host = normalize_host(host).as_bytes();
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

fn normalize_host(host: &str) -> &str {
    let h = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    h.strip_suffix('.').unwrap_or(h)
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

    /// Whether requests to `host` get trace headers. An unknown host
    /// (`None`) matches no allowlist: the policy fails closed.
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

/// The trace headers of the standard propagators (Jaeger, W3C trace
/// context and baggage, B3), besides Jaeger's `uberctx-` baggage prefix.
const STANDARD_TRACE_HEADERS: [&str; 12] = [
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

/// Whether `name` (a lower-case header name) is a trace header: one of the
/// standard propagators' or one `propagator` reads or writes (custom Jaeger
/// header names and baggage prefixes included).
pub fn is_trace_header(name: &str, propagator: &dyn Propagator) -> bool {
    name.starts_with("uberctx-")
        || STANDARD_TRACE_HEADERS.contains(&name)
        || propagator.is_field(name)
}

/// Removes every trace header from `headers`: those of the standard
/// propagators (Jaeger, W3C trace context and baggage, B3, Jaeger's
/// `uberctx-*` baggage) and those `propagator` uses. Client adapters call it
/// before injecting, so a request forwarded by a proxy carries this span's
/// context only, and a destination the [`InjectPolicy`] denies gets none.
///
/// ```
/// use opentracing_api::{strip_trace_headers, JaegerPropagator};
/// let mut h = http::HeaderMap::new();
/// h.insert("traceparent", http::HeaderValue::from_static("00-..."));
/// h.insert("uberctx-user", http::HeaderValue::from_static("alice"));
/// h.insert("accept", http::HeaderValue::from_static("*/*"));
/// strip_trace_headers(&mut h, &JaegerPropagator::new());
/// assert_eq!(h.len(), 1);
/// ```
pub fn strip_trace_headers(headers: &mut http::HeaderMap, propagator: &dyn Propagator) {
    // One pass over the (few) names; removal only for what is there, which
    // is usually nothing (and then the vector never allocates).
    let present: Vec<http::HeaderName> = headers
        .keys()
        .filter(|k| is_trace_header(k.as_str(), propagator))
        .cloned()
        .collect();
    for k in present {
        headers.remove(k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SpanId, TraceId};

    fn cx_with_everything() -> SpanContext {
        let mut baggage = Baggage::new();
        baggage.insert("tenant", "acme").unwrap();
        SpanContext::new(
            TraceId::from_u64(1),
            SpanId::from_u64(2),
            TraceFlags::SAMPLED,
        )
        .with_baggage(baggage)
        .with_debug_id(Some("dbg"))
    }

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
        let p = InjectPolicy::allowlist(["*.internal", "127.0.0.1"]);
        assert!(p.allows(Some("127.0.0.1")) && !p.allows(Some("example.com")) && !p.allows(None));
        assert!(InjectPolicy::All.allows(None));
        assert!(!InjectPolicy::None.allows(Some("127.0.0.1")));
    }

    #[test]
    fn stripping_knows_custom_header_names() {
        let custom = crate::JaegerPropagator::new().with_headers(
            crate::JaegerHeaders::default()
                .with_trace_context("x-acme-trace")
                .unwrap()
                .with_baggage_prefix("x-acme-ctx-")
                .unwrap(),
        );
        let mut h = http::HeaderMap::new();
        for name in [
            "traceparent",
            "uberctx-user",
            "x-acme-trace",
            "x-acme-ctx-user",
            "accept",
        ] {
            h.insert(
                http::HeaderName::from_static(name),
                http::HeaderValue::from_static("x"),
            );
        }
        strip_trace_headers(&mut h, &custom);
        assert_eq!(
            h.keys().map(http::HeaderName::as_str).collect::<Vec<_>>(),
            ["accept"]
        );
    }

    #[test]
    fn the_trusted_policy_changes_nothing() {
        let cx = cx_with_everything();
        assert_eq!(ExtractPolicy::default().apply(Some(cx.clone())), Some(cx));
        assert_eq!(ExtractPolicy::default().apply(None), None);
    }

    #[test]
    fn untrusted_keeps_the_ids_only() {
        let cx = ExtractPolicy::untrusted()
            .apply(Some(cx_with_everything()))
            .unwrap();
        assert_eq!(cx.trace_id(), TraceId::from_u64(1));
        assert_eq!(cx.span_id(), SpanId::from_u64(2));
        assert!(!cx.flags().is_sampled() && !cx.is_sampling_decided());
        assert!(cx.baggage().is_empty());
        assert_eq!(cx.debug_id(), None);
    }

    #[test]
    fn a_new_root_may_keep_the_callers_baggage() {
        let keep_baggage = ExtractPolicy::trusted().with_trust_parent(false);
        let root = keep_baggage.apply(Some(cx_with_everything())).unwrap();
        assert!(!root.is_valid(), "no parent: a new root");
        assert!(!root.is_sampling_decided() && root.debug_id().is_none());
        assert_eq!(root.baggage_item("tenant"), Some("acme"));
        assert_eq!(
            ExtractPolicy::isolated().apply(Some(cx_with_everything())),
            None
        );
        let no_baggage = SpanContext::new(
            TraceId::from_u64(1),
            SpanId::from_u64(2),
            TraceFlags::SAMPLED,
        );
        assert_eq!(keep_baggage.apply(Some(no_baggage)), None);
    }

    #[test]
    fn a_debug_id_only_context_whose_debug_id_is_dropped_is_nothing() {
        let cx = SpanContext::default().with_debug_id(Some("dbg"));
        assert_eq!(ExtractPolicy::untrusted().apply(Some(cx.clone())), None);
        let kept = ExtractPolicy::trusted().with_trust_sampling(false);
        assert_eq!(kept.apply(Some(cx.clone())), Some(cx));
    }
}
