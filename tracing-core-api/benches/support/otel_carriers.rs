//! The `HeaderMap` carrier adapters opentelemetry-http ships, written out
//! for the two opentelemetry versions the propagators depend on. Shared by
//! the `api` bench and the `profile_round_trip` example via `#[path]`.

macro_rules! otel_carriers {
    ($module:ident, $otel:ident) => {
        mod $module {
            use http::{HeaderMap, HeaderName, HeaderValue};
            pub struct Inj<'a>(pub &'a mut HeaderMap);
            impl $otel::propagation::Injector for Inj<'_> {
                fn set(&mut self, key: &str, value: String) {
                    if let (Ok(k), Ok(v)) = (
                        HeaderName::from_bytes(key.as_bytes()),
                        HeaderValue::from_str(&value),
                    ) {
                        self.0.insert(k, v);
                    }
                }
            }
            pub struct Ext<'a>(pub &'a HeaderMap);
            impl $otel::propagation::Extractor for Ext<'_> {
                fn get(&self, key: &str) -> Option<&str> {
                    self.0.get(key).and_then(|v| v.to_str().ok())
                }
                fn keys(&self) -> Vec<&str> {
                    self.0.keys().map(HeaderName::as_str).collect()
                }
            }
        }
    };
}
