//! W3C Trace Context (`traceparent`, `tracestate`) and W3C Baggage.

use super::encoding;
use super::{ExtractError, Propagator};
use crate::id::{
    ascii_string, parse_lower_hex_u64, parse_lower_hex_u8, push_hex_u128, push_hex_u64,
};
use crate::{
    Baggage, BaggageLimits, Extractor, Format, Injector, SpanContext, SpanId, TraceFlags, TraceId,
};

use http::HeaderName;

const TRACEPARENT: &str = "traceparent";
const TRACEPARENT_H: HeaderName = HeaderName::from_static(TRACEPARENT);
const TRACESTATE_H: HeaderName = HeaderName::from_static("tracestate");
const BAGGAGE_H: HeaderName = HeaderName::from_static("baggage");
/// Longest `traceparent` parsed (future versions may append fields).
const MAX_TRACEPARENT_LEN: usize = 512;
/// Longest `tracestate` carried through; longer ones are dropped.
const MAX_TRACESTATE_LEN: usize = 8192;
/// Most `tracestate` list members, per the specification.
const MAX_TRACESTATE_MEMBERS: usize = 32;

/// W3C Trace Context: `traceparent` and `tracestate`.
///
/// `traceparent: 00-{32 hex trace id}-{16 hex parent id}-{2 hex flags}`.
/// Extraction follows the specification's parsing rules: lower-case hex
/// only, version `ff` and zero ids invalid, and a future version may append
/// fields after a `-`. Only the *sampled* bit of the flags is kept (W3C's
/// other bits mean other things than Jaeger's). `tracestate` is carried
/// through untouched when it is valid printable ASCII of at most 32 members
/// and 8192 bytes, and dropped otherwise without losing the trace.
///
/// ```
/// use std::collections::HashMap;
/// use opentracing_api::{Format, Propagator, TraceContextPropagator};
/// let mut headers = HashMap::new();
/// headers.insert("traceparent".to_string(),
///     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_string());
/// let cx = TraceContextPropagator::new().extract(Format::HttpHeaders, &headers).unwrap().unwrap();
/// assert!(cx.is_sampled());
/// assert_eq!(cx.span_id().to_string(), "00f067aa0ba902b7");
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct TraceContextPropagator {
    _private: (),
}

impl TraceContextPropagator {
    /// The propagator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Formats the `traceparent` value for a context.
    pub fn format_traceparent(cx: &SpanContext) -> String {
        let mut s = Vec::with_capacity(55);
        s.extend_from_slice(b"00-");
        push_hex_u128(&mut s, cx.trace_id().to_u128());
        s.push(b'-');
        push_hex_u64(&mut s, cx.span_id().to_u64());
        s.extend_from_slice(if cx.is_sampled() { b"-01" } else { b"-00" });
        ascii_string(s)
    }

    /// Parses a `traceparent` value.
    pub fn parse_traceparent(v: &[u8]) -> Result<SpanContext, &'static str> {
        if v.len() < 55 {
            return Err("shorter than 55 characters");
        }
        if v.len() > MAX_TRACEPARENT_LEN {
            return Err("value too long");
        }
        if v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
            return Err("fields are not separated by '-'");
        }
        let version = parse_lower_hex_u8(&v[0..2]).ok_or("invalid version")?;
        if version == 0xff {
            return Err("invalid version");
        }
        if version == 0 && v.len() != 55 {
            return Err("version 00 must be exactly 55 characters");
        }
        if v.len() > 55 && v[55] != b'-' {
            return Err("unexpected data after the flags");
        }
        let err = "ids and flags must be lower-case hex";
        let high = parse_lower_hex_u64(&v[3..19]).ok_or(err)?;
        let low = parse_lower_hex_u64(&v[19..35]).ok_or(err)?;
        let span = parse_lower_hex_u64(&v[36..52]).ok_or(err)?;
        let flags = parse_lower_hex_u8(&v[53..55]).ok_or(err)?;
        let trace_id = TraceId::from_parts(high, low);
        let span_id = SpanId::from_u64(span);
        if !trace_id.is_valid() {
            return Err("trace id is zero");
        }
        if !span_id.is_valid() {
            return Err("parent id is zero");
        }
        Ok(SpanContext::new(
            trace_id,
            span_id,
            TraceFlags::from_u8(flags & 0x01),
        ))
    }
}

/// A `tracestate` key: `simple-key` or `tenant@system`, lower-case letters,
/// digits and `_-*/` (W3C Trace Context, section 3.3.1.3.1).
fn valid_key(k: &str) -> bool {
    let part = |p: &str, max: usize, first_digit_ok: bool| {
        !p.is_empty()
            && p.len() <= max
            && p.bytes()
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || (first_digit_ok && b.is_ascii_digit()))
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-*/".contains(&b))
    };
    match k.split_once('@') {
        None => part(k, 256, false),
        Some((tenant, system)) => part(tenant, 241, true) && part(system, 14, false),
    }
}

/// A `tracestate` value: 1 to 256 printable ASCII characters except `,`
/// and `=`, not ending in a space.
fn valid_value(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 256
        && !v.ends_with(' ')
        && v.bytes()
            .all(|b| (0x20..=0x7e).contains(&b) && b != b',' && b != b'=')
}

/// The `tracestate` to carry through, or `None` when it breaks the
/// specification's grammar (then it is dropped, the trace context is kept).
fn valid_tracestate(v: &[u8]) -> Option<String> {
    if v.len() > MAX_TRACESTATE_LEN {
        return None;
    }
    let s = std::str::from_utf8(v).ok()?;
    let mut keys: Vec<&str> = Vec::new();
    let mut members: Vec<&str> = Vec::new();
    for m in s
        .split(',')
        .map(|m| m.trim_matches([' ', '\t']))
        .filter(|m| !m.is_empty())
    {
        let (k, val) = m.split_once('=')?;
        if !valid_key(k) || !valid_value(val) || keys.contains(&k) {
            return None;
        }
        keys.push(k);
        members.push(m);
        if members.len() > MAX_TRACESTATE_MEMBERS {
            return None;
        }
    }
    (!members.is_empty()).then(|| members.join(","))
}

impl Propagator for TraceContextPropagator {
    fn inject(&self, cx: &SpanContext, _: Format, carrier: &mut dyn Injector) {
        if !cx.is_valid() {
            return;
        }
        carrier.set_header(&TRACEPARENT_H, Self::format_traceparent(cx));
        if let Some(ts) = cx.trace_state() {
            carrier.set_header(&TRACESTATE_H, ts.to_owned());
        }
    }

    fn extract(
        &self,
        _: Format,
        carrier: &dyn Extractor,
    ) -> Result<Option<SpanContext>, ExtractError> {
        let Some(v) = carrier.get_header(&TRACEPARENT_H) else {
            return Ok(None);
        };
        let cx = Self::parse_traceparent(v)
            .map_err(|r| ExtractError::malformed_static(TRACEPARENT, r))?;
        // Repeated `tracestate` lines are one list (RFC 7230).
        let ts = carrier
            .get_joined(&TRACESTATE_H)
            .and_then(|v| valid_tracestate(&v));
        Ok(Some(match ts {
            Some(ts) => cx.with_trace_state(Some(&ts)),
            None => cx,
        }))
    }

    fn name(&self) -> &'static str {
        "tracecontext"
    }

    fn extracts_extras(&self) -> bool {
        false
    }

    fn fields(&self) -> &'static [&'static str] {
        &[TRACEPARENT, "tracestate"]
    }
}

/// W3C Baggage: `baggage: key1=value1,key2=value2;property`.
///
/// Values are percent-encoded UTF-8 on inject (a space is `%20`, a `+` is
/// `%2B`). On extract, properties after `;` are dropped, members that are
/// not `token=value` are skipped, and `+` decodes to a space, because the
/// OpenTelemetry Java and Python SDKs encode spaces that way. Limits apply:
/// [`BaggageLimits`], by default the specification's 64 members and 8192
/// bytes.
///
/// Extracting only baggage gives an invalid context that carries it; a
/// [`CompositePropagator`](super::CompositePropagator) merges it into the
/// trace context found by another propagator.
#[derive(Clone, Copy, Debug, Default)]
pub struct W3CBaggagePropagator {
    limits: BaggageLimits,
}

impl W3CBaggagePropagator {
    /// The propagator with default limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses other limits.
    pub fn with_baggage_limits(mut self, limits: BaggageLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Parses a `baggage` header value within the limits.
    pub fn parse(&self, value: &[u8]) -> Baggage {
        let mut baggage = Baggage::new();
        // Each member needs at least 2 bytes ("k="), and decoding can only
        // shrink, so past this length nothing more could fit.
        let max_scan = self
            .limits
            .max_total_len
            .saturating_mul(3)
            .saturating_add(self.limits.max_items.saturating_mul(4));
        let value = if value.len() > max_scan {
            // Cut at a member boundary, never inside a member.
            let cut = value[..max_scan]
                .iter()
                .rposition(|&b| b == b',')
                .unwrap_or(0);
            // The members past the cut (it starts at a comma).
            let cut_off = value[cut..]
                .split(|&b| b == b',')
                .count()
                .saturating_sub(1)
                .max(1);
            crate::baggage::count_dropped(cut_off);
            &value[..cut]
        } else {
            value
        };
        let mut members = value.split(|&b| b == b',');
        while let Some(member) = members.next() {
            if baggage.len() >= self.limits.max_items {
                crate::baggage::count_dropped(1 + members.count());
                break;
            }
            let kv = member.split(|&b| b == b';').next().unwrap_or_default();
            let Some(eq) = kv.iter().position(|&b| b == b'=') else {
                continue;
            };
            let key = trim(&kv[..eq]);
            let val = trim(&kv[eq + 1..]);
            if key.is_empty() || !key.iter().all(|&b| is_token(b)) {
                continue;
            }
            let Ok(key) = std::str::from_utf8(key) else {
                continue;
            };
            let kept = encoding::decode(val, true).is_some_and(|val| {
                baggage
                    .insert_with_limits(key.to_owned(), val, &self.limits)
                    .is_ok()
            });
            if !kept {
                crate::baggage::count_dropped(1);
            }
        }
        baggage
    }

    /// Formats baggage as a `baggage` header value; items whose key is not
    /// a token are skipped.
    pub fn format(baggage: &Baggage) -> String {
        let mut s = String::new();
        for (k, v) in baggage.iter() {
            if k.is_empty() || !k.bytes().all(is_token) {
                continue;
            }
            if !s.is_empty() {
                s.push(',');
            }
            s.push_str(k);
            s.push('=');
            s.push_str(&encoding::encode(v));
        }
        s
    }
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |e| e + 1);
    &s[start..end.max(start)]
}

/// RFC 7230 `tchar`.
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

impl Propagator for W3CBaggagePropagator {
    fn inject(&self, cx: &SpanContext, _: Format, carrier: &mut dyn Injector) {
        if cx.baggage().is_empty() {
            return;
        }
        let v = Self::format(cx.baggage());
        if !v.is_empty() {
            carrier.set_header(&BAGGAGE_H, v);
        }
    }

    fn extract(
        &self,
        _: Format,
        carrier: &dyn Extractor,
    ) -> Result<Option<SpanContext>, ExtractError> {
        let Some(v) = carrier.get_joined(&BAGGAGE_H) else {
            return Ok(None);
        };
        let baggage = self.parse(&v);
        if baggage.is_empty() {
            return Ok(None);
        }
        Ok(Some(SpanContext::default().with_baggage(baggage)))
    }

    fn name(&self) -> &'static str {
        "baggage"
    }

    fn fields(&self) -> &'static [&'static str] {
        &["baggage"]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn tp(v: &str) -> Result<SpanContext, &'static str> {
        TraceContextPropagator::parse_traceparent(v.as_bytes())
    }

    #[test]
    fn spec_examples() {
        // W3C Trace Context, section 3.2.2.
        let cx = tp("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(cx.trace_id().to_hex32(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(cx.span_id().to_string(), "00f067aa0ba902b7");
        assert!(cx.is_sampled());
        let cx = tp("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap();
        assert!(!cx.is_sampled());
        assert_eq!(
            TraceContextPropagator::format_traceparent(&cx),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
        );
        // A future version with extra fields; W3C's random flag is not debug.
        let cx = tp("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03-extra").unwrap();
        assert!(cx.is_sampled() && !cx.is_debug());
    }

    #[test]
    fn spec_invalid_examples() {
        for bad in [
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(tp(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tracestate_carried_or_dropped() {
        let p = TraceContextPropagator::new();
        let mut h = HashMap::new();
        h.insert(
            "traceparent".to_owned(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned(),
        );
        h.insert(
            "tracestate".to_owned(),
            "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7".to_owned(),
        );
        let cx = p.extract(Format::HttpHeaders, &h).unwrap().unwrap();
        assert_eq!(
            cx.trace_state(),
            Some("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")
        );
        let mut out = HashMap::new();
        p.inject(&cx, Format::HttpHeaders, &mut out);
        assert_eq!(out["tracestate"], "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
        assert_eq!(
            out["traceparent"],
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
        // Repeated header lines are one list (RFC 7230), invalid members drop
        // the whole tracestate but never the trace.
        let mut hm = http::HeaderMap::new();
        hm.insert(
            "traceparent",
            http::HeaderValue::from_static(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
        );
        hm.append(
            "tracestate",
            http::HeaderValue::from_static("congo=t61rcWkgMzE"),
        );
        hm.append(
            "tracestate",
            http::HeaderValue::from_static("rojo=00f067aa0ba902b7"),
        );
        let cx = p.extract(Format::HttpHeaders, &hm).unwrap().unwrap();
        assert_eq!(
            cx.trace_state(),
            Some("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")
        );
        for bad in [
            "Congo=x",
            "congo=x,congo=y",
            "congo=",
            "=x",
            "congo=a=b",
            "t@vendorwaytoolongname=x",
        ] {
            h.insert("tracestate".to_owned(), bad.to_owned());
            let cx = p.extract(Format::HttpHeaders, &h).unwrap().unwrap();
            assert_eq!(cx.trace_state(), None, "{bad}");
        }
        h.insert(
            "tracestate".to_owned(),
            "tenant@vendor=v1, 0tenant@sys=v2".to_owned(),
        );
        assert_eq!(
            p.extract(Format::HttpHeaders, &h)
                .unwrap()
                .unwrap()
                .trace_state(),
            Some("tenant@vendor=v1,0tenant@sys=v2")
        );
        let many: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
        h.insert("tracestate".to_owned(), many.join(","));
        let cx = p.extract(Format::HttpHeaders, &h).unwrap().unwrap();
        assert_eq!(cx.trace_state(), None);
        assert!(cx.is_valid());
    }

    #[test]
    fn baggage_spec_examples() {
        let p = W3CBaggagePropagator::new();
        let b = p.parse(b"key1=value1;property1;property2, key2 = value2, key3=value3; propertyKey=propertyValue");
        assert_eq!(b.get("key1"), Some("value1"));
        assert_eq!(b.get("key2"), Some("value2"));
        assert_eq!(b.get("key3"), Some("value3"));
        let b =
            p.parse(b"userId=alice,serverNode=DF%2028,isProduction=false,bad key=x,noeq,sp=a+b");
        assert_eq!(b.get("serverNode"), Some("DF 28"));
        assert_eq!(b.get("sp"), Some("a b"));
        assert_eq!(b.len(), 4);
        let b = Baggage::from_iter([("k", "a b,c;d+é%"), ("bad key", "x")]);
        assert_eq!(
            W3CBaggagePropagator::format(&b),
            "k=a%20b%2Cc%3Bd%2B%C3%A9%25"
        );
    }

    #[test]
    fn baggage_limits() {
        let huge: Vec<String> = (0..10_000).map(|i| format!("k{i}=v")).collect();
        let b = W3CBaggagePropagator::new().parse(huge.join(",").as_bytes());
        assert_eq!(b.len(), 64);
        let b = W3CBaggagePropagator::new().parse(format!("k={}", "x".repeat(100_000)).as_bytes());
        assert!(b.is_empty());
    }
}
