//! The built-in trace view: the spans of the process's [`SpanStore`]
//! through the JSON API of Jaeger's query service, and a page that draws
//! them.
//!
//! - `GET /api/traces/{traceID}`
//! - `GET /api/traces?service=&operation=&tags=&limit=&lookback=&minDuration=&maxDuration=`
//! - `GET /api/services`, `GET /api/services/{service}/operations`
//! - `GET /trace` (search) and `GET /trace/{traceID}` (timeline)

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use opentracing_api::TraceId;
use serde_json::{json, Value};

use crate::store::{envelope, trace_json, Query as TraceQuery};
use crate::Telemetry;

const TRACE_HTML: &str = include_str!("../web/trace.html");

/// Makes sure the spans finished so far are in the store.
async fn flushed(telemetry: &Telemetry) {
    telemetry.flushed(Duration::from_millis(500)).await;
}

fn not_found(message: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({
            "data": null, "total": 0, "limit": 0, "offset": 0,
            "errors": [{ "code": 404, "msg": message }],
        })),
    )
        .into_response()
}

async fn get_trace(State(telemetry): State<Telemetry>, Path(id): Path<String>) -> Response {
    let Some(trace_id) = TraceId::from_hex(id.trim().as_bytes()).filter(|t| t.is_valid()) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({
                "data": null, "total": 0, "limit": 0, "offset": 0,
                "errors": [{ "code": 400, "msg": format!("malformed trace id {id:?}") }],
            })),
        )
            .into_response();
    };
    flushed(&telemetry).await;
    match telemetry.store().trace(trace_id) {
        Some(trace) => Json(envelope(&json!([trace_json(&trace)]))).into_response(),
        None => not_found("trace not found"),
    }
}

async fn find_traces(
    State(telemetry): State<Telemetry>,
    Query(params): Query<HashMap<String, String>>,
) -> Json<Value> {
    flushed(&telemetry).await;
    let query = TraceQuery::from_params(&params);
    let traces: Vec<Value> = telemetry
        .store()
        .search(&query)
        .iter()
        .map(trace_json)
        .collect();
    Json(envelope(&Value::Array(traces)))
}

async fn services(State(telemetry): State<Telemetry>) -> Json<Value> {
    flushed(&telemetry).await;
    Json(envelope(&json!(telemetry.store().services())))
}

async fn operations(
    State(telemetry): State<Telemetry>,
    Path(service): Path<String>,
) -> Json<Value> {
    flushed(&telemetry).await;
    Json(envelope(&json!(telemetry.store().operations(&service))))
}

async fn page() -> Html<&'static str> {
    Html(TRACE_HTML)
}

/// The trace view's routes.
pub(crate) fn router(telemetry: &Telemetry) -> Router {
    Router::new()
        .route("/api/traces", get(find_traces))
        .route("/api/traces/{id}", get(get_trace))
        .route("/api/services", get(services))
        .route("/api/services/{service}/operations", get(operations))
        .route("/trace", get(page))
        .route("/trace/{id}", get(page))
        .with_state(telemetry.clone())
}
