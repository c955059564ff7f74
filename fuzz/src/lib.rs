//! Shared input decoding for the fuzz targets: the input is split on `\n`
//! into header values for a fixed list of names, and fed to a propagator
//! through both a `HeaderMap` (as a server sees it) and a string map.

use std::collections::HashMap;

use http::{HeaderMap, HeaderName, HeaderValue};
use opentracing_api::{Format, Propagator};

/// Extracts from carriers built from `data`, then re-injects what was
/// accepted, checking the documented invariants.
pub fn run(propagator: &dyn Propagator, names: &[&'static str], data: &[u8]) {
    let mut headers = HeaderMap::new();
    let mut map = HashMap::new();
    for (name, value) in names.iter().cycle().zip(data.split(|&b| b == b'\n')).take(64) {
        if let Ok(v) = HeaderValue::from_bytes(value) {
            headers.append(HeaderName::from_static(name), v);
        }
        map.insert((*name).to_owned(), String::from_utf8_lossy(value).into_owned());
    }
    for format in [Format::HttpHeaders, Format::TextMap] {
        for cx in [propagator.extract(format, &headers), propagator.extract(format, &map)] {
            if let Ok(Some(cx)) = cx {
                assert!(cx.baggage().len() <= 64);
                assert!(cx.baggage().total_len() <= 8192);
                let mut out = HeaderMap::new();
                propagator.inject(&cx, format, &mut out);
                if cx.is_valid() {
                    // What we accept and re-emit, we accept again, unchanged.
                    let again = propagator.extract(format, &out);
                    assert!(matches!(again, Ok(Some(ref c)) if c.trace_id() == cx.trace_id() && c.span_id() == cx.span_id()), "{again:?} != {cx:?}");
                }
            }
        }
    }
}
