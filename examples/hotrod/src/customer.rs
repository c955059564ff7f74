//! The customer service: `GET /customer?customer=ID`, reading from a
//! simulated MySQL database whose single connection serializes queries.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use opentracing_api::{tags, SpanFutureExt, TracerExt};
use opentracing_jaeger::JaegerTracer;
use serde::{Deserialize, Serialize};

use crate::lock::TracedMutex;
use crate::{delay, http, Config, Error, Telemetry};

/// A customer: where cars are sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Customer {
    /// The customer id.
    #[serde(rename = "ID")]
    pub id: String,
    /// The business name.
    pub name: String,
    /// Where it is, `x,y`.
    pub location: String,
}

/// The four customers of the demo: id, name, location.
pub const CUSTOMERS: [(&str, &str, &str); 4] = [
    ("123", "Rachel's Floral Designs", "115,277"),
    ("567", "Amazing Coffee Roasters", "211,653"),
    ("392", "Trom Chocolatier", "577,322"),
    ("731", "Japanese Desserts", "728,326"),
];

/// The simulated MySQL database.
#[derive(Debug)]
pub struct Database {
    tracer: JaegerTracer,
    customers: HashMap<String, Customer>,
    lock: Option<TracedMutex>,
    delay: Duration,
}

impl Database {
    /// A database queried through `tracer` (service `mysql`), taking
    /// `delay` on average per query, and serializing queries unless
    /// `mutex_disabled`.
    pub fn new(tracer: JaegerTracer, delay: Duration, mutex_disabled: bool) -> Self {
        let customers = CUSTOMERS
            .iter()
            .map(|(id, name, location)| {
                (
                    (*id).to_owned(),
                    Customer {
                        id: (*id).to_owned(),
                        name: (*name).to_owned(),
                        location: (*location).to_owned(),
                    },
                )
            })
            .collect();
        Database {
            tracer,
            customers,
            lock: (!mutex_disabled).then(TracedMutex::default),
            delay,
        }
    }

    /// `SELECT * FROM customer WHERE customer_id=<id>`: a client span of
    /// the `mysql` service, child of the current span.
    pub async fn get(&self, id: &str) -> Option<Customer> {
        let query = format!("SELECT * FROM customer WHERE customer_id={id}");
        let span = self
            .tracer
            .span("SQL SELECT")
            .tag(tags::SPAN_KIND, tags::SPAN_KIND_CLIENT)
            .tag(tags::PEER_SERVICE, "mysql")
            .tag("sql.query", query)
            .start_shared();
        let (found, connection) = async {
            // One connection for everybody: a misconfigured pool.
            let connection = match &self.lock {
                Some(lock) => Some(lock.lock().await),
                None => None,
            };
            delay::sleep(self.delay, self.delay / 10).await;
            (self.customers.get(id).cloned(), connection)
        }
        .with_span(span.clone())
        .await;
        // The query is over; then the connection goes back.
        span.finish();
        drop(connection);
        found
    }
}

#[derive(Deserialize)]
struct CustomerQuery {
    customer: Option<String>,
}

async fn get_customer(State(db): State<Arc<Database>>, Query(q): Query<CustomerQuery>) -> Response {
    let Some(id) = q.customer.filter(|c| !c.is_empty()) else {
        return http::error(
            StatusCode::BAD_REQUEST,
            "Missing required 'customer' parameter",
        );
    };
    tracing::info!(customer_id = %id, "Loading customer");
    if let Some(c) = db.get(&id).await {
        Json(c).into_response()
    } else {
        tracing::warn!(customer_id = %id, "invalid customer ID");
        http::error(StatusCode::NOT_FOUND, "invalid customer ID")
    }
}

/// The customer service's routes, traced.
pub fn router(config: &Config, telemetry: &Telemetry) -> Result<Router, Error> {
    let db = Arc::new(Database::new(
        telemetry.tracer("mysql")?,
        config.mysql_delay,
        config.mysql_mutex_disabled,
    ));
    let app = Router::new()
        .route("/customer", get(get_customer))
        .with_state(db);
    Ok(http::instrument(
        app,
        telemetry.tracer("customer")?,
        telemetry,
        &["customer", "mysql"],
    ))
}
