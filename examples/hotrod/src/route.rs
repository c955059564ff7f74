//! The route service: `GET /route?pickup=&dropoff=` computes an ETA, and
//! attributes the compute time to the customer and the web session found in
//! the request's baggage (`GET /debug/vars`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use opentracing_tower::CurrentSpan;
use serde::{Deserialize, Serialize};

use crate::config::ROUTE_CALC_DELAY;
use crate::{delay, http, Error, Telemetry};

/// A computed route.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Route {
    /// Where the driver is.
    pub pickup: String,
    /// Where the customer is.
    pub dropoff: String,
    /// Estimated time of arrival, in seconds.
    #[serde(rename = "ETA")]
    pub eta: u64,
}

/// Most customers, and most sessions, [`RouteStats`] keeps apart; the time
/// of any further ones is added up under [`OTHER_KEY`]. The keys come from
/// the callers' baggage, so without a bound any caller could grow the maps
/// (and `/debug/vars`) for good.
pub const MAX_STATS_KEYS: usize = 1000;

/// The key of the time spent for customers and sessions past
/// [`MAX_STATS_KEYS`].
pub const OTHER_KEY: &str = "other";

/// Compute seconds spent per customer and per web session, from baggage
/// (at most [`MAX_STATS_KEYS`] of each).
#[derive(Debug, Default)]
pub struct RouteStats {
    by_customer: Mutex<BTreeMap<String, f64>>,
    by_session: Mutex<BTreeMap<String, f64>>,
}

impl RouteStats {
    fn add(&self, customer: Option<String>, session: Option<String>, spent: Duration) {
        let secs = spent.as_secs_f64();
        for (map, key) in [(&self.by_customer, customer), (&self.by_session, session)] {
            if let Some(key) = key.filter(|k| !k.is_empty()) {
                let mut map = map.lock().unwrap_or_else(PoisonError::into_inner);
                let key = if map.len() < MAX_STATS_KEYS || map.contains_key(&key) {
                    key
                } else {
                    OTHER_KEY.to_owned()
                };
                *map.entry(key).or_default() += secs;
            }
        }
    }

    /// `{"route.calc.by.customer.sec": {...}, "route.calc.by.session.sec": {...}}`.
    pub fn to_json(&self) -> serde_json::Value {
        let round = |m: &Mutex<BTreeMap<String, f64>>| -> BTreeMap<String, f64> {
            m.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .map(|(k, v)| (k.clone(), (v * 1000.0).round() / 1000.0))
                .collect()
        };
        serde_json::json!({
            "route.calc.by.customer.sec": round(&self.by_customer),
            "route.calc.by.session.sec": round(&self.by_session),
        })
    }
}

#[derive(Deserialize)]
struct RouteQuery {
    pickup: Option<String>,
    dropoff: Option<String>,
}

async fn find_route(
    State(stats): State<Arc<RouteStats>>,
    CurrentSpan(span): CurrentSpan,
    Query(q): Query<RouteQuery>,
) -> Response {
    let (Some(pickup), Some(dropoff)) = (
        q.pickup.filter(|p| !p.is_empty()),
        q.dropoff.filter(|d| !d.is_empty()),
    ) else {
        return http::error(
            StatusCode::BAD_REQUEST,
            "Missing required 'pickup' or 'dropoff' parameter",
        );
    };
    tracing::info!(pickup = %pickup, dropoff = %dropoff, "Computing route");
    let started = Instant::now();
    delay::sleep(ROUTE_CALC_DELAY, ROUTE_CALC_DELAY / 4).await;
    let minutes = delay::normal(5.0, 3.0).max(2.0).trunc();
    #[allow(clippy::cast_sign_loss)]
    let eta = (minutes as u64) * 60;
    // The customer and session were never passed as parameters: they
    // travel in the trace's baggage.
    stats.add(
        span.baggage_item("customer"),
        span.baggage_item("session"),
        started.elapsed(),
    );
    Json(Route {
        pickup,
        dropoff,
        eta,
    })
    .into_response()
}

/// The route service's routes, traced, with `/debug/vars`.
pub fn router(telemetry: &Telemetry) -> Result<Router, Error> {
    let stats = Arc::new(RouteStats::default());
    let vars = stats.clone();
    let app = Router::new()
        .route("/route", get(find_route))
        .route(
            "/debug/vars",
            get(move || async move { Json(vars.to_json()) }),
        )
        .with_state(stats);
    Ok(http::instrument(
        app,
        telemetry.tracer("route")?,
        telemetry,
        &["route"],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_keep_at_most_the_bound_of_keys_apart() {
        let stats = RouteStats::default();
        let ms = Duration::from_millis(1);
        for i in 0..MAX_STATS_KEYS + 50 {
            stats.add(Some("123".into()), Some(format!("s{i}")), ms);
        }
        // A session already kept still gets its own time.
        stats.add(None, Some("s0".into()), ms);
        let json = stats.to_json();
        let sessions = json["route.calc.by.session.sec"]
            .as_object()
            .expect("an object");
        assert_eq!(sessions.len(), MAX_STATS_KEYS + 1);
        assert_eq!(sessions["s0"], 0.002);
        assert_eq!(sessions[OTHER_KEY], 0.05);
        assert!(!sessions.contains_key(&format!("s{MAX_STATS_KEYS}")));
        assert_eq!(json["route.calc.by.customer.sec"]["123"], 1.05);
    }
}
