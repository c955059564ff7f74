//! Propagators: span contexts to and from carriers, exact to the byte.
//!
//! | propagator | headers |
//! | --- | --- |
//! | [`JaegerPropagator`] | `uber-trace-id`, `uberctx-{key}`, `jaeger-debug-id`, `jaeger-baggage`; plus Jaeger's binary format |
//! | [`TraceContextPropagator`] | W3C `traceparent`, `tracestate` |
//! | [`W3CBaggagePropagator`] | W3C `baggage` |
//! | [`B3Propagator`] | B3 multi (`x-b3-*`) and single (`b3`) |
//! | [`CompositePropagator`] | extracts the first format present, injects all |
//!
//! Extraction never panics and never trusts its input: a malformed value
//! gives an [`ExtractError`] naming the header and the reason, oversized
//! values are refused before any allocation, and baggage is bounded by
//! [`BaggageLimits`](crate::BaggageLimits).

use std::borrow::Cow;
use std::fmt;

use crate::{Extractor, Format, Injector, SpanContext};

mod b3;
mod composite;
mod jaeger;
mod w3c;

pub use b3::{B3Encoding, B3Propagator};
pub use composite::CompositePropagator;
pub use jaeger::{JaegerHeaders, JaegerPropagator};
pub use w3c::{TraceContextPropagator, W3CBaggagePropagator};

/// Why a span context could not be extracted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExtractError {
    /// A header (or the binary blob) is present but not valid.
    #[error("malformed {header}: {reason}")]
    Malformed {
        /// The header, or `"binary"`.
        header: Cow<'static, str>,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The propagator has no encoding for this format.
    #[error("the {propagator} propagator does not support the {format} format")]
    UnsupportedFormat {
        /// The propagator.
        propagator: &'static str,
        /// The format.
        format: &'static str,
    },
}

impl ExtractError {
    pub(crate) fn malformed(header: &str, reason: &'static str) -> Self {
        ExtractError::Malformed {
            header: Cow::Owned(header.to_owned()),
            reason,
        }
    }

    pub(crate) fn malformed_static(header: &'static str, reason: &'static str) -> Self {
        ExtractError::Malformed {
            header: Cow::Borrowed(header),
            reason,
        }
    }
}

/// Why a span context could not be injected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InjectError {
    /// The propagator has no encoding for this format.
    #[error("the {propagator} propagator does not support the {format} format")]
    UnsupportedFormat {
        /// The propagator.
        propagator: &'static str,
        /// The format.
        format: &'static str,
    },
}

/// Writes span contexts into carriers and reads them back.
///
/// Implementations must not panic on any input, must bound the memory they
/// allocate by the configured limits, and should return `Ok(None)` when
/// their headers are absent and `Err` when present but invalid.
pub trait Propagator: Send + Sync + fmt::Debug {
    /// Writes `cx` into `carrier`. Invalid contexts are not written.
    fn inject(&self, cx: &SpanContext, format: Format, carrier: &mut dyn Injector);

    /// Reads a context from `carrier`.
    ///
    /// The result may be an invalid context that carries only baggage, a
    /// debug id or a sampling decision; see [`SpanContext`].
    fn extract(
        &self,
        format: Format,
        carrier: &dyn Extractor,
    ) -> Result<Option<SpanContext>, ExtractError>;

    /// Appends the binary encoding of `cx` to `out`.
    fn inject_binary(&self, cx: &SpanContext, out: &mut Vec<u8>) -> Result<(), InjectError> {
        let _ = (cx, out);
        Err(InjectError::UnsupportedFormat {
            propagator: self.name(),
            format: "binary",
        })
    }

    /// Reads a context from its binary encoding.
    fn extract_binary(&self, data: &[u8]) -> Result<Option<SpanContext>, ExtractError> {
        let _ = data;
        Err(ExtractError::UnsupportedFormat {
            propagator: self.name(),
            format: "binary",
        })
    }

    /// A short name for messages (`"jaeger"`, `"tracecontext"`, ...).
    fn name(&self) -> &'static str;

    /// Whether extraction can yield baggage or a debug id. A
    /// [`CompositePropagator`] that already found a trace context skips
    /// the propagators that cannot add anything to it. Default `true`.
    #[doc(hidden)]
    fn extracts_extras(&self) -> bool {
        true
    }

    /// The fixed header names this propagator writes, so that a composite
    /// that only reads a format can remove stale copies a proxy forwarded.
    /// Prefixed families (`uberctx-*`) are not listed. Default: none.
    fn fields(&self) -> &'static [&'static str] {
        &[]
    }

    /// Whether `name` (a lower-case header name) is a header this
    /// propagator reads or writes, custom names and prefixed families
    /// (`uberctx-*`) included. Client adapters remove such headers from
    /// forwarded requests before injecting. Default: one of
    /// [`fields`](Self::fields).
    fn is_field(&self, name: &str) -> bool {
        self.fields().contains(&name)
    }
}

/// A propagator that writes nothing and finds nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoopPropagator;

impl Propagator for NoopPropagator {
    fn inject(&self, _: &SpanContext, _: Format, _: &mut dyn Injector) {}

    fn extract(&self, _: Format, _: &dyn Extractor) -> Result<Option<SpanContext>, ExtractError> {
        Ok(None)
    }

    fn name(&self) -> &'static str {
        "noop"
    }
}

impl<P: Propagator + ?Sized> Propagator for Box<P> {
    fn inject(&self, cx: &SpanContext, format: Format, carrier: &mut dyn Injector) {
        (**self).inject(cx, format, carrier);
    }
    fn extract(
        &self,
        format: Format,
        carrier: &dyn Extractor,
    ) -> Result<Option<SpanContext>, ExtractError> {
        (**self).extract(format, carrier)
    }
    fn inject_binary(&self, cx: &SpanContext, out: &mut Vec<u8>) -> Result<(), InjectError> {
        (**self).inject_binary(cx, out)
    }
    fn extract_binary(&self, data: &[u8]) -> Result<Option<SpanContext>, ExtractError> {
        (**self).extract_binary(data)
    }
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn extracts_extras(&self) -> bool {
        (**self).extracts_extras()
    }
    fn fields(&self) -> &'static [&'static str] {
        (**self).fields()
    }
    fn is_field(&self, name: &str) -> bool {
        (**self).is_field(name)
    }
}

impl<P: Propagator + ?Sized> Propagator for std::sync::Arc<P> {
    fn inject(&self, cx: &SpanContext, format: Format, carrier: &mut dyn Injector) {
        (**self).inject(cx, format, carrier);
    }
    fn extract(
        &self,
        format: Format,
        carrier: &dyn Extractor,
    ) -> Result<Option<SpanContext>, ExtractError> {
        (**self).extract(format, carrier)
    }
    fn inject_binary(&self, cx: &SpanContext, out: &mut Vec<u8>) -> Result<(), InjectError> {
        (**self).inject_binary(cx, out)
    }
    fn extract_binary(&self, data: &[u8]) -> Result<Option<SpanContext>, ExtractError> {
        (**self).extract_binary(data)
    }
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn extracts_extras(&self) -> bool {
        (**self).extracts_extras()
    }
    fn fields(&self) -> &'static [&'static str] {
        (**self).fields()
    }
    fn is_field(&self, name: &str) -> bool {
        (**self).is_field(name)
    }
}

/// Percent-encoding helpers shared by the Jaeger and W3C codecs.
pub(crate) mod encoding {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};

    /// Everything but RFC 3986 unreserved characters is escaped, so a value
    /// decodes the same with Go's `QueryUnescape`, Python's `unquote` and
    /// `unquote_plus`, and W3C baggage parsers (a space is `%20`, never `+`).
    pub(crate) const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');

    pub(crate) fn encode(value: &str) -> String {
        percent_encoding::utf8_percent_encode(value, COMPONENT).to_string()
    }

    /// Decodes `%XX` escapes and, when `plus_is_space`, `+` as a space.
    /// Invalid escapes are kept literally (as Go and Python do); the result
    /// must be UTF-8.
    pub(crate) fn decode(value: &[u8], plus_is_space: bool) -> Option<String> {
        if !value
            .iter()
            .any(|&b| b == b'%' || (plus_is_space && b == b'+'))
        {
            return std::str::from_utf8(value).ok().map(str::to_owned);
        }
        let decoded: Vec<u8> = if plus_is_space && value.contains(&b'+') {
            let replaced: Vec<u8> = value
                .iter()
                .map(|&b| if b == b'+' { b' ' } else { b })
                .collect();
            percent_encoding::percent_decode(&replaced).collect()
        } else {
            percent_encoding::percent_decode(value).collect()
        };
        String::from_utf8(decoded).ok()
    }
}
