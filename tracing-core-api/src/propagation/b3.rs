//! Zipkin's B3 propagation, multi-header and single-header.

use super::{ExtractError, Propagator};
use crate::id::{ascii_string, push_hex_u64, push_trace_id};
use crate::{Extractor, Format, Injector, SpanContext, SpanId, TraceFlags, TraceId};

const B3: &str = "b3";
const TRACE_ID: &str = "x-b3-traceid";
const SPAN_ID: &str = "x-b3-spanid";
const PARENT_ID: &str = "x-b3-parentspanid";
const SAMPLED: &str = "x-b3-sampled";
const FLAGS: &str = "x-b3-flags";
const MAX_SINGLE_LEN: usize = 128;

use http::HeaderName;
const B3_H: HeaderName = HeaderName::from_static(B3);
const TRACE_ID_H: HeaderName = HeaderName::from_static(TRACE_ID);
const SPAN_ID_H: HeaderName = HeaderName::from_static(SPAN_ID);
const PARENT_ID_H: HeaderName = HeaderName::from_static(PARENT_ID);
const SAMPLED_H: HeaderName = HeaderName::from_static(SAMPLED);
const FLAGS_H: HeaderName = HeaderName::from_static(FLAGS);

/// Which B3 headers to write on inject.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum B3Encoding {
    /// `x-b3-traceid`, `x-b3-spanid`, `x-b3-parentspanid`, `x-b3-sampled`,
    /// `x-b3-flags`.
    #[default]
    MultiHeader,
    /// One `b3: {trace}-{span}-{sampling}-{parent}` header.
    SingleHeader,
    /// Both.
    Both,
}

/// Zipkin's B3 propagation (<https://github.com/openzipkin/b3-propagation>).
///
/// Extraction accepts both encodings; the single `b3` header wins when both
/// are present, as the specification says. Ids are 16 or 32 hex digits
/// (16 for 64-bit trace ids on inject). Debug (`x-b3-flags: 1`, `d`) maps
/// to the debug and sampled flags; `x-b3-sampled` accepts `1`/`0` and the
/// legacy `true`/`false`. A header carrying only a sampling decision
/// (`b3: 0`, a lone `x-b3-sampled`) gives an invalid context with that
/// decision. B3 has no baggage; compose with
/// [`W3CBaggagePropagator`](super::W3CBaggagePropagator) for it.
#[derive(Clone, Copy, Debug, Default)]
pub struct B3Propagator {
    encoding: B3Encoding,
}

impl B3Propagator {
    /// A propagator injecting multi-header B3.
    pub fn new() -> Self {
        Self::default()
    }

    /// A propagator injecting the given encoding.
    pub fn with_encoding(encoding: B3Encoding) -> Self {
        B3Propagator { encoding }
    }

    fn sampling(v: &[u8]) -> Result<Option<TraceFlags>, &'static str> {
        match v {
            b"1" | b"true" => Ok(Some(TraceFlags::SAMPLED)),
            b"0" | b"false" => Ok(Some(TraceFlags::NONE)),
            b"d" => Ok(Some(TraceFlags::SAMPLED.with_debug(true))),
            _ => Err("sampling state must be 1, 0 or d"),
        }
    }

    fn trace_id(v: &[u8]) -> Result<TraceId, &'static str> {
        if v.len() != 16 && v.len() != 32 {
            return Err("trace id is not 16 or 32 hex digits");
        }
        TraceId::from_hex(v)
            .filter(|t| t.is_valid())
            .ok_or("trace id is not non-zero hex")
    }

    fn span_id(v: &[u8]) -> Result<SpanId, &'static str> {
        if v.len() != 16 {
            return Err("span id is not 16 hex digits");
        }
        SpanId::from_hex(v)
            .filter(|s| s.is_valid())
            .ok_or("span id is not non-zero hex")
    }

    /// Parses a single `b3` header value.
    pub fn parse_single(v: &[u8]) -> Result<SpanContext, &'static str> {
        if v.len() > MAX_SINGLE_LEN {
            return Err("value too long");
        }
        if v.len() == 1 {
            let flags = Self::sampling(v)?.unwrap_or_default();
            return Ok(SpanContext::default().with_flags(flags));
        }
        let mut parts = v.split(|&b| b == b'-');
        let trace = Self::trace_id(parts.next().unwrap_or_default())?;
        let span = Self::span_id(parts.next().ok_or("missing span id")?)?;
        let mut cx = SpanContext::new(trace, span, TraceFlags::NONE).with_sampling_decided(false);
        if let Some(s) = parts.next() {
            cx = cx.with_flags(Self::sampling(s)?.unwrap_or_default());
        }
        if let Some(p) = parts.next() {
            cx = cx.with_parent_id(Self::span_id(p)?);
        }
        if parts.next().is_some() {
            return Err("too many fields");
        }
        Ok(cx)
    }

    fn extract_multi(carrier: &dyn Extractor) -> Result<Option<SpanContext>, ExtractError> {
        let e = |h: &'static str| move |r| ExtractError::malformed_static(h, r);
        let flags = match carrier.get_header(&FLAGS_H) {
            Some(b"1") => Some(TraceFlags::SAMPLED.with_debug(true)),
            Some(b"0") | None => None,
            Some(_) => return Err(ExtractError::malformed_static(FLAGS, "must be 1 or 0")),
        };
        let flags = match (flags, carrier.get_header(&SAMPLED_H)) {
            (Some(f), _) => Some(f),
            (None, Some(v)) => Self::sampling(v).map_err(e(SAMPLED))?,
            (None, None) => None,
        };
        let (trace, span) = (
            carrier.get_header(&TRACE_ID_H),
            carrier.get_header(&SPAN_ID_H),
        );
        let mut cx = match (trace, span) {
            (None, None) => match flags {
                Some(f) => return Ok(Some(SpanContext::default().with_flags(f))),
                None => return Ok(None),
            },
            (Some(t), Some(s)) => SpanContext::new(
                Self::trace_id(t).map_err(e(TRACE_ID))?,
                Self::span_id(s).map_err(e(SPAN_ID))?,
                TraceFlags::NONE,
            )
            .with_sampling_decided(false),
            (Some(_), None) => return Err(ExtractError::malformed_static(SPAN_ID, "missing")),
            (None, Some(_)) => return Err(ExtractError::malformed_static(TRACE_ID, "missing")),
        };
        if let Some(f) = flags {
            cx = cx.with_flags(f);
        }
        if let Some(p) = carrier.get_header(&PARENT_ID_H) {
            cx = cx.with_parent_id(Self::span_id(p).map_err(e(PARENT_ID))?);
        }
        Ok(Some(cx))
    }

    fn sampling_char(cx: &SpanContext) -> Option<char> {
        if cx.is_debug() {
            Some('d')
        } else if cx.is_sampled() {
            Some('1')
        } else if cx.is_sampling_decided() {
            Some('0')
        } else {
            None
        }
    }
}

impl Propagator for B3Propagator {
    fn inject(&self, cx: &SpanContext, _: Format, carrier: &mut dyn Injector) {
        if !cx.is_valid() {
            return;
        }
        let mut trace = Vec::with_capacity(if cx.trace_id().is_64bit() { 16 } else { 32 });
        push_trace_id(&mut trace, cx.trace_id());
        let mut span = Vec::with_capacity(16);
        push_hex_u64(&mut span, cx.span_id().to_u64());
        if matches!(self.encoding, B3Encoding::SingleHeader | B3Encoding::Both) {
            let mut s = Vec::with_capacity(trace.len() + 36);
            s.extend_from_slice(&trace);
            s.push(b'-');
            s.extend_from_slice(&span);
            if let Some(c) = Self::sampling_char(cx) {
                s.push(b'-');
                s.push(c as u8);
                if cx.parent_id().is_valid() {
                    s.push(b'-');
                    push_hex_u64(&mut s, cx.parent_id().to_u64());
                }
            }
            carrier.set_header(&B3_H, ascii_string(s));
        }
        if matches!(self.encoding, B3Encoding::MultiHeader | B3Encoding::Both) {
            if cx.parent_id().is_valid() {
                let mut p = Vec::with_capacity(16);
                push_hex_u64(&mut p, cx.parent_id().to_u64());
                carrier.set_header(&PARENT_ID_H, ascii_string(p));
            }
            carrier.set_header(&TRACE_ID_H, ascii_string(trace));
            carrier.set_header(&SPAN_ID_H, ascii_string(span));
            match Self::sampling_char(cx) {
                // Debug implies sampled; the specification says not to send both.
                Some('d') => carrier.set_header(&FLAGS_H, "1".to_owned()),
                Some(c) => carrier.set_header(&SAMPLED_H, c.to_string()),
                None => {}
            }
        }
    }

    fn extract(
        &self,
        _: Format,
        carrier: &dyn Extractor,
    ) -> Result<Option<SpanContext>, ExtractError> {
        if let Some(v) = carrier.get_header(&B3_H) {
            return Self::parse_single(v)
                .map(Some)
                .map_err(|r| ExtractError::malformed_static(B3, r));
        }
        Self::extract_multi(carrier)
    }

    fn name(&self) -> &'static str {
        "b3"
    }

    fn extracts_extras(&self) -> bool {
        false
    }

    fn fields(&self) -> &'static [&'static str] {
        &[B3, TRACE_ID, SPAN_ID, PARENT_ID, SAMPLED, FLAGS]
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

    #[test]
    fn single_header_spec_examples() {
        let cx = B3Propagator::parse_single(
            b"80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90",
        )
        .unwrap();
        assert_eq!(cx.trace_id().to_hex32(), "80f198ee56343ba864fe8b2a57d3eff7");
        assert_eq!(cx.span_id().to_string(), "e457b5a2e4d86bd1");
        assert_eq!(cx.parent_id().to_string(), "05e3ac9a4f6e3b90");
        assert!(cx.is_sampled());
        let cx = B3Propagator::parse_single(b"a3ce929d0e0e4736-00f067aa0ba902b7-d").unwrap();
        assert!(cx.is_debug() && cx.is_sampled());
        let cx = B3Propagator::parse_single(b"a3ce929d0e0e4736-00f067aa0ba902b7").unwrap();
        assert!(!cx.is_sampling_decided());
        let cx = B3Propagator::parse_single(b"0").unwrap();
        assert!(!cx.is_valid() && cx.is_sampling_decided() && !cx.is_sampled());
        for bad in [
            "",
            "x",
            "abc-def",
            "a3ce929d0e0e4736-00f067aa0ba902b7-2",
            "a3ce929d0e0e4736-00f067aa0ba902b7-1-0-0",
            "0000000000000000-00f067aa0ba902b7-1",
        ] {
            assert!(B3Propagator::parse_single(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn multi_header_examples() {
        let p = B3Propagator::new();
        let h = map(&[
            ("X-B3-TraceId", "80f198ee56343ba864fe8b2a57d3eff7"),
            ("X-B3-ParentSpanId", "05e3ac9a4f6e3b90"),
            ("X-B3-SpanId", "e457b5a2e4d86bd1"),
            ("X-B3-Sampled", "1"),
        ]);
        let cx = p.extract(Format::HttpHeaders, &h).unwrap().unwrap();
        assert!(cx.is_sampled());
        assert_eq!(cx.parent_id().to_string(), "05e3ac9a4f6e3b90");
        let mut out = HashMap::new();
        p.inject(&cx, Format::HttpHeaders, &mut out);
        assert_eq!(
            out,
            map(&[
                ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
                ("x-b3-parentspanid", "05e3ac9a4f6e3b90"),
                ("x-b3-spanid", "e457b5a2e4d86bd1"),
                ("x-b3-sampled", "1"),
            ])
        );
        let debug = p
            .extract(Format::HttpHeaders, &map(&[("x-b3-flags", "1")]))
            .unwrap()
            .unwrap();
        assert!(debug.is_debug() && !debug.is_valid());
        assert!(p
            .extract(Format::HttpHeaders, &map(&[("x-b3-traceid", "abc")]))
            .is_err());
        let mut single = HashMap::new();
        B3Propagator::with_encoding(B3Encoding::SingleHeader).inject(
            &cx,
            Format::HttpHeaders,
            &mut single,
        );
        assert_eq!(
            single["b3"],
            "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90"
        );
    }
}
