//! gRPC metadata as a carrier for the tracer's propagator.
//!
//! gRPC metadata travels as HTTP/2 headers: keys ending in `-bin` carry
//! base64-encoded binary values, every other key an ASCII value. The
//! propagation formats (Jaeger `uber-trace-id` and `uberctx-*`, W3C
//! `traceparent`/`tracestate`/`baggage`, B3) are ASCII, so both carriers
//! here skip `-bin` keys: a `uberctx-user-bin` key is not baggage, and a
//! binary context such as `grpc-trace-bin` is never parsed as text.
//!
//! ```
//! use opentracing_api::{Format, MockTracer, Tracer, TracerExt};
//! use opentracing_tonic::{MetadataExtractor, MetadataInjector};
//! use tonic::metadata::MetadataMap;
//!
//! let tracer = MockTracer::new();
//! let span = tracer.span("call").start();
//! let mut metadata = MetadataMap::new();
//! tracer.inject(span.context(), Format::HttpHeaders, &mut MetadataInjector::new(&mut metadata));
//! assert!(metadata.get("uber-trace-id").is_some());
//!
//! let cx = tracer
//!     .extract(Format::HttpHeaders, &MetadataExtractor::new(&metadata))
//!     .unwrap()
//!     .unwrap();
//! assert_eq!(cx.trace_id(), span.context().trace_id());
//! ```

use std::borrow::Cow;

use http::{HeaderMap, HeaderName};
use opentracing_api::{Extractor, Injector};
use tonic::metadata::MetadataMap;

/// Whether `key` names binary metadata.
fn is_binary(key: &str) -> bool {
    key.len() >= 4 && key.as_bytes()[key.len() - 4..].eq_ignore_ascii_case(b"-bin")
}

/// Reads span contexts from gRPC metadata (a `tonic` `MetadataMap`, or the
/// headers of an `http::Request` a tower layer sees), skipping binary
/// (`-bin`) keys.
#[derive(Clone, Copy, Debug)]
pub struct MetadataExtractor<'a>(&'a HeaderMap);

impl<'a> MetadataExtractor<'a> {
    /// Reads from `metadata`.
    pub fn new(metadata: &'a MetadataMap) -> Self {
        MetadataExtractor(metadata.as_ref())
    }

    /// Reads from the headers of a gRPC request (what a tower layer sees).
    pub fn from_headers(headers: &'a HeaderMap) -> Self {
        MetadataExtractor(headers)
    }
}

impl Extractor for MetadataExtractor<'_> {
    fn get(&self, key: &str) -> Option<&[u8]> {
        if is_binary(key) {
            return None;
        }
        Extractor::get(self.0, key)
    }

    fn get_header(&self, name: &HeaderName) -> Option<&[u8]> {
        if is_binary(name.as_str()) {
            return None;
        }
        self.0.get_header(name)
    }

    fn get_joined(&self, name: &HeaderName) -> Option<Cow<'_, [u8]>> {
        if is_binary(name.as_str()) {
            return None;
        }
        self.0.get_joined(name)
    }

    fn for_each<'a>(&'a self, f: &mut dyn FnMut(&'a str, &'a [u8])) {
        for (k, v) in self.0 {
            if !is_binary(k.as_str()) {
                f(k.as_str(), v.as_bytes());
            }
        }
    }
}

/// Writes span contexts into gRPC metadata (a `tonic` `MetadataMap`, or
/// the headers of an `http::Request`). Binary (`-bin`) keys are never
/// written: a propagator's text value is not base64.
#[derive(Debug)]
pub struct MetadataInjector<'a>(&'a mut HeaderMap);

impl<'a> MetadataInjector<'a> {
    /// Writes into `metadata`.
    pub fn new(metadata: &'a mut MetadataMap) -> Self {
        MetadataInjector(metadata.as_mut())
    }

    /// Writes into the headers of a gRPC request (what a tower layer sees).
    pub fn from_headers(headers: &'a mut HeaderMap) -> Self {
        MetadataInjector(headers)
    }
}

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if !is_binary(key) {
            self.0.set(key, value);
        }
    }

    fn set_header(&mut self, name: &HeaderName, value: String) {
        if !is_binary(name.as_str()) {
            self.0.set_header(name, value);
        }
    }

    fn remove(&mut self, name: &HeaderName) {
        Injector::remove(self.0, name);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use opentracing_api::{Format, MockTracer, Tracer, TracerExt};

    #[test]
    fn binary_keys_are_ignored() {
        let mut m = MetadataMap::new();
        m.insert("uberctx-user", "alice".parse().unwrap());
        m.insert_bin(
            "uberctx-secret-bin",
            tonic::metadata::MetadataValue::from_bytes(b"\x00\x01"),
        );
        m.insert_bin(
            "grpc-trace-bin",
            tonic::metadata::MetadataValue::from_bytes(b"\x00"),
        );
        m.insert("uber-trace-id", "abc:def:0:1".parse().unwrap());
        let e = MetadataExtractor::new(&m);
        assert_eq!(Extractor::get(&e, "grpc-trace-bin"), None);
        let mut keys = Vec::new();
        e.for_each(&mut |k, _| keys.push(k.to_owned()));
        keys.sort();
        assert_eq!(keys, ["uber-trace-id", "uberctx-user"]);
        let cx = MockTracer::new()
            .extract(Format::HttpHeaders, &e)
            .unwrap()
            .unwrap();
        assert_eq!(cx.baggage().get("user"), Some("alice"));
        assert_eq!(cx.baggage().get("secret-bin"), None);
        assert_eq!(cx.baggage().get("secret"), None);
    }

    #[test]
    fn injection_round_trips_with_baggage() {
        let tracer = MockTracer::new();
        let mut span = tracer.span("x").start();
        span.set_baggage_item("tenant", "acme corp").unwrap();
        let mut m = MetadataMap::new();
        let mut i = MetadataInjector::new(&mut m);
        tracer.inject(span.context(), Format::HttpHeaders, &mut i);
        i.set("x-data-bin", "not base64".into());
        assert!(m.get_bin("x-data-bin").is_none());
        let cx = tracer
            .extract(Format::HttpHeaders, &MetadataExtractor::new(&m))
            .unwrap()
            .unwrap();
        assert_eq!(cx.span_id(), span.context().span_id());
        assert_eq!(cx.baggage().get("tenant"), Some("acme corp"));
    }
}
