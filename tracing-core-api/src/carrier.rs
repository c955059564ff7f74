//! Carriers: where propagators write and read span contexts.
//!
//! OpenTracing names three formats. [`Format::HttpHeaders`] and
//! [`Format::TextMap`] use the [`Injector`] / [`Extractor`] traits below,
//! implemented for `http::HeaderMap`, `HashMap<String, String>` and
//! `BTreeMap<String, String>`. The binary format uses byte buffers
//! (`Tracer::inject_binary` / `Tracer::extract_binary`); propagators without a
//! binary encoding return a clear "unsupported format" error.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;

use http::header::{HeaderMap, HeaderName, HeaderValue};

/// The text formats of OpenTracing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Format {
    /// HTTP headers: keys are case-insensitive and values must be valid
    /// header values, so Jaeger URL-encodes baggage values.
    HttpHeaders,
    /// A plain string map: values are written as they are.
    TextMap,
}

/// Something a propagator can write key/value pairs into.
pub trait Injector {
    /// Sets `key` to `value`, replacing earlier values. Pairs the carrier
    /// cannot hold (an invalid header name or value) are skipped.
    fn set(&mut self, key: &str, value: String);

    /// Like [`set`](Self::set) with an already validated header name, so
    /// that `HeaderMap` carriers need not parse the key again.
    fn set_header(&mut self, name: &HeaderName, value: String) {
        self.set(name.as_str(), value);
    }

    /// Removes `name` if present (used to drop stale headers of formats a
    /// propagator reads but does not write). The default does nothing.
    fn remove(&mut self, name: &HeaderName) {
        let _ = name;
    }
}

/// Something a propagator can read key/value pairs from.
///
/// Values are bytes: HTTP header values need not be UTF-8, and propagators
/// must reject what they cannot parse rather than trust it.
pub trait Extractor {
    /// The value for `key` (lower-case), looked up case-insensitively.
    fn get(&self, key: &str) -> Option<&[u8]>;

    /// Like [`get`](Self::get) with an already validated header name, so
    /// that `HeaderMap` carriers need not parse the key again.
    fn get_header(&self, name: &HeaderName) -> Option<&[u8]> {
        self.get(name.as_str())
    }

    /// Calls `f` for every key/value pair. The pairs are borrowed from the
    /// carrier, so a propagator can keep the ones it wants and parse them
    /// after the scan.
    fn for_each<'a>(&'a self, f: &mut dyn FnMut(&'a str, &'a [u8]));

    /// Every value of a header that may be repeated, joined with `,` as
    /// RFC 7230 combines list-valued header lines (`tracestate`,
    /// `baggage`). Carriers with one value per key return it as is.
    fn get_joined(&self, name: &HeaderName) -> Option<std::borrow::Cow<'_, [u8]>> {
        self.get_header(name).map(std::borrow::Cow::Borrowed)
    }
}

impl Injector for HeaderMap {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::try_from(value),
        ) {
            self.insert(name, value);
        }
    }

    fn set_header(&mut self, name: &HeaderName, value: String) {
        if let Ok(value) = HeaderValue::try_from(value) {
            self.insert(name.clone(), value);
        }
    }

    fn remove(&mut self, name: &HeaderName) {
        // Usually absent (stale formats are rarely sent): in a small map,
        // found missing without hashing (see `first_value`).
        if self.keys_len() <= SCAN_BELOW && !self.keys().any(|k| k == name) {
            return;
        }
        HeaderMap::remove(self, name);
    }
}

/// Header maps with at most this many names are searched by comparing
/// names first.
const SCAN_BELOW: usize = 16;

/// The first value whose name satisfies `is`, found in a small map by
/// comparing names (a request has a handful of headers, and comparing them,
/// an enum tag for the standard ones, costs a fraction of hashing one), in
/// a larger one by `hashed`.
#[inline]
fn first_value<'a>(
    map: &'a HeaderMap,
    is: impl Fn(&HeaderName) -> bool,
    hashed: impl FnOnce() -> Option<&'a HeaderValue>,
) -> Option<&'a HeaderValue> {
    if map.keys_len() <= SCAN_BELOW {
        map.iter().find(|(k, _)| is(k)).map(|(_, v)| v)
    } else {
        hashed()
    }
}

/// The first value of `name` in `map`, as `HeaderMap::get` finds it, by
/// comparing the few names of a small map rather than hashing `name`: the
/// lookup the `HeaderMap` carrier uses, shared with the adapters that read
/// other headers of the same requests and responses (`Host`,
/// `Content-Length`, `grpc-status`).
#[doc(hidden)]
#[inline]
pub fn find_header<'a>(map: &'a HeaderMap, name: &HeaderName) -> Option<&'a HeaderValue> {
    first_value(map, |k| k == name, || map.get(name))
}

impl Extractor for HeaderMap {
    fn get(&self, key: &str) -> Option<&[u8]> {
        first_value(
            self,
            |k| k.as_str().eq_ignore_ascii_case(key),
            || HeaderMap::get(self, key),
        )
        .map(HeaderValue::as_bytes)
    }

    fn get_header(&self, name: &HeaderName) -> Option<&[u8]> {
        find_header(self, name).map(HeaderValue::as_bytes)
    }

    fn get_joined(&self, name: &HeaderName) -> Option<std::borrow::Cow<'_, [u8]>> {
        // Most lookups miss (no `baggage` header): in a small map, found
        // missing without hashing (see `first_value`).
        if self.keys_len() <= SCAN_BELOW && !self.keys().any(|k| k == name) {
            return None;
        }
        let mut values = self.get_all(name).iter();
        let first = values.next()?.as_bytes();
        let Some(second) = values.next() else {
            return Some(std::borrow::Cow::Borrowed(first));
        };
        let mut joined = first.to_vec();
        for v in std::iter::once(second).chain(values) {
            joined.push(b',');
            joined.extend_from_slice(v.as_bytes());
        }
        Some(std::borrow::Cow::Owned(joined))
    }

    fn for_each<'a>(&'a self, f: &mut dyn FnMut(&'a str, &'a [u8])) {
        for (k, v) in self {
            f(k.as_str(), v.as_bytes());
        }
    }
}

impl<S: BuildHasher> Injector for HashMap<String, String, S> {
    fn set(&mut self, key: &str, value: String) {
        self.insert(key.to_owned(), value);
    }

    fn remove(&mut self, name: &HeaderName) {
        self.retain(|k, _| !k.eq_ignore_ascii_case(name.as_str()));
    }
}

impl<S: BuildHasher> Extractor for HashMap<String, String, S> {
    fn get(&self, key: &str) -> Option<&[u8]> {
        HashMap::get(self, key)
            .or_else(|| {
                self.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(key))
                    .map(|(_, v)| v)
            })
            .map(String::as_bytes)
    }

    fn for_each<'a>(&'a self, f: &mut dyn FnMut(&'a str, &'a [u8])) {
        for (k, v) in self {
            f(k, v.as_bytes());
        }
    }
}

impl Injector for BTreeMap<String, String> {
    fn set(&mut self, key: &str, value: String) {
        self.insert(key.to_owned(), value);
    }

    fn remove(&mut self, name: &HeaderName) {
        self.retain(|k, _| !k.eq_ignore_ascii_case(name.as_str()));
    }
}

impl Extractor for BTreeMap<String, String> {
    fn get(&self, key: &str) -> Option<&[u8]> {
        BTreeMap::get(self, key)
            .or_else(|| {
                self.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(key))
                    .map(|(_, v)| v)
            })
            .map(String::as_bytes)
    }

    fn for_each<'a>(&'a self, f: &mut dyn FnMut(&'a str, &'a [u8])) {
        for (k, v) in self {
            f(k, v.as_bytes());
        }
    }
}

impl<T: Injector + ?Sized> Injector for &mut T {
    fn set(&mut self, key: &str, value: String) {
        (**self).set(key, value);
    }
    fn set_header(&mut self, name: &HeaderName, value: String) {
        (**self).set_header(name, value);
    }
    fn remove(&mut self, name: &HeaderName) {
        (**self).remove(name);
    }
}

impl<T: Extractor + ?Sized> Extractor for &T {
    fn get(&self, key: &str) -> Option<&[u8]> {
        (**self).get(key)
    }
    fn get_header(&self, name: &HeaderName) -> Option<&[u8]> {
        (**self).get_header(name)
    }
    fn get_joined(&self, name: &HeaderName) -> Option<std::borrow::Cow<'_, [u8]>> {
        (**self).get_joined(name)
    }
    fn for_each<'a>(&'a self, f: &mut dyn FnMut(&'a str, &'a [u8])) {
        (**self).for_each(f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A map of `n` unrelated headers.
    fn map_of_others(n: usize) -> HeaderMap {
        let mut h = HeaderMap::new();
        for i in 0..n {
            h.insert(
                HeaderName::from_bytes(format!("x-h{i}").as_bytes()).unwrap(),
                HeaderValue::from_static("v"),
            );
        }
        h
    }

    #[test]
    fn header_map_joins_repeated_headers_whatever_its_size() {
        let baggage = HeaderName::from_static("baggage");
        for others in [0, 3, SCAN_BELOW, SCAN_BELOW + 5] {
            let mut h = map_of_others(others);
            assert_eq!(h.get_joined(&baggage), None, "{others}");
            h.append(&baggage, HeaderValue::from_static("a=1"));
            assert_eq!(h.get_joined(&baggage).as_deref(), Some(&b"a=1"[..]));
            h.append(&baggage, HeaderValue::from_static("b=2"));
            assert_eq!(h.get_joined(&baggage).as_deref(), Some(&b"a=1,b=2"[..]));
        }
    }

    #[test]
    fn header_map_lookups_whatever_its_size() {
        let name = HeaderName::from_static("traceparent");
        for others in [0, 3, SCAN_BELOW, SCAN_BELOW + 5] {
            let mut h = map_of_others(others);
            assert_eq!(Extractor::get(&h, "traceparent"), None, "{others}");
            assert_eq!(h.get_header(&name), None, "{others}");
            h.insert(&name, HeaderValue::from_static("00-x"));
            h.append(&name, HeaderValue::from_static("second"));
            assert_eq!(Extractor::get(&h, "traceparent"), Some(&b"00-x"[..]));
            assert_eq!(Extractor::get(&h, "TraceParent"), Some(&b"00-x"[..]));
            assert_eq!(h.get_header(&name), Some(&b"00-x"[..]));
        }
    }

    #[test]
    fn header_map_carrier() {
        let mut h = HeaderMap::new();
        h.set_header(&HeaderName::from_static("uber-trace-id"), "a:b:0:1".into());
        h.set("Uberctx-User", "x".into());
        h.set("bad name", "x".into());
        h.set("ok", "bad\nvalue".into());
        assert_eq!(Extractor::get(&h, "uber-trace-id"), Some(&b"a:b:0:1"[..]));
        assert_eq!(Extractor::get(&h, "uberctx-user"), Some(&b"x"[..]));
        assert_eq!(h.len(), 2);
    }

    #[test]
    fn map_carriers_are_case_insensitive() {
        let mut m = HashMap::new();
        m.insert("Uber-Trace-Id".to_owned(), "v".to_owned());
        assert_eq!(Extractor::get(&m, "uber-trace-id"), Some(&b"v"[..]));
        let mut b = BTreeMap::new();
        Injector::set(&mut b, "k", "v".to_owned());
        assert_eq!(Extractor::get(&b, "K"), Some(&b"v"[..]));
    }
}
