//! `hotrod all` end to end: one dispatch, read back whole through the
//! trace API, plus the console, the metrics and the error answers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

mod common;

use common::{caller_context, client, field, Hotrod, Trace};
use serde_json::Value;

async fn get_json(url: &str) -> Value {
    let resp = client().get(url).send().await.unwrap();
    assert!(resp.status().is_success(), "{url}: {}", resp.status());
    serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap()
}

async fn get_text(url: &str) -> String {
    let resp = client().get(url).send().await.unwrap();
    assert!(resp.status().is_success(), "{url}: {}", resp.status());
    resp.text().await.unwrap()
}

fn kind(s: &common::Span) -> &str {
    s.tag("span.kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dispatch_is_traced_end_to_end() {
    let hotrod = Hotrod::start(&["--fix-db-query-delay", "30ms"]).await;
    let (traceparent, trace_id, caller_span) = caller_context();

    let resp = client()
        .get(hotrod.url("/dispatch?customer=123"))
        .header("traceparent", &traceparent)
        .header("baggage", "session=4242, request=4242-1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let traceresponse = resp
        .headers()
        .get("traceresponse")
        .expect("traceresponse header")
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();

    // The answer: a driver and an ETA in whole minutes, at least 2.
    let driver = body["Driver"].as_str().unwrap().to_owned();
    assert!(
        driver.len() == 8 && driver.starts_with("T7") && driver.ends_with('C'),
        "{driver}"
    );
    let eta = body["ETA"].as_u64().unwrap();
    assert!(eta >= 120 && eta % 60 == 0, "ETA {eta}");

    // traceresponse: 00-{our trace}-{the server span}-01.
    let parts: Vec<&str> = traceresponse.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceresponse}");
    assert_eq!(
        (parts[0], parts[1], parts[3]),
        ("00", trace_id.as_str(), "01")
    );

    let trace = hotrod.trace(&trace_id, Trace::dispatch_complete).await;
    assert_eq!(trace.trace_id, trace_id);
    assert!(
        trace.spans.iter().all(|s| s.trace_id == trace_id),
        "one trace id"
    );

    // The frontend's server span continues the caller's trace.
    let root = trace.one("frontend", "GET /dispatch", "server");
    assert_eq!(root.parent.as_deref(), Some(caller_span.as_str()));
    assert_eq!(
        root.span_id, parts[2],
        "traceresponse names the server span"
    );
    assert_eq!(root.tag("http.status_code"), Some(&Value::from(200)));
    assert_eq!(root.tag("driver"), Some(&Value::from(driver.as_str())));
    let success = root.logs_starting("Dispatch successful");
    assert_eq!(success.len(), 1, "{:#?}", root.logs);
    assert_eq!(
        field(success[0], "driver"),
        Some(&Value::from(driver.as_str()))
    );
    assert_eq!(field(success[0], "level"), Some(&Value::from("INFO")));
    for event in [
        "Finding an appropriate driver for a customer",
        "Found customer",
        "Found drivers",
        "Found routes",
    ] {
        assert_eq!(
            root.logs_starting(event).len(),
            1,
            "{event}: {:#?}",
            root.logs
        );
    }

    // frontend → customer over HTTP, customer → mysql.
    let customer_client = trace.one("frontend", "GET /customer", "client");
    assert_eq!(
        customer_client.parent.as_deref(),
        Some(root.span_id.as_str())
    );
    let customer_server = trace.one("customer", "GET /customer", "server");
    assert_eq!(
        customer_server.parent.as_deref(),
        Some(customer_client.span_id.as_str())
    );
    assert!(customer_server
        .tag("http.url")
        .and_then(Value::as_str)
        .is_some_and(|u| u.contains("customer=123")));
    assert_eq!(customer_server.logs_starting("Loading customer").len(), 1);
    let mysql = trace.one("mysql", "SQL SELECT", "client");
    assert_eq!(
        mysql.parent.as_deref(),
        Some(customer_server.span_id.as_str())
    );
    assert_eq!(mysql.tag("peer.service"), Some(&Value::from("mysql")));
    assert_eq!(
        mysql.tag("sql.query"),
        Some(&Value::from("SELECT * FROM customer WHERE customer_id=123"))
    );
    assert_eq!(mysql.tag("request"), Some(&Value::from("4242-1")));
    assert_eq!(mysql.logs_starting("Acquired lock with").len(), 1);

    // frontend → driver over gRPC.
    let grpc_client = trace.one("frontend", "/driver.DriverService/FindNearest", "client");
    assert_eq!(grpc_client.parent.as_deref(), Some(root.span_id.as_str()));
    let grpc_server = trace.one("driver", "/driver.DriverService/FindNearest", "server");
    assert_eq!(
        grpc_server.parent.as_deref(),
        Some(grpc_client.span_id.as_str())
    );
    for s in [grpc_client, grpc_server] {
        assert_eq!(s.tag("rpc.grpc.status_code"), Some(&Value::from(0)));
        assert!(!s.is_error());
    }
    assert_eq!(
        grpc_server
            .logs_starting("Searching for nearby drivers")
            .len(),
        1
    );

    // driver → redis: FindDriverIDs, then GetDriver in sequence, the
    // failures retried.
    let redis: Vec<&common::Span> = trace.children(grpc_server);
    assert!(redis
        .iter()
        .all(|s| s.service == "redis" && kind(s) == "client"));
    assert!(
        redis.len() > 11,
        "FindDriverIDs + 10 GetDriver + retries: {}",
        redis.len()
    );
    let find = trace.one("redis", "FindDriverIDs", "client");
    assert_eq!(find.tag("param.location"), Some(&Value::from("115,277")));
    let gets = trace.find("redis", "GetDriver");
    let failed: Vec<&&common::Span> = gets.iter().filter(|s| s.is_error()).collect();
    assert!(
        !failed.is_empty(),
        "the first call of a fresh process times out"
    );
    assert_eq!(gets.len(), 10 + failed.len(), "each failure retried once");
    for f in &failed {
        let id = f.tag("param.driverID").unwrap();
        let timeout = f.logs_starting("redis timeout");
        assert_eq!(timeout.len(), 1);
        assert_eq!(field(timeout[0], "driver_id"), Some(id));
        // The retry comes next and succeeds.
        assert!(gets
            .iter()
            .any(|g| g.tag("param.driverID") == Some(id) && !g.is_error() && g.start >= f.end()));
    }
    assert_eq!(
        grpc_server
            .logs_starting("Retrying GetDriver after error")
            .len(),
        failed.len()
    );
    // Sequential: each starts after the previous one ended.
    let mut by_start: Vec<&&common::Span> = gets.iter().collect();
    by_start.sort_by_key(|s| s.start);
    assert!(by_start.windows(2).all(|w| w[1].start >= w[0].end()));
    assert!(find.end() <= by_start[0].start);

    // frontend → route, ten times; the route spans see the baggage.
    let route_clients = trace.find("frontend", "GET /route");
    assert_eq!(route_clients.len(), 10);
    for c in &route_clients {
        assert_eq!(kind(c), "client");
        assert_eq!(c.parent.as_deref(), Some(root.span_id.as_str()));
        assert_eq!(c.tag("http.status_code"), Some(&Value::from(200)));
        let servers = trace.children(c);
        assert_eq!(servers.len(), 1);
        let s = servers[0];
        assert_eq!(
            (s.service.as_str(), s.operation.as_str(), kind(s)),
            ("route", "GET /route", "server")
        );
        assert_eq!(s.tag("http.status_code"), Some(&Value::from(200)));
        assert!(c.start >= grpc_client.end(), "routes after the drivers");
    }
    assert!(
        grpc_client.start >= customer_client.end(),
        "drivers after the customer"
    );

    // Six services, no error but the redis timeouts.
    let mut services: Vec<&str> = trace.spans.iter().map(|s| s.service.as_str()).collect();
    services.sort_unstable();
    services.dedup();
    assert_eq!(
        services,
        ["customer", "driver", "frontend", "mysql", "redis", "route"]
    );
    assert!(trace
        .spans
        .iter()
        .filter(|s| s.is_error())
        .all(|s| s.operation == "GetDriver"));

    // Baggage reached the route service: compute time per customer and
    // per session.
    let vars = get_json(&hotrod.service_url(3, "/debug/vars")).await;
    assert!(
        vars["route.calc.by.customer.sec"]["Rachel's Floral Designs"]
            .as_f64()
            .unwrap()
            > 0.0,
        "{vars}"
    );
    assert!(
        vars["route.calc.by.session.sec"]["4242"].as_f64().unwrap() > 0.0,
        "{vars}"
    );

    // The console: the same events, with the trace id.
    let stdout = hotrod.stdout();
    let line = stdout
        .lines()
        .find(|l| l.contains("Dispatch successful"))
        .unwrap_or_else(|| panic!("no dispatch line in {stdout}"));
    assert!(
        line.starts_with(&format!("trace_id={trace_id} span_id={}", root.span_id)),
        "{line}"
    );
    assert!(line.contains(&format!("driver={driver}")), "{line}");
    assert!(stdout
        .lines()
        .any(|l| l.contains(&format!("trace_id={trace_id}")) && l.contains("redis timeout")));

    // Search: by the driver (a tag and a log field of the root span), and
    // by a field only a log has.
    let found = get_json(&hotrod.url(&format!(
        "/api/traces?service=frontend&tags=driver%3D{driver}"
    )))
    .await;
    assert_eq!(found["data"].as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found["data"][0]["traceID"], trace_id.as_str());
    let json_tags = format!("%7B%22driver%22%3A%22{driver}%22%7D");
    let found = get_json(&hotrod.url(&format!("/api/traces?tags={json_tags}&lookback=1h"))).await;
    assert_eq!(found["data"][0]["traceID"], trace_id.as_str());
    let failed_id = failed[0].tag("param.driverID").unwrap().as_str().unwrap();
    let found = get_json(&hotrod.url(&format!(
        "/api/traces?service=redis&tags=driver_id%3D{failed_id}"
    )))
    .await;
    assert_eq!(found["data"][0]["traceID"], trace_id.as_str());
    let none = get_json(&hotrod.url("/api/traces?service=frontend&tags=driver%3DT700000X")).await;
    assert_eq!(none["data"].as_array().unwrap().len(), 0);

    let services = get_json(&hotrod.url("/api/services")).await;
    for s in ["frontend", "customer", "mysql", "driver", "redis", "route"] {
        assert!(
            services["data"]
                .as_array()
                .unwrap()
                .contains(&Value::from(s)),
            "{services}"
        );
    }
    let ops = get_json(&hotrod.url("/api/services/frontend/operations")).await;
    assert!(ops["data"]
        .as_array()
        .unwrap()
        .contains(&Value::from("GET /dispatch")));

    // RPC metrics on every service's port, with the tracers' own.
    let m = get_text(&hotrod.url("/metrics")).await;
    assert!(
        m.contains(
            r#"rpc_requests_total{service="frontend",endpoint="GET /dispatch",error="false"} 1"#
        ),
        "{m}"
    );
    assert!(
        m.contains(
            r#"rpc_request_duration_seconds_count{service="frontend",endpoint="GET /dispatch"} 1"#
        ),
        "{m}"
    );
    assert!(
        m.contains(r#"jaeger_tracer_started_spans_total{service="frontend",sampled="y"}"#),
        "{m}"
    );
    let m = get_text(&hotrod.service_url(1, "/metrics")).await;
    assert!(
        m.contains(
            r#"rpc_requests_total{service="customer",endpoint="GET /customer",error="false"} 1"#
        ),
        "{m}"
    );
    assert!(
        m.contains(r#"jaeger_tracer_started_spans_total{service="mysql",sampled="y"} 1"#),
        "{m}"
    );
    let m = get_text(&hotrod.service_url(2, "/metrics")).await;
    assert!(m.contains(r#"rpc_requests_total{service="driver",endpoint="/driver.DriverService/FindNearest",error="false"} 1"#), "{m}");
    assert!(m.contains(r#"service="redis""#), "{m}");
    let m = get_text(&hotrod.service_url(3, "/metrics")).await;
    assert!(
        m.contains(r#"rpc_requests_total{service="route",endpoint="GET /route",error="false"} 10"#),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_their_status() {
    let hotrod = Hotrod::start(&["--fix-db-query-delay", "5ms"]).await;

    let resp = client().get(hotrod.url("/dispatch")).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("customer"));

    let (traceparent, trace_id, _) = caller_context();
    let resp = client()
        .get(hotrod.url("/dispatch?customer=999"))
        .header("traceparent", traceparent)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.text().await.unwrap(), "invalid customer ID");
    let trace = hotrod
        .trace(&trace_id, |t| {
            t.find("frontend", "GET /dispatch").len() == 1
                && t.find("mysql", "SQL SELECT").len() == 1
        })
        .await;
    let root = trace.one("frontend", "GET /dispatch", "server");
    assert_eq!(root.tag("http.status_code"), Some(&Value::from(404)));
    assert_eq!(
        trace
            .one("customer", "GET /customer", "server")
            .tag("http.status_code"),
        Some(&Value::from(404))
    );
    assert!(trace
        .find("driver", "/driver.DriverService/FindNearest")
        .is_empty());

    let resp = client()
        .get(hotrod.service_url(3, "/route?pickup=1,2"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    let resp = client()
        .get(hotrod.url("/api/traces/nothex"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = client()
        .get(hotrod.url("/api/traces/0123456789abcdef"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    // The pages are served.
    let page = client()
        .get(hotrod.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("data-customer=\"123\"") && page.contains("baggage"));
    let page = client()
        .get(hotrod.url("/trace"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("/api/traces"));
}
