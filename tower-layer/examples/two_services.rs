//! Two services, one trace: a `frontend` that calls a `customer` service
//! over real HTTP, both instrumented with one `.layer(...)` each and the
//! Jaeger tracer, and no tracing calls in the handlers.
//!
//! ```sh
//! cargo run -p opentracing-tower --features axum --example two_services
//! ```
//!
//! The finished spans are kept in memory and printed as a tree. Set
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (for example `http://localhost:4318`, a
//! Jaeger v2 or an OpenTelemetry collector) to also send them there.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use opentracing_api::FinishedSpan;
use opentracing_jaeger::{Exporter, InMemoryTransport, JaegerTracer};
use opentracing_tower::{ClientTracingLayer, ClientTracingService, CurrentSpan, TracingLayer};
use tower::{ServiceBuilder, ServiceExt};

type TracedClient = ClientTracingService<Client<HttpConnector, Full<Bytes>>, JaegerTracer>;

fn tracer(
    service: &str,
    spans: &InMemoryTransport,
) -> Result<JaegerTracer, Box<dyn std::error::Error>> {
    let exporter = match std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT") {
        Ok(base) => Exporter::OtlpHttp {
            url: format!("{}/v1/traces", base.trim_end_matches('/')),
            headers: vec![],
        },
        Err(_) => Exporter::None,
    };
    Ok(JaegerTracer::builder(service)
        .exporter(exporter)
        .keep_in_memory(spans.clone())
        .build()?)
}

async fn serve(app: Router) -> Result<SocketAddr, std::io::Error> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    Ok(addr)
}

#[derive(serde::Deserialize)]
struct Dispatch {
    customer: u32,
}

async fn dispatch(
    State((client, customer_addr)): State<(TracedClient, SocketAddr)>,
    CurrentSpan(span): CurrentSpan,
    Query(q): Query<Dispatch>,
) -> String {
    // Baggage travels to every downstream span (HotROD's "customer").
    let _ = span.set_baggage_item("customer", q.customer.to_string());
    let url = format!("http://{customer_addr}/customer?customer={}", q.customer);
    let Ok(req) = Request::get(url).body(Full::new(Bytes::new())) else {
        return "bad request".into();
    };
    match client.oneshot(req).await {
        Ok(resp) => match resp.into_body().collect().await {
            Ok(body) => format!(
                "dispatched for {}",
                String::from_utf8_lossy(&body.to_bytes())
            ),
            Err(e) => format!("customer body failed: {e}"),
        },
        Err(e) => format!("customer call failed: {e}"),
    }
}

async fn customer(CurrentSpan(span): CurrentSpan) -> String {
    let who = span.baggage_item("customer").unwrap_or_default();
    tokio::time::sleep(Duration::from_millis(20)).await; // "MySQL"
    format!("Rachel's Floral Designs (customer {who})")
}

fn print_tree(spans: &[FinishedSpan]) {
    let mut sorted: Vec<&FinishedSpan> = spans.iter().collect();
    sorted.sort_by_key(|s| s.start_time);
    for s in sorted {
        let depth = std::iter::successors(s.parent_span_id(), |p| {
            spans
                .iter()
                .find(|x| x.context.span_id() == *p)
                .and_then(FinishedSpan::parent_span_id)
        })
        .count();
        let kind = s
            .tag("span.kind")
            .map(ToString::to_string)
            .unwrap_or_default();
        let status = s
            .tag("http.status_code")
            .map(ToString::to_string)
            .unwrap_or_default();
        println!(
            "{:indent$}{} [{kind} {status}] {:?} trace={}",
            "",
            s.operation_name,
            s.duration(),
            s.context.trace_id(),
            indent = depth * 2
        );
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let spans = InMemoryTransport::new();
    let frontend_tracer = tracer("frontend", &spans)?;
    let customer_tracer = tracer("customer", &spans)?;

    let customer_app = Router::new()
        .route("/customer", get(customer))
        .layer(TracingLayer::new(customer_tracer.clone()).with_axum_bodies());
    let customer_addr = serve(customer_app).await?;

    let client = ServiceBuilder::new()
        .layer(ClientTracingLayer::new(frontend_tracer.clone()))
        .service(Client::builder(hyper_util::rt::TokioExecutor::new()).build_http());
    let frontend_app = Router::new()
        .route("/dispatch", get(dispatch))
        .with_state((client, customer_addr))
        .layer(TracingLayer::new(frontend_tracer.clone()).with_axum_bodies());
    let frontend_addr = serve(frontend_app).await?;

    let plain = Client::builder(hyper_util::rt::TokioExecutor::new()).build_http::<Full<Bytes>>();
    let resp = plain
        .request(
            Request::get(format!("http://{frontend_addr}/dispatch?customer=123"))
                .body(Full::new(Bytes::new()))?,
        )
        .await?;
    let body = resp.into_body().collect().await?.to_bytes();
    println!(
        "GET /dispatch?customer=123 -> {}\n",
        String::from_utf8_lossy(&body)
    );

    // Let the server spans finish (they end when the response body is sent),
    // then deliver everything.
    tokio::time::sleep(Duration::from_millis(50)).await;
    for t in [&frontend_tracer, &customer_tracer] {
        let t = t.clone();
        tokio::task::spawn_blocking(move || t.close(Duration::from_secs(5))).await??;
    }
    let finished = spans.spans();
    println!("{} spans, one trace:", finished.len());
    print_tree(&finished);
    Ok(())
}
