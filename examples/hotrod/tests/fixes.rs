//! The walk-through's fixes change what they should, seen in span timing
//! relations: the mysql lock serializes concurrent queries (and its logs
//! name who waits for whom) unless disabled; the route worker pool bounds
//! how many route calls overlap.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{caller_context, client, field, max_overlap, Hotrod, Span, Trace};
use serde_json::Value;

/// Sends `n` dispatches at once, each with its own trace and request id
/// `{session}-{i}`; returns the traces, complete.
///
/// The simulated Redis fails every fifth call, counting the calls of all
/// requests: under concurrency one driver's three attempts can all fail,
/// and that dispatch answers 500, as Jaeger's Go HotROD does. Such a trace is
/// kept (its customer lookup is all these tests need), without its routes.
async fn concurrent_dispatches(hotrod: &Hotrod, session: &str, n: usize) -> Vec<Trace> {
    let customers = ["123", "392", "731", "567"];
    let requests = (0..n).map(|i| {
        let (traceparent, trace_id, _) = caller_context();
        let url = hotrod.url(&format!("/dispatch?customer={}", customers[i % 4]));
        let baggage = format!("session={session}, request={session}-{}", i + 1);
        async move {
            let resp = client()
                .get(url)
                .header("traceparent", traceparent)
                .header("baggage", baggage)
                .send()
                .await
                .unwrap();
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            let complete = status == 200;
            assert!(
                complete || (status == 500 && body.contains("redis timeout")),
                "{status}: {body}"
            );
            (trace_id, complete)
        }
    });
    let ids = futures_util::future::join_all(requests).await;
    let mut traces = Vec::new();
    for (id, complete) in ids {
        let trace = if complete {
            hotrod.trace(&id, Trace::dispatch_complete).await
        } else {
            hotrod
                .trace(&id, |t| {
                    t.find("frontend", "GET /dispatch").len() == 1
                        && t.find("mysql", "SQL SELECT").len() == 1
                })
                .await
        };
        traces.push(trace);
    }
    traces
}

fn mysql_spans(traces: &[Trace]) -> Vec<Span> {
    traces
        .iter()
        .map(|t| t.one("mysql", "SQL SELECT", "client").clone())
        .collect()
}

/// When the span got the lock.
fn acquired_at(s: &Span) -> i64 {
    let logs = s.logs_starting("Acquired lock with");
    assert_eq!(logs.len(), 1, "{:#?}", s.logs);
    logs[0].0
}

#[tokio::test(flavor = "multi_thread")]
async fn the_db_lock_serializes_queries_and_names_the_blockers() {
    let hotrod = Hotrod::start(&["--fix-db-query-delay", "40ms"]).await;
    let traces = concurrent_dispatches(&hotrod, "7001", 4).await;
    let mut mysql = mysql_spans(&traces);

    // One query at a time: each gets the lock only once the previous one
    // is done (its span finishes, then it releases the lock).
    mysql.sort_by_key(acquired_at);
    for w in mysql.windows(2) {
        assert!(
            acquired_at(&w[1]) >= w[0].end(),
            "overlapping queries: {mysql:#?}"
        );
    }
    // So the spans form a staircase: each later one lasts longer, having
    // waited for the others.
    let first_end = mysql[0].end();
    assert!(mysql[1..].iter().all(|s| s.end() > first_end));

    // The waiting queries say for whom, by the request ids of the
    // other requests' baggage; none passed them as a parameter.
    let waited: Vec<&Span> = mysql
        .iter()
        .filter(|s| !s.logs_starting("Waiting for lock behind").is_empty())
        .collect();
    assert!(waited.len() >= 2, "{mysql:#?}");
    for s in waited {
        let own = s.tag("request").and_then(Value::as_str).unwrap().to_owned();
        assert!(own.starts_with("7001-"));
        let log = s.logs_starting("Waiting for lock behind")[0];
        let event = field(log, "event").and_then(Value::as_str).unwrap();
        let blockers = field(log, "blockers").and_then(Value::as_str).unwrap();
        let named: Vec<&str> = blockers.trim_matches(['[', ']']).split(' ').collect();
        assert_eq!(
            event,
            format!("Waiting for lock behind {} transactions", named.len())
        );
        assert!(
            named.iter().all(|r| r.starts_with("7001-") && *r != own),
            "{blockers}"
        );
    }
    // And the console says it too.
    assert!(hotrod.stdout().contains("Waiting for lock behind"));
}

#[tokio::test(flavor = "multi_thread")]
async fn fixed_db_and_pool_run_queries_and_routes_in_parallel() {
    let hotrod = Hotrod::start(&[
        "--fix-db-query-delay",
        "40ms",
        "--fix-disable-db-conn-mutex",
        "--fix-route-worker-pool-size",
        "10",
    ])
    .await;

    // No lock: the concurrent queries overlap, and nothing waits.
    let traces = concurrent_dispatches(&hotrod, "7002", 4).await;
    let mysql = mysql_spans(&traces);
    let refs: Vec<&Span> = mysql.iter().collect();
    assert!(max_overlap(&refs) >= 2, "{mysql:#?}");
    assert!(mysql.iter().all(|s| s.logs.is_empty()), "{mysql:#?}");

    // Ten workers: the ten route calls of a dispatch run side by side.
    let mut widths = Vec::new();
    for _ in 0..3 {
        let trace = &concurrent_dispatches(&hotrod, "7003", 1).await[0];
        widths.push(max_overlap(&trace.find("frontend", "GET /route")));
        if widths.last() == Some(&10) {
            break;
        }
    }
    assert!(widths.contains(&10), "route calls at once: {widths:?}");
    assert!(
        widths.iter().all(|w| *w > 3),
        "route calls at once: {widths:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn three_workers_run_three_route_calls_at_a_time() {
    let hotrod = Hotrod::start(&["--fix-db-query-delay", "5ms"]).await;
    let trace = &concurrent_dispatches(&hotrod, "7004", 1).await[0];
    let clients = trace.find("frontend", "GET /route");
    assert_eq!(max_overlap(&clients), 3, "{clients:#?}");
    // As soon as one call ends, the next starts: the 4th starts after the
    // first has ended.
    let mut by_start = clients.clone();
    by_start.sort_by_key(|s| s.start);
    let first_end = by_start[..3].iter().map(|s| s.end()).min().unwrap();
    assert!(by_start[3].start >= first_end);
    // The server spans, too, never run more than three at once.
    let servers = trace.find("route", "GET /route");
    assert!(max_overlap(&servers) <= 3);
}
