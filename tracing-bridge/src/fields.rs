//! Turning `tracing` field values into OpenTracing tag and log values.

use std::borrow::Cow;
use std::fmt;

use opentracing_api::TagValue;
use tracing::field::{Field, Visit};

/// The name `tracing` gives the message of an event (`info!("...")`).
const MESSAGE: &str = "message";

/// A [`Visit`]or handing each field to `sink` as a key and a typed value:
/// integers stay integers, bools bools, floats floats; strings, errors
/// (their `Display`) and everything else (its `Debug`) become strings.
///
/// With `rename_message`, the event message is handed over under
/// `message_key` instead of `message`.
pub(crate) struct FieldVisitor<F> {
    sink: F,
    message_key: Option<&'static str>,
}

impl<F: FnMut(Cow<'static, str>, TagValue)> FieldVisitor<F> {
    /// For span fields: every field under its own name.
    pub(crate) fn tags(sink: F) -> Self {
        FieldVisitor {
            sink,
            message_key: None,
        }
    }

    /// For event fields: the message under `message_key`.
    pub(crate) fn event(message_key: &'static str, sink: F) -> Self {
        FieldVisitor {
            sink,
            message_key: Some(message_key),
        }
    }

    fn put(&mut self, field: &Field, value: TagValue) {
        let name = field.name();
        let key = match self.message_key {
            Some(key) if name == MESSAGE => key,
            _ => name,
        };
        (self.sink)(Cow::Borrowed(key), value);
    }
}

/// An integer as an integer if it fits in an `i64`, else its decimal form
/// (never a silently different number).
fn integer<I>(value: I) -> TagValue
where
    I: Copy + TryInto<i64> + fmt::Display,
{
    match value.try_into() {
        Ok(i) => TagValue::I64(i),
        Err(_) => TagValue::from(value.to_string()),
    }
}

impl<F: FnMut(Cow<'static, str>, TagValue)> Visit for FieldVisitor<F> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, TagValue::F64(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, TagValue::I64(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, integer(value));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.put(field, integer(value));
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.put(field, integer(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, TagValue::Bool(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, TagValue::from(value.to_owned()));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, TagValue::from(value.to_string()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, TagValue::from(format!("{value:?}")));
    }
}

#[cfg(test)]
mod tests {
    use super::integer;
    use opentracing_api::TagValue;

    #[test]
    fn integers_that_do_not_fit_become_their_decimal_form() {
        assert_eq!(integer(7u64), TagValue::I64(7));
        assert_eq!(integer(-7i128), TagValue::I64(-7));
        assert_eq!(
            integer(u64::MAX),
            TagValue::from("18446744073709551615".to_owned())
        );
        assert_eq!(integer(u128::MAX), TagValue::from(u128::MAX.to_string()));
    }
}
