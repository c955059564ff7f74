//! Configuration from `JAEGER_*` / `OTEL_*` variables: every bad value is an
//! error naming its variable; good values take effect (checked against real
//! local servers where they choose an exporter).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::HttpServer;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentracing_api::prelude::*;
use opentracing_api::Format;
use opentracing_jaeger::{builder_from_vars, ConfigError, JaegerTracer};
use prost::Message;

const T: Duration = Duration::from_secs(10);

fn build(vars: &[(&str, &str)]) -> Result<JaegerTracer, ConfigError> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    builder_from_vars(&|k| map.get(k).cloned())?.build()
}

fn error_names(vars: &[(&str, &str)], var: &str) {
    match build(vars) {
        Ok(_) => panic!("{vars:?} was accepted"),
        Err(e) => assert!(
            e.to_string().contains(var),
            "{vars:?}: error {e:?} does not name {var}"
        ),
    }
}

#[test]
fn bad_values_are_errors_naming_the_variable() {
    let s = ("JAEGER_SERVICE_NAME", "svc");
    error_names(&[], "JAEGER_SERVICE_NAME");
    error_names(
        &[s, ("JAEGER_SAMPLER_TYPE", "sometimes")],
        "JAEGER_SAMPLER_TYPE",
    );
    error_names(
        &[
            s,
            ("JAEGER_SAMPLER_TYPE", "probabilistic"),
            ("JAEGER_SAMPLER_PARAM", "lots"),
        ],
        "JAEGER_SAMPLER_PARAM",
    );
    error_names(
        &[
            s,
            ("JAEGER_SAMPLER_TYPE", "probabilistic"),
            ("JAEGER_SAMPLER_PARAM", "2"),
        ],
        "JAEGER_SAMPLER_PARAM",
    );
    error_names(
        &[
            s,
            ("JAEGER_SAMPLER_TYPE", "const"),
            ("JAEGER_SAMPLER_PARAM", "0.5"),
        ],
        "JAEGER_SAMPLER_PARAM",
    );
    error_names(&[s, ("JAEGER_TAGS", "a=1,oops")], "JAEGER_TAGS");
    error_names(
        &[
            s,
            ("JAEGER_ENDPOINT", "http://c:14268/api/traces"),
            ("JAEGER_USER", "u"),
        ],
        "JAEGER_USER",
    );
    error_names(&[s, ("JAEGER_ENDPOINT", "not a url")], "JAEGER_ENDPOINT");
    error_names(&[s, ("JAEGER_AGENT_PORT", "sixty")], "JAEGER_AGENT_PORT");
    error_names(
        &[s, ("JAEGER_REPORTER_FLUSH_INTERVAL", "forever")],
        "JAEGER_REPORTER_FLUSH_INTERVAL",
    );
    error_names(
        &[s, ("JAEGER_REPORTER_MAX_QUEUE_SIZE", "-1")],
        "JAEGER_REPORTER_MAX_QUEUE_SIZE",
    );
    error_names(
        &[s, ("JAEGER_REPORTER_LOG_SPANS", "maybe")],
        "JAEGER_REPORTER_LOG_SPANS",
    );
    error_names(&[s, ("JAEGER_DISABLED", "nah")], "JAEGER_DISABLED");
    error_names(
        &[s, ("JAEGER_PROPAGATION", "jaeger,xray")],
        "JAEGER_PROPAGATION",
    );
    error_names(&[s, ("OTEL_PROPAGATORS", "ottrace")], "OTEL_PROPAGATORS");
    error_names(
        &[s, ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")],
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    );
    error_names(
        &[s, ("OTEL_TRACES_SAMPLER", "sometimes")],
        "OTEL_TRACES_SAMPLER",
    );
    error_names(
        &[
            s,
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "x"),
        ],
        "OTEL_TRACES_SAMPLER_ARG",
    );
    error_names(
        &[s, ("OTEL_EXPORTER_OTLP_HEADERS", "novalue")],
        "OTEL_EXPORTER_OTLP_HEADERS",
    );
    error_names(
        &[s, ("JAEGER_SAMPLER_REFRESH_INTERVAL", "10 parsecs")],
        "JAEGER_SAMPLER_REFRESH_INTERVAL",
    );
}

fn otlp_request(server: &HttpServer) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest::decode(server.requests()[0].body.as_slice()).unwrap()
}

#[test]
fn otel_variables_choose_an_otlp_exporter_with_headers_and_resource() {
    let server = HttpServer::start(200, "");
    let base = server.url("");
    let tracer = build(&[
        ("OTEL_SERVICE_NAME", "otel-svc"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &base),
        ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=abc%20def"),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment=test,team=core",
        ),
    ])
    .unwrap();
    assert_eq!(tracer.service_name(), "otel-svc");
    tracer.span("op").start().finish();
    tracer.flush(T).unwrap();
    let r = &server.requests()[0];
    assert_eq!(r.path, "/v1/traces");
    assert!(r.headers.contains(&("x-api-key".into(), "abc def".into())));
    let req = otlp_request(&server);
    let attrs: Vec<&str> = req.resource_spans[0]
        .resource
        .as_ref()
        .unwrap()
        .attributes
        .iter()
        .map(|a| a.key.as_str())
        .collect();
    assert!(
        attrs.contains(&"deployment.environment")
            && attrs.contains(&"team")
            && attrs.contains(&"service.name")
    );
}

#[test]
fn jaeger_endpoint_wins_and_carries_the_bearer_token() {
    let server = HttpServer::start(202, "");
    let tracer = build(&[
        ("JAEGER_SERVICE_NAME", "jaeger-svc"),
        ("JAEGER_ENDPOINT", &server.url("/api/traces")),
        ("JAEGER_AUTH_TOKEN", "tok"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1"),
        ("JAEGER_TAGS", "a=1,b=${JAEGER_TEST_UNSET_VAR:fallback}"),
    ])
    .unwrap();
    tracer.span("op").start().finish();
    tracer.flush(T).unwrap();
    let r = &server.requests()[0];
    assert_eq!(r.path, "/api/traces");
    assert!(r
        .headers
        .contains(&("content-type".into(), "application/x-thrift".into())));
    assert!(r
        .headers
        .contains(&("authorization".into(), "Bearer tok".into())));
    let body = String::from_utf8_lossy(&r.body);
    assert!(body.contains("fallback") && body.contains("jaeger-svc"));
}

#[test]
fn sampler_propagation_and_id_variables_take_effect() {
    let off = build(&[
        ("JAEGER_SERVICE_NAME", "s"),
        ("JAEGER_SAMPLER_TYPE", "const"),
        ("JAEGER_SAMPLER_PARAM", "0"),
    ])
    .unwrap();
    assert!(!off.span("x").start().context().is_sampled());
    let disabled = build(&[("JAEGER_SERVICE_NAME", "s"), ("JAEGER_DISABLED", "true")]).unwrap();
    assert!(!disabled.span("x").start().is_recording());
    let b3 = build(&[
        ("JAEGER_SERVICE_NAME", "s"),
        ("JAEGER_PROPAGATION", "b3"),
        ("JAEGER_TRACEID_128BIT", "false"),
    ])
    .unwrap();
    let span = b3.span("x").start();
    assert!(span.context().trace_id().is_64bit());
    let mut h = HashMap::new();
    b3.inject(span.context(), Format::HttpHeaders, &mut h);
    assert_eq!(h.keys().collect::<Vec<_>>(), ["b3"]);
    // Not parent-based: the local sampler decides even for sampled callers.
    let ratio = build(&[
        ("OTEL_SERVICE_NAME", "s"),
        ("OTEL_TRACES_SAMPLER", "traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "0"),
    ])
    .unwrap();
    let mut incoming = HashMap::new();
    incoming.insert(
        "traceparent".to_owned(),
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned(),
    );
    let parent = ratio.extract(Format::HttpHeaders, &incoming).unwrap();
    assert!(!ratio
        .span("x")
        .with_extracted(parent)
        .start()
        .context()
        .is_sampled());
    // Parent-based: the caller's decision stands.
    let pb = build(&[
        ("OTEL_SERVICE_NAME", "s"),
        ("OTEL_TRACES_SAMPLER", "parentbased_always_off"),
    ])
    .unwrap();
    let parent = pb.extract(Format::HttpHeaders, &incoming).unwrap();
    assert!(pb
        .span("x")
        .with_extracted(parent)
        .start()
        .context()
        .is_sampled());
    assert!(!pb.span("root").start().context().is_sampled());
}

#[test]
fn https_endpoint_variables_are_refused_with_the_reason() {
    let s = ("JAEGER_SERVICE_NAME", "svc");
    for var in [
        "JAEGER_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ] {
        error_names(&[s, (var, "https://collector.example.com:4318")], var);
        let err = build(&[s, (var, "https://collector.example.com:4318")])
            .err()
            .unwrap();
        assert!(err.to_string().contains("TLS"), "{err}");
    }
}
