//! A driver for profilers: starts and finishes spans in a loop.
//!
//! `cargo run --release -p opentracing-jaeger --example profile_span -- [drain|nodrain|unsampled] [n]`

use std::hint::black_box;
use std::time::{Duration, Instant};

use opentracing_api::prelude::*;
use opentracing_jaeger::sampler::ConstSampler;
use opentracing_jaeger::{Exporter, JaegerTracer};

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "drain".into());
    let n: u32 = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000_000);
    let mut b = JaegerTracer::builder("profile")
        .sampler(ConstSampler(mode != "unsampled"))
        .exporter(Exporter::None)
        .queue_size(1 << 16);
    if mode == "nodrain" {
        // The worker never wakes: the queue fills, then spans are dropped
        // (and freed) on this thread.
        b = b
            .batch_size(1 << 30)
            .flush_interval(Duration::from_secs(3600));
    }
    let tracer = match b.build() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}");
            return;
        }
    };
    let start = Instant::now();
    for _ in 0..n {
        let mut s = tracer.span(black_box("GET /customer")).start();
        s.set_tag(tags::HTTP_METHOD, "GET");
        s.set_tag(tags::HTTP_STATUS_CODE, 200);
        s.set_tag(tags::ERROR, false);
        s.finish();
    }
    println!(
        "{mode}: {:?}/span; {:?}",
        start.elapsed() / n,
        tracer.metrics().snapshot()
    );
}
