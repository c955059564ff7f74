//! Runs the Python interop peers (real third-party libraries installed in a
//! venv by `scripts/test.sh`) and exchanges JSON with them.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

/// The Python interpreter of the interop venv: `$INTEROP_PYTHON`, else the
/// workspace's `.venv`. Panics with a clear message when neither exists:
/// these tests must not pass silently without their peers.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("INTEROP_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    assert!(
        venv.exists(),
        "the interop peers are not installed: run ./scripts/test.sh (it creates .venv) \
         or set INTEROP_PYTHON to a Python with tests/interop/requirements.txt installed"
    );
    venv
}

/// A script in `tests/interop/`.
pub fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("interop")
        .join(name)
}

/// Runs `script` with a JSON array on stdin and returns the JSON array it
/// prints. Panics (failing the test) on any protocol error.
pub fn run_json(script_name: &str, requests: &[Value]) -> Vec<Value> {
    let mut child = Command::new(python())
        .arg(script(script_name))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the Python peer");
    let input = serde_json::to_vec(requests).expect("encode requests");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&input)
        .expect("write requests");
    let out = child.wait_with_output().expect("run the Python peer");
    assert!(
        out.status.success(),
        "Python peer failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "Python peer printed no JSON array ({e}):\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(results.len(), requests.len(), "one result per request");
    results
}

/// A receiving peer (`tests/interop/export_peer.py`): listens on a local
/// port, decodes what arrives with the real Jaeger Thrift / OTLP libraries
/// and prints it as JSON. The process is killed if the test ends early.
pub struct ExportPeer {
    child: std::process::Child,
    stdout: std::io::BufReader<std::process::ChildStdout>,
    /// The port it listens on.
    pub port: u16,
}

impl ExportPeer {
    /// Starts the peer in `mode` (`udp`, `http`, `otlp`), waiting for
    /// `expected_spans` spans at most `timeout_secs`.
    pub fn start(mode: &str, expected_spans: usize, timeout_secs: u32, extra: &[&str]) -> Self {
        let mut args = vec![
            mode.to_owned(),
            expected_spans.to_string(),
            timeout_secs.to_string(),
        ];
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        Self::start_script("export_peer.py", &args)
    }

    /// Starts another receiving peer, `script_name` with `args`, that
    /// prints `PORT <n>` first and one JSON document at its end.
    pub fn start_script(script_name: &str, args: &[String]) -> Self {
        use std::io::BufRead;
        let mut child = Command::new(python())
            .arg(script(script_name))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start {script_name}: {e}"));
        let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read the PORT line");
        let port = line
            .strip_prefix("PORT ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("{script_name} did not print its port: {line:?}"));
        ExportPeer {
            child,
            stdout,
            port,
        }
    }

    /// Waits for the peer's JSON report.
    pub fn finish(mut self) -> Value {
        use std::io::Read;
        let mut out = String::new();
        self.stdout
            .read_to_string(&mut out)
            .expect("read the report");
        let _ = self.child.wait();
        serde_json::from_str(out.trim())
            .unwrap_or_else(|e| panic!("bad report from export_peer.py ({e}): {out}"))
    }
}

impl Drop for ExportPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What each of `libs` (`propagation_peer.py` names: `jaeger_client`,
/// `otel_tracecontext`, ...) extracts from `headers`, one JSON result per
/// library, in order.
pub fn extract_in_python(headers: &http::HeaderMap, libs: &[&str]) -> Vec<Value> {
    let as_json: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| {
            let v = v.to_str().expect("trace headers are ASCII");
            (k.as_str().to_owned(), Value::from(v))
        })
        .collect();
    let requests: Vec<Value> = libs
        .iter()
        .map(|lib| serde_json::json!({"op": "extract", "lib": lib, "headers": as_json}))
        .collect();
    run_json("propagation_peer.py", &requests)
}

/// Asserts that `lib` found a sampled context with `cx`'s trace and span
/// ids in what it extracted (`result`, from [`extract_in_python`]): our
/// span is the parent of theirs.
pub fn assert_extracted_as(lib: &str, result: &Value, cx: &opentracing_api::SpanContext) {
    assert_eq!(result["found"], Value::Bool(true), "{lib}: {result}");
    assert_eq!(
        result["trace_id"],
        Value::from(cx.trace_id().to_hex32()),
        "{lib}"
    );
    assert_eq!(
        result["span_id"],
        Value::from(cx.span_id().to_string()),
        "{lib}: our span is their parent"
    );
    assert_eq!(result["sampled"], Value::Bool(true), "{lib}");
}
