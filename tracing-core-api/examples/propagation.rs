//! Two services in one process: a frontend calls a customer service, the
//! trace context and baggage cross the "wire" (HTTP headers) in the Jaeger
//! and W3C formats, and the recorded spans are printed as a tree.
//!
//! `cargo run -p opentracing-api --example propagation`

use http::HeaderMap;
use opentracing_api::prelude::*;
use opentracing_api::{Format, MockTracer, SharedSpan};

fn customer_service(tracer: &MockTracer, headers: &HeaderMap) -> String {
    let parent = match tracer.extract(Format::HttpHeaders, headers) {
        Ok(cx) => cx,
        Err(e) => {
            eprintln!("bad trace headers, starting a new trace: {e}");
            None
        }
    };
    let span = tracer
        .span("HTTP GET /customer")
        .with_extracted(parent)
        .tag(tags::SPAN_KIND, tags::SPAN_KIND_SERVER)
        .tag(tags::HTTP_METHOD, "GET")
        .start_shared();
    span.in_scope(|| {
        let mut db = tracer.span("SQL SELECT").start();
        db.set_tag(tags::DB_TYPE, "sql");
        db.set_tag(tags::DB_STATEMENT, "SELECT * FROM customer WHERE id = ?");
        db.log([(log_fields::EVENT, "acquired connection")]);
    });
    span.set_tag(tags::HTTP_STATUS_CODE, 200);
    let customer = span.baggage_item("customer").unwrap_or_default();
    format!("hello {customer}")
}

fn main() {
    let tracer = MockTracer::new();
    let root: SharedSpan = tracer.span("HTTP GET /dispatch").start_shared();
    if let Err(e) = root.set_baggage_item("customer", "Rachel's Floral Designs") {
        eprintln!("baggage refused: {e}");
    }
    root.in_scope(|| {
        let client = tracer
            .span("HTTP GET")
            .tag(tags::SPAN_KIND, tags::SPAN_KIND_CLIENT)
            .start();
        let mut headers = HeaderMap::new();
        tracer.inject(client.context(), Format::HttpHeaders, &mut headers);
        println!("headers on the wire:");
        for (k, v) in &headers {
            println!("  {k}: {}", v.to_str().unwrap_or("<binary>"));
        }
        println!("response: {}", customer_service(&tracer, &headers));
    });
    root.finish();

    let spans = tracer.finished_spans();
    println!(
        "\n{} spans in trace {}:",
        spans.len(),
        spans[0].context.trace_id()
    );
    let mut order: Vec<_> = spans.iter().collect();
    order.sort_by_key(|s| s.start_time);
    for s in order {
        let depth = std::iter::successors(s.parent_span_id(), |p| {
            spans
                .iter()
                .find(|x| x.context.span_id() == *p)
                .and_then(opentracing_api::FinishedSpan::parent_span_id)
        })
        .count();
        println!(
            "{:indent$}{} [{}] {} tags, {} logs",
            "",
            s.operation_name,
            s.context.span_id(),
            s.tags.len(),
            s.logs.len(),
            indent = depth * 2
        );
    }
}
