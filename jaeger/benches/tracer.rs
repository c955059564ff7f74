//! Criterion benches of the tracer: the request-path cost of a span (with
//! `opentelemetry_sdk` doing the same work in the same run), and the
//! reporter's encode + send throughput per transport.
//!
//! `cargo bench -p opentracing-jaeger --bench tracer`
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::semicolon_if_nothing_returned
)]

use std::hint::black_box;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use opentracing_api::prelude::*;
use opentracing_api::{FinishedSpan, MockTracer};
use opentracing_jaeger::sampler::ConstSampler;
use opentracing_jaeger::transport::{
    CollectorAuth, HttpCollectorTransport, OtlpHttpTransport, Transport, UdpAgentTransport,
};
use opentracing_jaeger::{Exporter, JaegerTracer, Process};

#[derive(Debug)]
struct DiscardExporter;

impl opentelemetry_sdk::trace::SpanExporter for DiscardExporter {
    fn export(
        &self,
        _: Vec<opentelemetry_sdk::trace::SpanData>,
    ) -> impl std::future::Future<Output = opentelemetry_sdk::error::OTelSdkResult> + Send {
        std::future::ready(Ok(()))
    }
}

fn ours(sampled: bool) -> JaegerTracer {
    JaegerTracer::builder("bench")
        .sampler(ConstSampler(sampled))
        .exporter(Exporter::None)
        .queue_size(1 << 16)
        .build()
        .unwrap()
}

fn otel(sampled: bool) -> opentelemetry_sdk::trace::SdkTracerProvider {
    use opentelemetry_sdk::trace::Sampler;
    opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(DiscardExporter)
        .with_sampler(if sampled {
            Sampler::AlwaysOn
        } else {
            Sampler::AlwaysOff
        })
        .build()
}

fn span_path(c: &mut Criterion) {
    let mut g = c.benchmark_group("span_start_3_tags_finish");
    for sampled in [true, false] {
        let label = if sampled { "sampled" } else { "unsampled" };
        let tracer = ours(sampled);
        g.bench_function(format!("ours/{label}"), |b| {
            b.iter(|| {
                let mut s = tracer.span(black_box("GET /customer")).start();
                s.set_tag(tags::HTTP_METHOD, "GET");
                s.set_tag(tags::HTTP_STATUS_CODE, 200);
                s.set_tag(tags::ERROR, false);
                s.finish();
            })
        });
        let provider = otel(sampled);
        let otel_tracer = {
            use opentelemetry::trace::TracerProvider as _;
            provider.tracer("bench")
        };
        g.bench_function(format!("opentelemetry_sdk/{label}"), |b| {
            use opentelemetry::trace::{Span as _, Tracer as _};
            use opentelemetry::KeyValue;
            b.iter(|| {
                let mut s = otel_tracer.start(black_box("GET /customer"));
                s.set_attribute(KeyValue::new("http.method", "GET"));
                s.set_attribute(KeyValue::new("http.status_code", 200));
                s.set_attribute(KeyValue::new("error", false));
                s.end();
            })
        });
        let _ = provider.shutdown();
        let _ = tracer.close(Duration::from_secs(5));
    }
    // The collector is down: what does the request path pay?
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tracer = JaegerTracer::builder("outage")
        .sampler(ConstSampler(true))
        .exporter(Exporter::OtlpHttp {
            url: format!("http://127.0.0.1:{dead}/v1/traces"),
            headers: vec![],
        })
        .build()
        .unwrap();
    g.bench_function("ours/sampled, collector down", |b| {
        b.iter(|| {
            let mut s = tracer.span(black_box("GET /customer")).start();
            s.set_tag(tags::HTTP_METHOD, "GET");
            s.set_tag(tags::HTTP_STATUS_CODE, 200);
            s.set_tag(tags::ERROR, false);
            s.finish();
        })
    });
    g.finish();
}

/// 512 spans like a server's: a few tags, some with a log.
#[allow(clippy::vec_box)] // batches are boxes, as the reporter hands them over
fn batch() -> (Process, Vec<Box<FinishedSpan>>) {
    let mock = MockTracer::new();
    for i in 0..512 {
        let mut s = mock
            .span("HTTP GET /customer")
            .tag(tags::SPAN_KIND, tags::SPAN_KIND_SERVER)
            .start();
        s.set_tag(tags::HTTP_METHOD, "GET");
        s.set_tag(
            tags::HTTP_URL,
            "http://127.0.0.1:8081/customer?customer=123",
        );
        s.set_tag(tags::HTTP_STATUS_CODE, 200);
        s.set_tag(tags::COMPONENT, "opentracing-tower");
        if i % 4 == 0 {
            s.log([(log_fields::EVENT, "cache miss")]);
        }
        s.finish();
    }
    let process = Process {
        service_name: "customer".into(),
        tags: vec![
            opentracing_api::Tag::new("hostname", "bench-host"),
            opentracing_api::Tag::new("ip", "127.0.0.1"),
        ],
    };
    (
        process,
        mock.finished_spans().into_iter().map(Box::new).collect(),
    )
}

/// An HTTP/1.1 sink on 127.0.0.1 that keeps connections alive and answers
/// 200 to everything, discarding bodies.
fn discard_http_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut stream = stream;
                loop {
                    let mut len = 0usize;
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let l = line.trim_end();
                        if l.is_empty() {
                            break;
                        }
                        if let Some(v) = l.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; len];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    if stream
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    port
}

fn transports(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (process, spans) = batch();
    let mut g = c.benchmark_group("encode_and_send_512_spans");
    g.throughput(Throughput::Elements(spans.len() as u64));
    // A bound UDP socket nobody reads: sends succeed, the kernel discards.
    let sink = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut udp = UdpAgentTransport::new(sink.local_addr().unwrap().to_string());
    g.bench_function("udp_agent_compact_thrift", |b| {
        b.iter(|| rt.block_on(udp.send(&process, &spans)).unwrap())
    });
    let port = discard_http_server();
    let mut otlp = OtlpHttpTransport::new(&format!("http://127.0.0.1:{port}/v1/traces")).unwrap();
    g.bench_function("otlp_http_protobuf", |b| {
        b.iter(|| rt.block_on(otlp.send(&process, &spans)).unwrap())
    });
    let mut http = HttpCollectorTransport::new(
        &format!("http://127.0.0.1:{port}/api/traces"),
        CollectorAuth::None,
    )
    .unwrap();
    g.bench_function("http_collector_binary_thrift", |b| {
        b.iter(|| rt.block_on(http.send(&process, &spans)).unwrap())
    });
    g.finish();

    let mut g = c.benchmark_group("encode_only_512_spans");
    g.throughput(Throughput::Elements(spans.len() as u64));
    g.bench_function("binary_thrift", |b| {
        b.iter(|| HttpCollectorTransport::encode(&process, &spans))
    });
    g.bench_function("otlp_protobuf_direct", |b| {
        b.iter(|| opentracing_jaeger::transport::encode_otlp(&process, &spans))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    targets = span_path, transports
}
criterion_main!(benches);
