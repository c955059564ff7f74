//! Typed tag and log values, and the standard OpenTracing tag and log-field
//! names.

use std::borrow::Cow;
use std::fmt;

/// A tag or log-field value: string, bool, integer or float, as the
/// OpenTracing specification allows.
///
/// Static strings are stored without allocating.
///
/// ```
/// use opentracing_api::TagValue;
/// assert_eq!(TagValue::from(200u16), TagValue::I64(200));
/// assert_eq!(TagValue::from("GET").as_str(), Some("GET"));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum TagValue {
    /// A string.
    String(Cow<'static, str>),
    /// A boolean.
    Bool(bool),
    /// A signed integer (unsigned values up to `u32` convert losslessly).
    I64(i64),
    /// A float.
    F64(f64),
}

impl TagValue {
    /// The string, if this is a string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            TagValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// The bool, if this is a bool value.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            TagValue::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The integer, if this is an integer value.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            TagValue::I64(i) => Some(*i),
            _ => None,
        }
    }

    /// The float, if this is a float value.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            TagValue::F64(f) => Some(*f),
            _ => None,
        }
    }
}

impl fmt::Display for TagValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TagValue::String(s) => f.write_str(s),
            TagValue::Bool(b) => write!(f, "{b}"),
            TagValue::I64(i) => write!(f, "{i}"),
            TagValue::F64(x) => write!(f, "{x}"),
        }
    }
}

impl From<&'static str> for TagValue {
    fn from(s: &'static str) -> Self {
        TagValue::String(Cow::Borrowed(s))
    }
}
impl From<String> for TagValue {
    fn from(s: String) -> Self {
        TagValue::String(Cow::Owned(s))
    }
}
impl From<Cow<'static, str>> for TagValue {
    fn from(s: Cow<'static, str>) -> Self {
        TagValue::String(s)
    }
}
impl From<bool> for TagValue {
    fn from(b: bool) -> Self {
        TagValue::Bool(b)
    }
}
impl From<f64> for TagValue {
    fn from(x: f64) -> Self {
        TagValue::F64(x)
    }
}
impl From<f32> for TagValue {
    fn from(x: f32) -> Self {
        TagValue::F64(f64::from(x))
    }
}
macro_rules! int_tag {
    ($($t:ty),*) => {$(
        impl From<$t> for TagValue {
            fn from(i: $t) -> Self {
                TagValue::I64(i64::from(i))
            }
        }
    )*};
}
int_tag!(i8, i16, i32, i64, u8, u16, u32);

impl From<u64> for TagValue {
    /// Values above `i64::MAX` saturate.
    fn from(i: u64) -> Self {
        TagValue::I64(i64::try_from(i).unwrap_or(i64::MAX))
    }
}
impl From<usize> for TagValue {
    /// Values above `i64::MAX` saturate.
    fn from(i: usize) -> Self {
        TagValue::I64(i64::try_from(i).unwrap_or(i64::MAX))
    }
}

/// A key and a value: a span tag or one field of a log record.
#[derive(Clone, Debug, PartialEq)]
pub struct Tag {
    /// The key.
    pub key: Cow<'static, str>,
    /// The value.
    pub value: TagValue,
}

impl Tag {
    /// A tag.
    pub fn new(key: impl Into<Cow<'static, str>>, value: impl Into<TagValue>) -> Self {
        Tag {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// A log field is a key and a value, like a tag.
pub type Field = Tag;

/// Standard span tag names of the OpenTracing semantic conventions.
pub mod tags {
    /// `span.kind`: `client`, `server`, `producer` or `consumer`.
    pub const SPAN_KIND: &str = "span.kind";
    /// `span.kind` value for the client side of an RPC.
    pub const SPAN_KIND_CLIENT: &str = "client";
    /// `span.kind` value for the server side of an RPC.
    pub const SPAN_KIND_SERVER: &str = "server";
    /// `span.kind` value for a message producer.
    pub const SPAN_KIND_PRODUCER: &str = "producer";
    /// `span.kind` value for a message consumer.
    pub const SPAN_KIND_CONSUMER: &str = "consumer";
    /// `component`: the library or framework that made the span.
    pub const COMPONENT: &str = "component";
    /// `error`: bool, true if the operation failed.
    pub const ERROR: &str = "error";
    /// `http.method`.
    pub const HTTP_METHOD: &str = "http.method";
    /// `http.url`.
    pub const HTTP_URL: &str = "http.url";
    /// `http.status_code`: integer.
    pub const HTTP_STATUS_CODE: &str = "http.status_code";
    /// `db.instance`.
    pub const DB_INSTANCE: &str = "db.instance";
    /// `db.statement`.
    pub const DB_STATEMENT: &str = "db.statement";
    /// `db.type`.
    pub const DB_TYPE: &str = "db.type";
    /// `db.user`.
    pub const DB_USER: &str = "db.user";
    /// `message_bus.destination`.
    pub const MESSAGE_BUS_DESTINATION: &str = "message_bus.destination";
    /// `peer.address`.
    pub const PEER_ADDRESS: &str = "peer.address";
    /// `peer.hostname`.
    pub const PEER_HOSTNAME: &str = "peer.hostname";
    /// `peer.ipv4`.
    pub const PEER_HOST_IPV4: &str = "peer.ipv4";
    /// `peer.ipv6`.
    pub const PEER_HOST_IPV6: &str = "peer.ipv6";
    /// `peer.port`: integer.
    pub const PEER_PORT: &str = "peer.port";
    /// `peer.service`.
    pub const PEER_SERVICE: &str = "peer.service";
    /// `sampling.priority`: integer; 0 asks not to sample, above 0 to sample.
    pub const SAMPLING_PRIORITY: &str = "sampling.priority";
}

/// Standard log field names of the OpenTracing semantic conventions.
pub mod log_fields {
    /// `event`: a stable name for the event (`"error"` for errors).
    pub const EVENT: &str = "event";
    /// `event` value for errors.
    pub const EVENT_ERROR: &str = "error";
    /// `message`: a human-readable message.
    pub const MESSAGE: &str = "message";
    /// `error.kind`: the type or class of the error.
    pub const ERROR_KIND: &str = "error.kind";
    /// `error.object`: the error itself, rendered.
    pub const ERROR_OBJECT: &str = "error.object";
    /// `stack`: a stack trace.
    pub const STACK: &str = "stack";
}
