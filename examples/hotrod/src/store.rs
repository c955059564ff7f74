//! The spans every service keeps in memory, and their rendering in the JSON
//! of Jaeger's query service (`/api/traces`), for the built-in trace view.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentracing_api::{FinishedSpan, ReferenceKind, TagValue, TraceId};
use opentracing_jaeger::InMemoryTransport;
use serde_json::{json, Value};

/// The finished spans of every service of the process, each service keeping
/// its newest `max_spans` (the oldest are evicted first).
#[derive(Clone, Debug)]
pub struct SpanStore {
    services: Arc<Mutex<Vec<(String, InMemoryTransport)>>>,
    max_spans: usize,
}

/// A finished span and the service that reported it.
#[derive(Clone, Debug)]
pub struct StoredSpan {
    /// The service name.
    pub service: String,
    /// The span.
    pub span: FinishedSpan,
}

impl StoredSpan {
    /// Whether the span is tagged `error=true`.
    pub fn is_error(&self) -> bool {
        self.span
            .tag("error")
            .is_some_and(|v| v.as_bool() == Some(true) || v.as_str() == Some("true"))
    }

    fn start_micros(&self) -> i64 {
        micros(self.span.start_time)
    }
}

/// One trace: its spans, oldest first.
#[derive(Clone, Debug)]
pub struct Trace {
    /// The trace id.
    pub trace_id: TraceId,
    /// The spans, by start time.
    pub spans: Vec<StoredSpan>,
}

impl Trace {
    /// The span without a parent in this trace, or else the first one.
    pub fn root(&self) -> Option<&StoredSpan> {
        let ids: BTreeSet<u64> = self
            .spans
            .iter()
            .map(|s| s.span.context.span_id().to_u64())
            .collect();
        self.spans
            .iter()
            .find(|s| {
                s.span
                    .parent_span_id()
                    .is_none_or(|p| !ids.contains(&p.to_u64()))
            })
            .or_else(|| self.spans.first())
    }

    fn start_micros(&self) -> i64 {
        self.spans
            .iter()
            .map(StoredSpan::start_micros)
            .min()
            .unwrap_or(0)
    }

    fn duration_micros(&self) -> i64 {
        let end = self
            .spans
            .iter()
            .map(|s| micros(s.span.finish_time))
            .max()
            .unwrap_or(0);
        end - self.start_micros()
    }
}

impl SpanStore {
    /// A store keeping up to `max_spans` spans per service.
    pub fn new(max_spans: usize) -> Self {
        SpanStore {
            services: Arc::default(),
            max_spans: max_spans.max(1),
        }
    }

    /// The in-memory transport `service`'s tracers report to.
    pub fn for_service(&self, service: &str) -> InMemoryTransport {
        let mut services = self.services.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, t)) = services.iter().find(|(s, _)| s == service) {
            return t.clone();
        }
        let t = InMemoryTransport::bounded(self.max_spans);
        services.push((service.to_owned(), t.clone()));
        t
    }

    /// Every span kept, with its service.
    pub fn spans(&self) -> Vec<StoredSpan> {
        let services = self
            .services
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        services
            .iter()
            .flat_map(|(service, t)| {
                t.spans().into_iter().map(|span| StoredSpan {
                    service: service.clone(),
                    span,
                })
            })
            .collect()
    }

    /// The names of the services that reported spans.
    pub fn services(&self) -> Vec<String> {
        let services = self
            .services
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut names: Vec<String> = services
            .iter()
            .filter(|(_, t)| !t.spans().is_empty())
            .map(|(s, _)| s.clone())
            .collect();
        names.sort();
        names
    }

    /// The operation names of `service`.
    pub fn operations(&self, service: &str) -> Vec<String> {
        let ops: BTreeSet<String> = self
            .spans()
            .into_iter()
            .filter(|s| s.service == service)
            .map(|s| s.span.operation_name.into_owned())
            .collect();
        ops.into_iter().collect()
    }

    /// Every trace kept.
    pub fn traces(&self) -> Vec<Trace> {
        let mut by_id: HashMap<TraceId, Vec<StoredSpan>> = HashMap::new();
        for s in self.spans() {
            by_id.entry(s.span.context.trace_id()).or_default().push(s);
        }
        by_id
            .into_iter()
            .map(|(trace_id, mut spans)| {
                spans.sort_by_key(StoredSpan::start_micros);
                Trace { trace_id, spans }
            })
            .collect()
    }

    /// The trace `id`, if any of its spans is kept.
    pub fn trace(&self, id: TraceId) -> Option<Trace> {
        let mut spans: Vec<StoredSpan> = self
            .spans()
            .into_iter()
            .filter(|s| s.span.context.trace_id() == id)
            .collect();
        if spans.is_empty() {
            return None;
        }
        spans.sort_by_key(StoredSpan::start_micros);
        Some(Trace {
            trace_id: id,
            spans,
        })
    }

    /// The newest traces matching `query`, newest first.
    pub fn search(&self, query: &Query) -> Vec<Trace> {
        let now = micros(SystemTime::now());
        let mut found: Vec<Trace> = self
            .traces()
            .into_iter()
            .filter(|t| query.matches(t, now))
            .collect();
        found.sort_by_key(|t| std::cmp::Reverse(t.start_micros()));
        found.truncate(query.limit);
        found
    }
}

/// A trace search, as Jaeger's `/api/traces` takes it.
#[derive(Clone, Debug, Default)]
pub struct Query {
    /// Only traces with a span of this service.
    pub service: Option<String>,
    /// Only traces with a span of this operation (of `service`, if given).
    pub operation: Option<String>,
    /// Only traces with one span carrying all these tags or log fields.
    pub tags: Vec<(String, String)>,
    /// Only traces that started within this long before now.
    pub lookback: Option<Duration>,
    /// Only traces at least this long.
    pub min_duration: Option<Duration>,
    /// Only traces at most this long.
    pub max_duration: Option<Duration>,
    /// At most this many traces.
    pub limit: usize,
}

impl Query {
    /// A query from the parameters of `/api/traces`: `service`,
    /// `operation`, `tags` (Jaeger UI's JSON object `{"driver":"T7…C"}`,
    /// or `driver=T7…C` / `driver:T7…C` pairs separated by spaces),
    /// `limit` (20), `lookback` (`1h`, `2d`, `30m`), `minDuration`,
    /// `maxDuration` (`100ms`, `1.2s`).
    pub fn from_params(params: &HashMap<String, String>) -> Self {
        let non_empty = |k: &str| params.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        Query {
            service: non_empty("service").map(str::to_owned),
            operation: non_empty("operation")
                .filter(|o| *o != "all")
                .map(str::to_owned),
            tags: non_empty("tags").map(parse_tags).unwrap_or_default(),
            lookback: non_empty("lookback").and_then(parse_lookback),
            min_duration: non_empty("minDuration")
                .and_then(|d| crate::config::parse_duration(d).ok()),
            max_duration: non_empty("maxDuration")
                .and_then(|d| crate::config::parse_duration(d).ok()),
            limit: non_empty("limit")
                .and_then(|l| l.parse().ok())
                .filter(|l| *l > 0)
                .unwrap_or(20),
        }
    }

    fn matches(&self, trace: &Trace, now_micros: i64) -> bool {
        if let Some(lookback) = self.lookback {
            let since = now_micros - i64::try_from(lookback.as_micros()).unwrap_or(i64::MAX);
            if trace.start_micros() < since {
                return false;
            }
        }
        let duration = u64::try_from(trace.duration_micros()).unwrap_or(0);
        let duration = Duration::from_micros(duration);
        if self.min_duration.is_some_and(|min| duration < min)
            || self.max_duration.is_some_and(|max| duration > max)
        {
            return false;
        }
        trace.spans.iter().any(|s| self.span_matches(s))
    }

    fn span_matches(&self, s: &StoredSpan) -> bool {
        if self.service.as_ref().is_some_and(|svc| *svc != s.service) {
            return false;
        }
        if self
            .operation
            .as_ref()
            .is_some_and(|op| *op != s.span.operation_name)
        {
            return false;
        }
        self.tags.iter().all(|(k, v)| {
            let same = |key: &str, value: &TagValue| key == k && value_string(value) == *v;
            s.span.tags.iter().any(|t| same(&t.key, &t.value))
                || s.span
                    .logs
                    .iter()
                    .any(|l| l.fields.iter().any(|f| same(&f.key, &f.value)))
        })
    }
}

fn parse_tags(s: &str) -> Vec<(String, String)> {
    if s.starts_with('{') {
        if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(s) {
            return map
                .into_iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    (k, v)
                })
                .collect();
        }
    }
    s.split([' ', '&', ','])
        .filter_map(|pair| {
            let (k, v) = pair.split_once(['=', ':'])?;
            let (k, v) = (k.trim(), v.trim());
            (!k.is_empty()).then(|| (k.to_owned(), v.to_owned()))
        })
        .collect()
}

/// `lookback` as `{n}s`, `{n}m`, `{n}h` or `{n}d`; `None` for anything else
/// (another unit, a number that does not fit).
fn parse_lookback(s: &str) -> Option<Duration> {
    let unit = s.chars().next_back()?;
    let n: u64 = s[..s.len() - unit.len_utf8()].parse().ok()?;
    let secs = match unit {
        's' => Some(n),
        'm' => n.checked_mul(60),
        'h' => n.checked_mul(3600),
        'd' => n.checked_mul(86_400),
        _ => None,
    }?;
    Some(Duration::from_secs(secs))
}

fn micros(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

fn value_string(v: &TagValue) -> String {
    match v {
        TagValue::String(s) => s.to_string(),
        TagValue::Bool(b) => b.to_string(),
        TagValue::I64(i) => i.to_string(),
        TagValue::F64(f) => f.to_string(),
    }
}

fn kv_json(key: &str, v: &TagValue) -> Value {
    let (ty, value) = match v {
        TagValue::String(s) => ("string", json!(s)),
        TagValue::Bool(b) => ("bool", json!(b)),
        TagValue::I64(i) => ("int64", json!(i)),
        TagValue::F64(f) => ("float64", json!(f)),
    };
    json!({ "key": key, "type": ty, "value": value })
}

/// A trace as Jaeger's query service renders it (`data[i]` of
/// `/api/traces`).
pub fn trace_json(trace: &Trace) -> Value {
    let mut processes: BTreeMap<String, String> = BTreeMap::new(); // service -> pN
    for s in &trace.spans {
        let n = processes.len() + 1;
        processes
            .entry(s.service.clone())
            .or_insert_with(|| format!("p{n}"));
    }
    let trace_id = trace.trace_id.to_string();
    let spans: Vec<Value> = trace
        .spans
        .iter()
        .map(|s| {
            let span = &s.span;
            let references: Vec<Value> = span
                .references
                .iter()
                .map(|r| {
                    json!({
                        "refType": match r.kind {
                            ReferenceKind::FollowsFrom => "FOLLOWS_FROM",
                            _ => "CHILD_OF",
                        },
                        "traceID": r.context.trace_id().to_string(),
                        "spanID": r.context.span_id().to_string(),
                    })
                })
                .collect();
            let tags: Vec<Value> = span.tags.iter().map(|t| kv_json(&t.key, &t.value)).collect();
            let logs: Vec<Value> = span
                .logs
                .iter()
                .map(|l| {
                    json!({
                        "timestamp": micros(l.timestamp),
                        "fields": l.fields.iter().map(|f| kv_json(&f.key, &f.value)).collect::<Vec<_>>(),
                    })
                })
                .collect();
            json!({
                "traceID": trace_id,
                "spanID": span.context.span_id().to_string(),
                "operationName": span.operation_name,
                "references": references,
                "startTime": s.start_micros(),
                "duration": micros(span.finish_time) - s.start_micros(),
                "tags": tags,
                "logs": logs,
                "processID": processes[&s.service],
                "warnings": null,
            })
        })
        .collect();
    let processes: serde_json::Map<String, Value> = processes
        .into_iter()
        .map(|(service, id)| (id, json!({ "serviceName": service, "tags": [] })))
        .collect();
    json!({
        "traceID": trace_id,
        "spans": spans,
        "processes": processes,
        "warnings": null,
    })
}

/// Jaeger's response envelope around `data`.
pub fn envelope(data: &Value) -> Value {
    let total = data.as_array().map_or(0, Vec::len);
    json!({ "data": data, "total": total, "limit": 0, "offset": 0, "errors": null })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_queries() {
        assert_eq!(
            parse_tags(r#"{"driver":"T7C","error":true}"#),
            vec![
                ("driver".into(), "T7C".into()),
                ("error".into(), "true".into())
            ]
        );
        assert_eq!(
            parse_tags("driver=T7C error:true"),
            vec![
                ("driver".into(), "T7C".into()),
                ("error".into(), "true".into())
            ]
        );
        assert_eq!(parse_lookback("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_lookback("custom"), None);
    }

    #[test]
    fn a_hostile_lookback_is_ignored_not_a_panic() {
        assert_eq!(parse_lookback("1\u{20ac}"), None); // multi-byte last character
        assert_eq!(parse_lookback("\u{20ac}"), None);
        assert_eq!(parse_lookback(""), None);
        assert_eq!(parse_lookback("18446744073709551615d"), None); // overflows
        assert_eq!(parse_lookback("99999999999999999999s"), None);
        assert_eq!(parse_lookback("90s"), Some(Duration::from_secs(90)));
    }
}
