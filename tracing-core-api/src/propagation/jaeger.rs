//! Jaeger's native propagation format.

use std::borrow::Cow;

use http::header::{HeaderName, InvalidHeaderName};

use super::encoding;
use super::{ExtractError, InjectError, Propagator};
use crate::id::{ascii_string, push_hex_u64, push_trace_id};
use crate::{
    Baggage, BaggageLimits, Extractor, Format, Injector, SpanContext, SpanId, TraceFlags, TraceId,
};

/// Longest `uber-trace-id` value we parse (the longest valid one is 32 + 16 +
/// 16 + 2 digits and 3 colons; room is left for URL-encoded colons).
const MAX_TRACE_HEADER_LEN: usize = 128;
/// Longest `jaeger-debug-id` accepted.
const MAX_DEBUG_ID_LEN: usize = 256;

/// Header names of the Jaeger format, configurable as in the Jaeger clients'
/// `HeadersConfig`.
///
/// ```
/// use opentracing_api::{JaegerHeaders, JaegerPropagator};
/// let headers = JaegerHeaders::default().with_trace_context("X-Trace-Id").unwrap();
/// let propagator = JaegerPropagator::new().with_headers(headers);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct JaegerHeaders {
    /// The trace context header, `uber-trace-id`.
    pub trace_context: HeaderName,
    /// The per-item baggage prefix, `uberctx-` (lower-case).
    pub baggage_prefix: Cow<'static, str>,
    /// The debug id header, `jaeger-debug-id`.
    pub debug_id: HeaderName,
    /// The comma-separated baggage header, `jaeger-baggage`.
    pub baggage: HeaderName,
}

impl Default for JaegerHeaders {
    fn default() -> Self {
        JaegerHeaders {
            trace_context: HeaderName::from_static("uber-trace-id"),
            baggage_prefix: Cow::Borrowed("uberctx-"),
            debug_id: HeaderName::from_static("jaeger-debug-id"),
            baggage: HeaderName::from_static("jaeger-baggage"),
        }
    }
}

impl JaegerHeaders {
    /// Sets the trace context header name.
    pub fn with_trace_context(mut self, name: &str) -> Result<Self, InvalidHeaderName> {
        self.trace_context = HeaderName::from_bytes(name.as_bytes())?;
        Ok(self)
    }

    /// Sets the debug id header name.
    pub fn with_debug_id(mut self, name: &str) -> Result<Self, InvalidHeaderName> {
        self.debug_id = HeaderName::from_bytes(name.as_bytes())?;
        Ok(self)
    }

    /// Sets the comma-separated baggage header name.
    pub fn with_baggage(mut self, name: &str) -> Result<Self, InvalidHeaderName> {
        self.baggage = HeaderName::from_bytes(name.as_bytes())?;
        Ok(self)
    }

    /// Sets the baggage prefix; it must itself be a valid header name.
    pub fn with_baggage_prefix(mut self, prefix: &str) -> Result<Self, InvalidHeaderName> {
        let checked = HeaderName::from_bytes(prefix.as_bytes())?;
        self.baggage_prefix = Cow::Owned(checked.as_str().to_owned());
        Ok(self)
    }
}

/// The Jaeger propagation format, as the Jaeger clients write it.
///
/// - `uber-trace-id: {trace-id}:{span-id}:{parent-span-id}:{flags}`: ids in
///   lower-case hex, zero-padded to 16 digits (32 for a 128-bit trace id),
///   flags in bare hex (`1`, `3`). On extract, shorter ids are left-padded,
///   the value may be URL-encoded, and flags are one or two *hex* digits
///   (jaeger-client-go parses them as decimal, a bug not copied here).
/// - `uberctx-{key}: {value}`: one header per baggage item; in
///   [`Format::HttpHeaders`] values are percent-encoded (a space is `%20`,
///   which Go and Python clients both decode), and on extract `+` also
///   decodes to a space, as Go writes it. Keys are lower-cased on extract.
/// - `jaeger-debug-id: {id}`: extracted only; asks the tracer to force a
///   debug trace.
/// - `jaeger-baggage: k1=v1, k2=v2`: extracted only.
///
/// ```
/// use std::collections::HashMap;
/// use opentracing_api::{Format, JaegerPropagator, Propagator};
/// let mut headers = HashMap::new();
/// headers.insert("uber-trace-id".to_string(), "a1b2c3d4e5f60718:1122334455667788:0:1".to_string());
/// headers.insert("uberctx-customer".to_string(), "Rachel%27s%20Floral".to_string());
/// let cx = JaegerPropagator::new().extract(Format::HttpHeaders, &headers).unwrap().unwrap();
/// assert_eq!(cx.trace_id().to_string(), "a1b2c3d4e5f60718");
/// assert!(cx.is_sampled());
/// assert_eq!(cx.baggage_item("customer"), Some("Rachel's Floral"));
/// ```
#[derive(Clone, Debug, Default)]
pub struct JaegerPropagator {
    headers: JaegerHeaders,
    limits: BaggageLimits,
}

impl JaegerPropagator {
    /// The propagator with the standard header names and default limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses other header names.
    pub fn with_headers(mut self, headers: JaegerHeaders) -> Self {
        self.headers = headers;
        self
    }

    /// Uses other baggage limits on extract.
    pub fn with_baggage_limits(mut self, limits: BaggageLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Formats a context as the `uber-trace-id` value.
    pub fn format_trace_header(cx: &SpanContext) -> String {
        let flags = cx.flags().to_u8();
        // Exact capacity: `HeaderValue` keeps the buffer without reallocating.
        let len = if cx.trace_id().is_64bit() { 16 } else { 32 } + 36 + usize::from(flags >= 0x10);
        let mut s = Vec::with_capacity(len);
        push_trace_id(&mut s, cx.trace_id());
        s.push(b':');
        push_hex_u64(&mut s, cx.span_id().to_u64());
        s.push(b':');
        push_hex_u64(&mut s, cx.parent_id().to_u64());
        s.push(b':');
        if flags >= 0x10 {
            s.push(hex_digit(flags >> 4));
        }
        s.push(hex_digit(flags & 0xf));
        ascii_string(s)
    }

    /// Parses an `uber-trace-id` value (not URL-encoded).
    pub fn parse_trace_header(value: &[u8]) -> Result<SpanContext, &'static str> {
        // Fast path: the zero-padded form every Go and Java client sends.
        for tlen in [16, 32] {
            let n = value.len();
            if (n == tlen + 36 || n == tlen + 37)
                && value[tlen] == b':'
                && value[tlen + 17] == b':'
                && value[tlen + 34] == b':'
            {
                return Self::parse_fields(
                    &value[..tlen],
                    &value[tlen + 1..tlen + 17],
                    &value[tlen + 18..tlen + 34],
                    &value[tlen + 35..],
                );
            }
        }
        // Padded trace and span ids with a short parent (`...:0:1`, as the
        // OpenTracing Java and Python clients send it): the first two
        // colons are at fixed places, only the tail needs a scan.
        for tlen in [16, 32] {
            if value.len() > tlen + 18 && value[tlen] == b':' && value[tlen + 17] == b':' {
                let tail = &value[tlen + 18..];
                if let Some(c) = tail.iter().position(|&b| b == b':') {
                    let (parent, flags) = (&tail[..c], &tail[c + 1..]);
                    // A colon earlier than expected makes this fail; the
                    // general split below then decides.
                    if let Ok(cx) = Self::parse_fields(
                        &value[..tlen],
                        &value[tlen + 1..tlen + 17],
                        parent,
                        flags,
                    ) {
                        return Ok(cx);
                    }
                }
            }
        }
        // General form (unpadded ids): split on the three colons; a fourth
        // one is an error.
        let colon = |from: &[u8]| from.iter().position(|&b| b == b':');
        let err = "expected 4 colon-separated fields";
        let end = colon(value).ok_or(err)?;
        let (trace, rest) = (&value[..end], &value[end + 1..]);
        let end = colon(rest).ok_or(err)?;
        let (span, rest) = (&rest[..end], &rest[end + 1..]);
        let end = colon(rest).ok_or(err)?;
        let (parent, flags) = (&rest[..end], &rest[end + 1..]);
        if flags.contains(&b':') {
            return Err(err);
        }
        Self::parse_fields(trace, span, parent, flags)
    }

    fn parse_fields(t: &[u8], s: &[u8], p: &[u8], f: &[u8]) -> Result<SpanContext, &'static str> {
        let trace_id = TraceId::from_hex(t).ok_or("trace id is not 1 to 32 hex digits")?;
        let span_id = SpanId::from_hex(s).ok_or("span id is not 1 to 16 hex digits")?;
        let parent_id = SpanId::from_hex(p).ok_or("parent id is not 1 to 16 hex digits")?;
        if f.is_empty() || f.len() > 2 {
            return Err("flags are not 1 or 2 hex digits");
        }
        let flags = crate::id::parse_hex_u64(f).ok_or("flags are not hex")? as u8;
        if !trace_id.is_valid() {
            return Err("trace id is zero");
        }
        if !span_id.is_valid() {
            return Err("span id is zero");
        }
        Ok(
            SpanContext::new(trace_id, span_id, TraceFlags::from_u8(flags))
                .with_parent_id(parent_id),
        )
    }

    fn add_baggage_item(&self, format: Format, key: &str, value: &[u8], baggage: &mut Baggage) {
        let limits = &self.limits;
        if baggage.len() >= limits.max_items || value.len() > limits.max_value_len.saturating_mul(3)
        {
            crate::baggage::count_dropped(1);
            return;
        }
        let k = key[self.headers.baggage_prefix.len()..].to_ascii_lowercase();
        let v = if format == Format::HttpHeaders {
            encoding::decode(value, true)
        } else {
            std::str::from_utf8(value).ok().map(str::to_owned)
        };
        let kept = v.is_some_and(|v| baggage.insert_with_limits(k, v, limits).is_ok());
        if !kept {
            crate::baggage::count_dropped(1);
        }
    }

    /// `jaeger-baggage: k1=v1, k2=v2`, decoded as a whole as Go does.
    fn add_jaeger_baggage(&self, value: &[u8], baggage: &mut Baggage) {
        let limits = &self.limits;
        if value.len() > limits.max_total_len.saturating_mul(3) {
            crate::baggage::count_dropped(1);
            return;
        }
        let Some(decoded) = encoding::decode(value, true) else {
            crate::baggage::count_dropped(1);
            return;
        };
        for pair in decoded.split(',') {
            if let Some((k, v)) = pair.trim().split_once('=') {
                if !k.is_empty()
                    && !v.contains('=')
                    && baggage
                        .insert_with_limits(k.to_owned(), v.to_owned(), limits)
                        .is_err()
                {
                    crate::baggage::count_dropped(1);
                }
            }
        }
    }

    fn parse_debug_id(&self, v: &[u8]) -> Result<Option<String>, ExtractError> {
        if v.is_empty() {
            return Ok(None);
        }
        if v.len() > MAX_DEBUG_ID_LEN {
            return Err(ExtractError::malformed(
                self.headers.debug_id.as_str(),
                "value too long",
            ));
        }
        std::str::from_utf8(v)
            .ok()
            .filter(|s| s.bytes().all(|b| (0x20..0x7f).contains(&b)))
            .map(|s| Some(s.to_owned()))
            .ok_or_else(|| {
                ExtractError::malformed(self.headers.debug_id.as_str(), "not printable ASCII")
            })
    }

    fn parse_trace_value(&self, value: &[u8]) -> Result<SpanContext, ExtractError> {
        let header = self.headers.trace_context.as_str();
        if value.len() > MAX_TRACE_HEADER_LEN {
            return Err(ExtractError::malformed(header, "value too long"));
        }
        // The value may be URL-encoded (Go decodes it); only look for that
        // when the plain parse fails.
        Self::parse_trace_header(value)
            .or_else(|e| {
                if value.contains(&b'%') {
                    let decoded: Vec<u8> = percent_encoding::percent_decode(value).collect();
                    Self::parse_trace_header(&decoded)
                } else {
                    Err(e)
                }
            })
            .map_err(|reason| ExtractError::malformed(header, reason))
    }
}

/// Case-insensitive name comparison, exact bytes first: `HeaderMap` keys
/// are already lower-case, so the slower comparison rarely runs.
#[inline]
fn name_eq(key: &[u8], name: &str) -> bool {
    key.len() == name.len() && (key == name.as_bytes() || key.eq_ignore_ascii_case(name.as_bytes()))
}

fn hex_digit(n: u8) -> u8 {
    b"0123456789abcdef"[usize::from(n & 0xf)]
}

impl Propagator for JaegerPropagator {
    fn inject(&self, cx: &SpanContext, format: Format, carrier: &mut dyn Injector) {
        if !cx.is_valid() {
            return;
        }
        carrier.set_header(&self.headers.trace_context, Self::format_trace_header(cx));
        if cx.baggage().is_empty() {
            return;
        }
        let mut key = String::with_capacity(self.headers.baggage_prefix.len() + 16);
        for (k, v) in cx.baggage().iter() {
            key.clear();
            key.push_str(&self.headers.baggage_prefix);
            key.push_str(k);
            let v = match format {
                Format::HttpHeaders => encoding::encode(v),
                Format::TextMap => v.to_owned(),
            };
            carrier.set(&key, v);
        }
    }

    /// One pass over the carrier: the baggage prefix must be looked for in
    /// every key anyway, and comparing a few names per key is cheaper than
    /// separate lookups of the trace, debug and baggage headers.
    fn extract(
        &self,
        format: Format,
        carrier: &dyn Extractor,
    ) -> Result<Option<SpanContext>, ExtractError> {
        let h = &self.headers;
        let prefix = h.baggage_prefix.as_bytes();
        // The scan only notes where things are; parsing comes after it.
        let mut trace: Option<&[u8]> = None;
        let mut debug: Option<&[u8]> = None;
        let mut baggage = Baggage::new();
        // Most headers of a request are none of ours: reject them on their
        // first byte before any comparison.
        let first = |name: &[u8]| name.first().map(u8::to_ascii_lowercase);
        let firsts = [
            first(h.trace_context.as_str().as_bytes()),
            first(h.debug_id.as_str().as_bytes()),
            first(h.baggage.as_str().as_bytes()),
            first(prefix),
        ];
        let mut visit = |key: &str, value| {
            let kb = key.as_bytes();
            if !firsts.contains(&first(kb)) {
                return;
            }
            let has_prefix = !prefix.is_empty()
                && kb.len() > prefix.len()
                && kb[..prefix.len()].eq_ignore_ascii_case(prefix);
            if has_prefix {
                self.add_baggage_item(format, key, value, &mut baggage);
            } else if name_eq(kb, h.trace_context.as_str()) {
                trace.get_or_insert(value);
            } else if name_eq(kb, h.debug_id.as_str()) {
                debug.get_or_insert(value);
            } else if name_eq(kb, h.baggage.as_str()) {
                self.add_jaeger_baggage(value, &mut baggage);
            }
        };
        carrier.for_each(&mut visit);
        let mut out = match trace {
            Some(value) => self.parse_trace_value(value)?,
            None => SpanContext::default(),
        };
        let debug_id = match debug {
            Some(value) => self.parse_debug_id(value)?,
            None => None,
        };
        if trace.is_none() && debug_id.is_none() && baggage.is_empty() {
            return Ok(None);
        }
        if !baggage.is_empty() {
            *out.baggage_mut() = baggage;
        }
        if debug_id.is_some() {
            out = out.with_debug_id(debug_id.as_deref());
        }
        Ok(Some(out))
    }

    /// Jaeger's binary format: big-endian trace id (high, low), span id,
    /// parent id as u64, flags as u8, then an i32 item count and, per item,
    /// i32-length-prefixed key and value.
    fn inject_binary(&self, cx: &SpanContext, out: &mut Vec<u8>) -> Result<(), InjectError> {
        out.extend_from_slice(&cx.trace_id().high().to_be_bytes());
        out.extend_from_slice(&cx.trace_id().low().to_be_bytes());
        out.extend_from_slice(&cx.span_id().to_u64().to_be_bytes());
        out.extend_from_slice(&cx.parent_id().to_u64().to_be_bytes());
        out.push(cx.flags().to_u8());
        let len_i32 = |n: usize| i32::try_from(n).unwrap_or(i32::MAX).to_be_bytes();
        out.extend_from_slice(&len_i32(cx.baggage().len()));
        for (k, v) in cx.baggage().iter() {
            out.extend_from_slice(&len_i32(k.len()));
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(&len_i32(v.len()));
            out.extend_from_slice(v.as_bytes());
        }
        Ok(())
    }

    fn extract_binary(&self, data: &[u8]) -> Result<Option<SpanContext>, ExtractError> {
        let err = |reason| ExtractError::malformed_static("binary", reason);
        let mut r = Reader(data);
        let high = r.u64().ok_or_else(|| err("truncated trace id"))?;
        let low = r.u64().ok_or_else(|| err("truncated trace id"))?;
        let span = r.u64().ok_or_else(|| err("truncated span id"))?;
        let parent = r.u64().ok_or_else(|| err("truncated parent id"))?;
        let flags = r.take(1).ok_or_else(|| err("truncated flags"))?[0];
        let count = r.i32().ok_or_else(|| err("truncated baggage count"))?;
        let count = usize::try_from(count).map_err(|_| err("negative baggage count"))?;
        // Each item takes at least 8 bytes: a count the data cannot hold is
        // corrupt, and must not drive the loop.
        if count > r.0.len() / 8 {
            return Err(err("baggage count larger than the data"));
        }
        let mut baggage = Baggage::new();
        for _ in 0..count {
            let k = r.string().ok_or_else(|| err("bad baggage key"))?;
            let v = r.string().ok_or_else(|| err("bad baggage value"))?;
            // Over-limit items are dropped, as in the text formats.
            if baggage.insert_with_limits(k, v, &self.limits).is_err() {
                crate::baggage::count_dropped(1);
            }
        }
        if !r.0.is_empty() {
            return Err(err("trailing bytes"));
        }
        let trace_id = TraceId::from_parts(high, low);
        let span_id = SpanId::from_u64(span);
        if !trace_id.is_valid() || !span_id.is_valid() {
            return Err(err("zero trace or span id"));
        }
        Ok(Some(
            SpanContext::new(trace_id, span_id, TraceFlags::from_u8(flags))
                .with_parent_id(SpanId::from_u64(parent))
                .with_baggage(baggage),
        ))
    }

    fn name(&self) -> &'static str {
        "jaeger"
    }

    fn fields(&self) -> &'static [&'static str] {
        &["uber-trace-id", "jaeger-debug-id", "jaeger-baggage"]
    }

    fn is_field(&self, name: &str) -> bool {
        let h = &self.headers;
        let prefix = h.baggage_prefix.as_bytes();
        name.eq_ignore_ascii_case(h.trace_context.as_str())
            || name.eq_ignore_ascii_case(h.debug_id.as_str())
            || name.eq_ignore_ascii_case(h.baggage.as_str())
            || (!prefix.is_empty()
                && name.len() > prefix.len()
                && name.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix))
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)?.try_into().ok().map(u64::from_be_bytes)
    }
    fn i32(&mut self) -> Option<i32> {
        self.take(4)?.try_into().ok().map(i32::from_be_bytes)
    }
    fn string(&mut self) -> Option<String> {
        let len = usize::try_from(self.i32()?).ok()?;
        // `take` checks the length against what is there before anything is
        // allocated, so a hostile length cannot make us reserve memory.
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn extract(pairs: &[(&str, &str)]) -> Result<Option<SpanContext>, ExtractError> {
        JaegerPropagator::new().extract(Format::HttpHeaders, &map(pairs))
    }

    #[test]
    fn formats_like_jaeger_client_go() {
        let cx = SpanContext::new(
            TraceId::from_u64(0xa1b2_c3d4_e5f6_0718),
            SpanId::from_u64(0x1122_3344_5566_7788),
            TraceFlags::SAMPLED,
        );
        assert_eq!(
            JaegerPropagator::format_trace_header(&cx),
            "a1b2c3d4e5f60718:1122334455667788:0000000000000000:1"
        );
        let cx = cx
            .with_trace_id(TraceId::from_parts(1, 2))
            .with_parent_id(SpanId::from_u64(3))
            .with_flags(TraceFlags::from_u8(0x0b));
        assert_eq!(
            JaegerPropagator::format_trace_header(&cx),
            "00000000000000010000000000000002:1122334455667788:0000000000000003:b"
        );
    }

    #[test]
    fn parses_documented_examples() {
        // From the Jaeger client-libraries documentation.
        let cx = extract(&[(
            "uber-trace-id",
            "4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7:0:1",
        )])
        .unwrap()
        .unwrap();
        assert_eq!(cx.trace_id().to_hex32(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(cx.span_id().to_u64(), 0x00f0_67aa_0ba9_02b7);
        assert!(cx.is_sampled() && !cx.is_debug());
        // Python jaeger-client writes unpadded ids.
        let cx = extract(&[("uber-trace-id", "1:2:0:3")]).unwrap().unwrap();
        assert_eq!((cx.trace_id().low(), cx.span_id().to_u64()), (1, 2));
        assert!(cx.is_debug());
        // URL-encoded value, flags in hex (Go would reject "b").
        let cx = extract(&[("uber-trace-id", "abc%3A1%3A0%3Ab")])
            .unwrap()
            .unwrap();
        assert_eq!(cx.flags().to_u8(), 0x0b);
    }

    #[test]
    fn baggage_headers() {
        let cx = extract(&[
            ("uber-trace-id", "1:2:0:1"),
            ("uberctx-User", "alice%20smith"),
            ("uberctx-plus", "a+b"),
            ("jaeger-baggage", "k1=v1, k2=v 2, bad, x=y=z"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(cx.baggage_item("user"), Some("alice smith"));
        assert_eq!(cx.baggage_item("plus"), Some("a b"));
        assert_eq!(cx.baggage_item("k1"), Some("v1"));
        assert_eq!(cx.baggage_item("k2"), Some("v 2"));
        assert_eq!(cx.baggage().len(), 4);

        let mut out = HashMap::new();
        let cx = cx.with_baggage(Baggage::from_iter([("user", "a b,c+é")]));
        JaegerPropagator::new().inject(&cx, Format::HttpHeaders, &mut out);
        assert_eq!(out["uberctx-user"], "a%20b%2Cc%2B%C3%A9");
        let mut out = HashMap::new();
        JaegerPropagator::new().inject(&cx, Format::TextMap, &mut out);
        assert_eq!(out["uberctx-user"], "a b,c+é");
    }

    #[test]
    fn debug_id_and_baggage_without_trace() {
        let cx = extract(&[("jaeger-debug-id", "my-debug"), ("uberctx-k", "v")])
            .unwrap()
            .unwrap();
        assert!(!cx.is_valid());
        assert_eq!(cx.debug_id(), Some("my-debug"));
        assert_eq!(cx.baggage_item("k"), Some("v"));
        assert_eq!(extract(&[("other", "x")]), Ok(None));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "1:2:0",
            "1:2:0:1:5",
            "x:2:0:1",
            "0:2:0:1",
            "1:0:0:1",
            "1:2:0:100",
            "1:2:0:",
            "111111111111111111111111111111111:2:0:1",
            "1:11111111111111111:0:1",
        ] {
            let e = extract(&[("uber-trace-id", bad)]).unwrap_err();
            assert!(
                e.to_string().starts_with("malformed uber-trace-id"),
                "{bad}: {e}"
            );
        }
        assert!(extract(&[("uber-trace-id", &"1".repeat(200))]).is_err());
        assert!(extract(&[("uber-trace-id", "1:2:0:1"), ("jaeger-debug-id", "a\u{7f}")]).is_err());
    }

    #[test]
    fn baggage_limits_apply_on_extract() {
        let mut h = map(&[("uber-trace-id", "1:2:0:1")]);
        for i in 0..500 {
            h.insert(format!("uberctx-k{i}"), "v".repeat(100));
        }
        let cx = JaegerPropagator::new()
            .extract(Format::HttpHeaders, &h)
            .unwrap()
            .unwrap();
        assert!(cx.baggage().len() <= 64);
        assert!(cx.baggage().total_len() <= 8192);
    }

    #[test]
    fn binary_round_trip_and_corruption() {
        let p = JaegerPropagator::new();
        let cx = SpanContext::new(
            TraceId::from_parts(7, 8),
            SpanId::from_u64(9),
            TraceFlags::SAMPLED,
        )
        .with_parent_id(SpanId::from_u64(5))
        .with_baggage(Baggage::from_iter([("a", "b")]));
        let mut buf = Vec::new();
        p.inject_binary(&cx, &mut buf).unwrap();
        assert_eq!(buf.len(), 8 * 4 + 1 + 4 + 4 + 1 + 4 + 1);
        assert_eq!(p.extract_binary(&buf).unwrap(), Some(cx));
        for n in 0..buf.len() {
            assert!(p.extract_binary(&buf[..n]).is_err());
        }
        let mut huge = buf.clone();
        let at = 33 + 4;
        huge[at..at + 4].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(p.extract_binary(&huge).is_err());
    }
}

#[cfg(test)]
mod shortcut_tests {
    use super::*;

    #[test]
    fn the_padded_shortcut_agrees_with_the_general_split() {
        // Short parent (Java / Python style) with padded ids: shortcut.
        let cx = JaegerPropagator::parse_trace_header(
            b"4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7:0:1",
        )
        .unwrap();
        assert_eq!(cx.span_id().to_u64(), 0x00f0_67aa_0ba9_02b7);
        // A colon at the shortcut's position, but an earlier first colon:
        // the general split must decide (this is a valid header).
        let v = b"abc:123456789012:0000000000000001:1";
        assert_eq!(v[16], b':');
        let cx = JaegerPropagator::parse_trace_header(v).unwrap();
        assert_eq!(
            (
                cx.trace_id().low(),
                cx.span_id().to_u64(),
                cx.parent_id().to_u64()
            ),
            (0xabc, 0x1234_5678_9012, 1)
        );
        assert!(
            JaegerPropagator::parse_trace_header(b"4bf92f3577b34da6:00f067aa0ba902b7:0:1:2")
                .is_err()
        );
    }
}
