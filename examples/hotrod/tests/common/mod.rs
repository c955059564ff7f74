//! Starting the `hotrod` binary on free ports, and reading traces back
//! through its Jaeger-compatible API.

// Each test binary uses a part; test helpers panic on what they did not
// expect.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::manual_assert,
    clippy::struct_field_names
)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Variables that would send the spans elsewhere or change sampling.
const TRACER_VARS: [&str; 12] = [
    "JAEGER_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "JAEGER_AGENT_HOST",
    "JAEGER_AGENT_PORT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "JAEGER_SAMPLER_TYPE",
    "OTEL_TRACES_SAMPLER",
    "JAEGER_DISABLED",
    "JAEGER_PROPAGATION",
];

/// A running `hotrod all`, killed when dropped.
pub struct Hotrod {
    child: Child,
    /// Frontend, customer, driver, route ports.
    pub ports: [u16; 4],
    stdout: Arc<Mutex<String>>,
}

fn free_ports() -> [u16; 4] {
    let listeners: Vec<TcpListener> = (0..4)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let ports: Vec<u16> = listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect();
    [ports[0], ports[1], ports[2], ports[3]]
}

impl Hotrod {
    /// Starts `hotrod all` with `args` on free ports and waits until the
    /// frontend answers.
    pub async fn start(args: &[&str]) -> Hotrod {
        for _ in 0..3 {
            if let Some(h) = Self::try_start(args).await {
                return h;
            }
        }
        panic!("hotrod did not start");
    }

    async fn try_start(args: &[&str]) -> Option<Hotrod> {
        let ports = free_ports();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hotrod"));
        cmd.arg("all")
            .args(["--frontend-service-port", &ports[0].to_string()])
            .args(["--customer-service-port", &ports[1].to_string()])
            .args(["--driver-service-port", &ports[2].to_string()])
            .args(["--route-service-port", &ports[3].to_string()])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for v in TRACER_VARS {
            cmd.env_remove(v);
        }
        let mut child = cmd.spawn().expect("spawn hotrod");
        let out = child.stdout.take().unwrap();
        let stdout = Arc::new(Mutex::new(String::new()));
        let sink = stdout.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let mut hotrod = Hotrod {
            child,
            ports,
            stdout,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = hotrod.child.try_wait() {
                return None; // a port was taken meanwhile: try others
            }
            if let Ok(r) = client().get(hotrod.url("/config")).send().await {
                if r.status().is_success() {
                    return Some(hotrod);
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("hotrod did not answer on port {}", ports[0]);
    }

    /// A URL of the frontend.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.ports[0])
    }

    /// A URL of the service on `ports[i]`.
    pub fn service_url(&self, i: usize, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.ports[i])
    }

    /// What the process printed so far.
    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// The trace `id`, once `done` says it is complete (10 s at most).
    pub async fn trace(&self, id: &str, done: impl Fn(&Trace) -> bool) -> Trace {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut last = None;
        while Instant::now() < deadline {
            let resp = client()
                .get(self.url(&format!("/api/traces/{id}")))
                .send()
                .await
                .unwrap();
            if resp.status().is_success() {
                let body: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
                let t = Trace::from_json(&body["data"][0]);
                if done(&t) {
                    return t;
                }
                last = Some(t);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "trace {id} incomplete: {:#?}",
            last.map(|t| t
                .spans
                .iter()
                .map(|s| format!("{} {}", s.service, s.operation))
                .collect::<Vec<_>>())
        );
    }
}

impl Drop for Hotrod {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client that never uses a proxy.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// A span as the API returns it, with its service resolved.
#[derive(Clone, Debug)]
pub struct Span {
    pub service: String,
    pub operation: String,
    pub span_id: String,
    pub trace_id: String,
    pub parent: Option<String>,
    pub start: i64,
    pub duration: i64,
    pub tags: Vec<(String, Value)>,
    pub logs: Vec<(i64, Vec<(String, Value)>)>,
}

impl Span {
    pub fn end(&self) -> i64 {
        self.start + self.duration
    }

    pub fn tag(&self, key: &str) -> Option<&Value> {
        self.tags.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn is_error(&self) -> bool {
        self.tag("error") == Some(&Value::Bool(true))
    }

    /// The logs whose `event` starts with `prefix`, with their fields.
    pub fn logs_starting(&self, prefix: &str) -> Vec<&(i64, Vec<(String, Value)>)> {
        self.logs
            .iter()
            .filter(|(_, fields)| {
                fields
                    .iter()
                    .any(|(k, v)| k == "event" && v.as_str().is_some_and(|e| e.starts_with(prefix)))
            })
            .collect()
    }
}

/// Field `key` of a log.
pub fn field<'a>(log: &'a (i64, Vec<(String, Value)>), key: &str) -> Option<&'a Value> {
    log.1.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// A trace as the API returns it.
#[derive(Clone, Debug)]
pub struct Trace {
    pub trace_id: String,
    pub spans: Vec<Span>,
}

fn kvs(v: &Value) -> Vec<(String, Value)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|kv| (kv["key"].as_str().unwrap().to_owned(), kv["value"].clone()))
        .collect()
}

impl Trace {
    pub fn from_json(v: &Value) -> Trace {
        let processes = &v["processes"];
        let spans = v["spans"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| Span {
                service: processes[s["processID"].as_str().unwrap()]["serviceName"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                operation: s["operationName"].as_str().unwrap().to_owned(),
                span_id: s["spanID"].as_str().unwrap().to_owned(),
                trace_id: s["traceID"].as_str().unwrap().to_owned(),
                parent: s["references"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|r| r["refType"] == "CHILD_OF")
                    .map(|r| r["spanID"].as_str().unwrap().to_owned()),
                start: s["startTime"].as_i64().unwrap(),
                duration: s["duration"].as_i64().unwrap(),
                tags: kvs(&s["tags"]),
                logs: s["logs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|l| (l["timestamp"].as_i64().unwrap(), kvs(&l["fields"])))
                    .collect(),
            })
            .collect();
        Trace {
            trace_id: v["traceID"].as_str().unwrap().to_owned(),
            spans,
        }
    }

    /// The spans of `service` named `operation`.
    pub fn find(&self, service: &str, operation: &str) -> Vec<&Span> {
        self.spans
            .iter()
            .filter(|s| s.service == service && s.operation == operation)
            .collect()
    }

    /// The single span of `service` named `operation` with `span.kind=kind`.
    pub fn one(&self, service: &str, operation: &str, kind: &str) -> &Span {
        let found: Vec<&Span> = self
            .find(service, operation)
            .into_iter()
            .filter(|s| s.tag("span.kind").and_then(Value::as_str) == Some(kind))
            .collect();
        assert_eq!(found.len(), 1, "{service} {operation} {kind}: {found:#?}");
        found[0]
    }

    pub fn by_id(&self, id: &str) -> Option<&Span> {
        self.spans.iter().find(|s| s.span_id == id)
    }

    /// The children of `parent`.
    pub fn children(&self, parent: &Span) -> Vec<&Span> {
        self.spans
            .iter()
            .filter(|s| s.parent.as_deref() == Some(parent.span_id.as_str()))
            .collect()
    }

    /// Whether the `GET /dispatch` server span and its 10 route calls are in.
    pub fn dispatch_complete(&self) -> bool {
        self.find("frontend", "GET /dispatch").len() == 1
            && self.find("route", "GET /route").len() == 10
            && self.find("frontend", "GET /route").len() == 10
    }
}

/// The most spans running at one instant.
pub fn max_overlap(spans: &[&Span]) -> usize {
    let mut events: Vec<(i64, i32)> = Vec::new();
    for s in spans {
        events.push((s.start, 1));
        events.push((s.end(), -1));
    }
    // Ends before starts at the same instant: touching is not overlapping.
    events.sort_unstable();
    let (mut now, mut max) = (0i32, 0i32);
    for (_, d) in events {
        now += d;
        max = max.max(now);
    }
    usize::try_from(max).unwrap()
}

/// A random W3C trace context: (traceparent, trace id, span id).
pub fn caller_context() -> (String, String, String) {
    let trace: u128 = rand::random::<u128>() | 1;
    let span: u64 = rand::random::<u64>() | 1;
    let trace = format!("{trace:032x}");
    let span = format!("{span:016x}");
    (format!("00-{trace}-{span}-01"), trace, span)
}
