//! Several propagators as one.

use super::{ExtractError, InjectError, Propagator};
use crate::{Extractor, Format, Injector, SpanContext};

/// Injects every configured format; extracts the trace context from the
/// *first* propagator (in the order given) that finds a valid one, and
/// merges the baggage, debug id and sampling-only results of the others into
/// it.
///
/// A malformed header in one format does not hide a valid one in another;
/// the error is returned only when no propagator found a valid context.
/// (OpenTelemetry's composite lets the last propagator win, which makes the
/// order of `OTEL_PROPAGATORS` surprising; here the first listed wins.)
///
/// ```
/// use std::collections::HashMap;
/// use opentracing_api::{CompositePropagator, Format, JaegerPropagator, Propagator,
///     TraceContextPropagator, W3CBaggagePropagator};
/// let p = CompositePropagator::new(vec![
///     Box::new(TraceContextPropagator::new()),
///     Box::new(W3CBaggagePropagator::new()),
///     Box::new(JaegerPropagator::new()),
/// ]);
/// let mut h = HashMap::new();
/// h.insert("uber-trace-id".to_string(), "1:2:0:1".to_string());
/// h.insert("baggage".to_string(), "tenant=acme".to_string());
/// let cx = p.extract(Format::HttpHeaders, &h).unwrap().unwrap();
/// assert_eq!(cx.span_id().to_u64(), 2);
/// assert_eq!(cx.baggage_item("tenant"), Some("acme"));
/// ```
#[derive(Debug)]
pub struct CompositePropagator {
    propagators: Vec<Box<dyn Propagator>>,
    /// Read after `propagators`, never written: formats to understand from
    /// callers without sending them on (B3 from Zipkin-instrumented peers).
    extract_only: Vec<Box<dyn Propagator>>,
    /// The header names of `extract_only`, removed on inject; parsed once
    /// here, not on every call (most are not standard names, and parsing
    /// one allocates).
    stale_fields: Vec<http::HeaderName>,
}

impl CompositePropagator {
    /// A composite of `propagators`, in priority order.
    pub fn new(propagators: Vec<Box<dyn Propagator>>) -> Self {
        CompositePropagator {
            propagators,
            extract_only: Vec::new(),
            stale_fields: Vec::new(),
        }
    }

    /// Also extracts these formats (after the others), without injecting
    /// them.
    pub fn extracting_also(mut self, propagators: Vec<Box<dyn Propagator>>) -> Self {
        self.stale_fields = propagators
            .iter()
            .flat_map(|p| Propagator::fields(&**p))
            .filter_map(|name| http::HeaderName::from_bytes(name.as_bytes()).ok())
            .collect();
        self.extract_only = propagators;
        self
    }

    /// The propagators.
    pub fn propagators(&self) -> &[Box<dyn Propagator>] {
        &self.propagators
    }
}

impl Propagator for CompositePropagator {
    fn inject(&self, cx: &SpanContext, format: Format, carrier: &mut dyn Injector) {
        for p in &self.propagators {
            p.inject(cx, format, carrier);
        }
        // Formats only read must not go out stale (a proxy forwarding the
        // headers it received would otherwise send the caller's B3 ids next
        // to this span's context).
        for name in &self.stale_fields {
            carrier.remove(name);
        }
    }

    fn extract(
        &self,
        format: Format,
        carrier: &dyn Extractor,
    ) -> Result<Option<SpanContext>, ExtractError> {
        let mut found: Option<SpanContext> = None;
        let mut partial: Option<SpanContext> = None;
        let mut first_error = None;
        for p in self.propagators.iter().chain(&self.extract_only) {
            // A trace context with a sampling decision is found: only
            // baggage or a debug id could still be added, so skip the
            // propagators that carry neither.
            if found.as_ref().is_some_and(SpanContext::is_sampling_decided) && !p.extracts_extras()
            {
                continue;
            }
            match p.extract(format, carrier) {
                Ok(Some(cx)) if cx.is_valid() && found.is_none() => found = Some(cx),
                Ok(Some(cx)) => {
                    partial = Some(match partial {
                        None => cx,
                        Some(mut acc) => {
                            if !acc.is_sampling_decided() && cx.is_sampling_decided() {
                                acc = acc.with_flags(cx.flags());
                            }
                            acc.baggage_mut().merge_missing(cx.baggage());
                            if acc.debug_id().is_none() && cx.debug_id().is_some() {
                                acc = acc.with_debug_id(cx.debug_id());
                            }
                            acc
                        }
                    });
                }
                Ok(None) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match (found, partial) {
            (Some(mut cx), Some(extra)) => {
                if !cx.is_sampling_decided() && extra.is_sampling_decided() {
                    cx = cx.with_flags(extra.flags());
                }
                cx.baggage_mut().merge_missing(extra.baggage());
                if cx.debug_id().is_none() && extra.debug_id().is_some() {
                    cx = cx.with_debug_id(extra.debug_id());
                }
                Ok(Some(cx))
            }
            (Some(cx), None) => Ok(Some(cx)),
            (None, partial) => match first_error {
                Some(e) => Err(e),
                None => Ok(partial),
            },
        }
    }

    fn inject_binary(&self, cx: &SpanContext, out: &mut Vec<u8>) -> Result<(), InjectError> {
        let mut last = None;
        for p in &self.propagators {
            match p.inject_binary(cx, out) {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(InjectError::UnsupportedFormat {
            propagator: "composite",
            format: "binary",
        }))
    }

    fn extract_binary(&self, data: &[u8]) -> Result<Option<SpanContext>, ExtractError> {
        let mut last = None;
        for p in &self.propagators {
            match p.extract_binary(data) {
                Err(e @ ExtractError::UnsupportedFormat { .. }) => last = Some(e),
                other => return other,
            }
        }
        Err(last.unwrap_or(ExtractError::UnsupportedFormat {
            propagator: "composite",
            format: "binary",
        }))
    }

    fn name(&self) -> &'static str {
        "composite"
    }

    fn is_field(&self, name: &str) -> bool {
        self.propagators
            .iter()
            .chain(&self.extract_only)
            .any(|p| p.is_field(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{B3Propagator, JaegerPropagator, TraceContextPropagator, W3CBaggagePropagator};
    use std::collections::HashMap;

    fn all() -> CompositePropagator {
        CompositePropagator::new(vec![
            Box::new(JaegerPropagator::new()),
            Box::new(TraceContextPropagator::new()),
            Box::new(W3CBaggagePropagator::new()),
            Box::new(B3Propagator::new()),
        ])
    }

    #[test]
    fn first_valid_wins_and_malformed_does_not_hide_valid() {
        let mut h = HashMap::new();
        h.insert("uber-trace-id".to_owned(), "garbage".to_owned());
        h.insert(
            "traceparent".to_owned(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned(),
        );
        h.insert("x-b3-traceid".to_owned(), "0000000000000001".to_owned());
        h.insert("x-b3-spanid".to_owned(), "0000000000000002".to_owned());
        let cx = all().extract(Format::HttpHeaders, &h).unwrap().unwrap();
        assert_eq!(cx.span_id().to_string(), "00f067aa0ba902b7");
        h.remove("traceparent");
        h.remove("x-b3-traceid");
        h.remove("x-b3-spanid");
        assert!(all().extract(Format::HttpHeaders, &h).is_err());
    }

    #[test]
    fn formats_only_read_are_removed_on_inject_from_small_and_large_maps() {
        let p = CompositePropagator::new(vec![Box::new(TraceContextPropagator::new())])
            .extracting_also(vec![Box::new(B3Propagator::new())]);
        let cx = SpanContext::new(
            crate::TraceId::from_u64(1),
            crate::SpanId::from_u64(2),
            crate::TraceFlags::SAMPLED,
        );
        for others in [0, 3, 30] {
            let mut h = http::HeaderMap::new();
            for i in 0..others {
                h.insert(
                    http::HeaderName::from_bytes(format!("x-other-{i}").as_bytes()).unwrap(),
                    http::HeaderValue::from_static("1"),
                );
            }
            h.insert("x-b3-traceid", http::HeaderValue::from_static("1"));
            h.insert("B3", http::HeaderValue::from_static("1-2-1"));
            p.inject(&cx, Format::HttpHeaders, &mut h);
            assert!(
                h.get("x-b3-traceid").is_none() && h.get("b3").is_none(),
                "{others}"
            );
            assert!(h.get("traceparent").is_some());
            assert_eq!(h.len(), others + 1);
        }
    }

    #[test]
    fn injects_every_format_and_binary_falls_through() {
        let cx = SpanContext::new(
            crate::TraceId::from_u64(1),
            crate::SpanId::from_u64(2),
            crate::TraceFlags::SAMPLED,
        )
        .with_baggage(crate::Baggage::from_iter([("k", "v")]));
        let mut h = HashMap::new();
        all().inject(&cx, Format::HttpHeaders, &mut h);
        let mut keys: Vec<_> = h.keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "baggage",
                "traceparent",
                "uber-trace-id",
                "uberctx-k",
                "x-b3-sampled",
                "x-b3-spanid",
                "x-b3-traceid"
            ]
        );
        let mut buf = Vec::new();
        all().inject_binary(&cx, &mut buf).unwrap();
        assert_eq!(
            all().extract_binary(&buf).unwrap().unwrap().trace_id(),
            cx.trace_id()
        );
        let w3c = CompositePropagator::new(vec![Box::new(TraceContextPropagator::new())]);
        assert!(matches!(
            w3c.extract_binary(&buf),
            Err(ExtractError::UnsupportedFormat { .. })
        ));
    }
}

#[cfg(test)]
mod skip_tests {
    use super::*;
    use crate::{B3Propagator, TraceContextPropagator};
    use std::collections::HashMap;

    #[test]
    fn an_undecided_context_still_takes_a_later_sampling_decision() {
        let p = CompositePropagator::new(vec![
            Box::new(B3Propagator::new()),
            Box::new(TraceContextPropagator::new()),
        ]);
        let mut h = HashMap::new();
        h.insert(
            "x-b3-traceid".to_owned(),
            "4bf92f3577b34da6a3ce929d0e0e4736".to_owned(),
        );
        h.insert("x-b3-spanid".to_owned(), "00f067aa0ba902b7".to_owned());
        h.insert(
            "traceparent".to_owned(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned(),
        );
        let cx = p.extract(Format::HttpHeaders, &h).unwrap().unwrap();
        assert!(cx.is_sampling_decided() && cx.is_sampled());
    }

    #[test]
    fn formats_only_read_are_cleared_on_inject() {
        let p = CompositePropagator::new(vec![Box::new(TraceContextPropagator::new())])
            .extracting_also(vec![Box::new(B3Propagator::new())]);
        let mut h = http::HeaderMap::new();
        h.insert(
            "x-b3-traceid",
            http::HeaderValue::from_static("0000000000000001"),
        );
        h.insert(
            "b3",
            http::HeaderValue::from_static("0000000000000001-0000000000000002-1"),
        );
        let cx = SpanContext::new(
            crate::TraceId::from_u64(9),
            crate::SpanId::from_u64(8),
            crate::TraceFlags::SAMPLED,
        );
        p.inject(&cx, Format::HttpHeaders, &mut h);
        assert!(h.contains_key("traceparent"));
        assert!(
            !h.contains_key("x-b3-traceid") && !h.contains_key("b3"),
            "{h:?}"
        );
    }
}
