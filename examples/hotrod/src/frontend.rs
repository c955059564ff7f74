//! The frontend: the web page, `GET /dispatch?customer=ID`, and the
//! built-in trace view.
//!
//! `/dispatch` asks the customer service where the customer is (HTTP), the
//! driver service which drivers are nearby (gRPC), and the route service how
//! long each driver needs (HTTP, through a small worker pool), then sends
//! the fastest. None of these calls is wrapped in tracing code: the client
//! middleware makes each call's span a child of the request's server span.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::future::join_all;
use opentracing_api::SharedSpan;
use opentracing_jaeger::JaegerTracer;
use opentracing_reqwest::{RouteTemplate, TracingMiddleware};
use opentracing_tonic::{GrpcClientLayer, GrpcClientService};
use opentracing_tower::CurrentSpan;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tonic::transport::{Channel, Endpoint};

use crate::customer::Customer;
use crate::proto::driver_service_client::DriverServiceClient;
use crate::proto::{DriverLocation, DriverLocationRequest};
use crate::route::Route;
use crate::{http, traceview, Config, Error, Service, Telemetry};

/// The deadline of `FindNearest`.
const DRIVER_DEADLINE: Duration = Duration::from_secs(1);

const INDEX_HTML: &str = include_str!("../web/index.html");

/// The traced gRPC client of the driver service.
type DriverClient = DriverServiceClient<GrpcClientService<Channel, JaegerTracer>>;

/// What `/dispatch` answers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Dispatch {
    /// The driver's license plate.
    #[serde(rename = "Driver")]
    pub driver: String,
    /// Estimated time of arrival, in seconds.
    #[serde(rename = "ETA")]
    pub eta: u64,
}

/// Why a dispatch failed.
#[derive(Debug, thiserror::Error)]
enum DispatchError {
    #[error("{0}")]
    UnknownCustomer(String),
    #[error("{0}")]
    Failed(String),
}

struct Frontend {
    http: ClientWithMiddleware,
    driver: DriverClient,
    customer_url: String,
    route_url: String,
    pool: Semaphore,
    jaeger_ui: Option<String>,
}

impl Frontend {
    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: reqwest::Url,
        template: &'static str,
    ) -> Result<T, (StatusCode, String)> {
        let failed = |e: &dyn std::fmt::Display| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
        let resp = self
            .http
            .get(url)
            .with_extension(RouteTemplate::new(template))
            .send()
            .await
            .map_err(|e| failed(&e))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| failed(&e))?;
        if status.is_client_error() || status.is_server_error() {
            return Err((status, String::from_utf8_lossy(&body).into_owned()));
        }
        serde_json::from_slice(&body).map_err(|e| failed(&e))
    }

    async fn customer(&self, id: &str) -> Result<Customer, DispatchError> {
        let url = reqwest::Url::parse_with_params(&self.customer_url, [("customer", id)])
            .map_err(|e| DispatchError::Failed(e.to_string()))?;
        self.get_json(url, "/customer")
            .await
            .map_err(|(status, text)| match status {
                StatusCode::NOT_FOUND => DispatchError::UnknownCustomer(text),
                _ => DispatchError::Failed(format!("customer service: {text}")),
            })
    }

    async fn nearest_drivers(&self, location: &str) -> Result<Vec<DriverLocation>, DispatchError> {
        let mut request = tonic::Request::new(DriverLocationRequest {
            location: location.to_owned(),
        });
        request.set_timeout(DRIVER_DEADLINE);
        let mut client = self.driver.clone();
        match tokio::time::timeout(DRIVER_DEADLINE, client.find_nearest(request)).await {
            Ok(Ok(resp)) => Ok(resp.into_inner().locations),
            Ok(Err(status)) => Err(DispatchError::Failed(format!(
                "driver service: {}",
                status.message()
            ))),
            Err(_) => Err(DispatchError::Failed(
                "driver service: deadline exceeded".into(),
            )),
        }
    }

    async fn route(&self, pickup: &str, dropoff: &str) -> Result<Route, DispatchError> {
        // A worker of the pool: at most `pool size` calls at once.
        let _worker = self
            .pool
            .acquire()
            .await
            .map_err(|e| DispatchError::Failed(e.to_string()))?;
        let url = reqwest::Url::parse_with_params(
            &self.route_url,
            [("pickup", pickup), ("dropoff", dropoff)],
        )
        .map_err(|e| DispatchError::Failed(e.to_string()))?;
        self.get_json(url, "/route")
            .await
            .map_err(|(_, text)| DispatchError::Failed(format!("route service: {text}")))
    }

    /// The driver who can reach the customer first.
    async fn best_eta(
        &self,
        span: &SharedSpan,
        customer_id: &str,
    ) -> Result<Dispatch, DispatchError> {
        let customer = self.customer(customer_id).await?;
        tracing::info!(customer = %customer.name, location = %customer.location, "Found customer");
        // Every later span of the request, in every service, carries it.
        let _ = span.set_baggage_item("customer", customer.name.clone());

        let drivers = self.nearest_drivers(&customer.location).await?;
        tracing::info!(num_drivers = drivers.len(), "Found drivers");

        let routes = join_all(
            drivers
                .iter()
                .map(|d| self.route(&d.location, &customer.location)),
        )
        .await;
        let mut best: Option<Dispatch> = None;
        for (driver, route) in drivers.iter().zip(routes) {
            let route = route?;
            if best.as_ref().is_none_or(|b| route.eta < b.eta) {
                best = Some(Dispatch {
                    driver: driver.driver_id.clone(),
                    eta: route.eta,
                });
            }
        }
        tracing::info!(num_routes = drivers.len(), "Found routes");
        best.ok_or_else(|| DispatchError::Failed("no drivers available".into()))
    }
}

#[derive(Deserialize)]
struct DispatchQuery {
    customer: Option<String>,
}

async fn dispatch(
    State(fe): State<Arc<Frontend>>,
    CurrentSpan(span): CurrentSpan,
    Query(q): Query<DispatchQuery>,
) -> Response {
    let Some(customer) = q.customer.filter(|c| !c.is_empty()) else {
        return http::error(
            StatusCode::BAD_REQUEST,
            "Missing required 'customer' parameter",
        );
    };
    tracing::info!(customer = %customer, "Finding an appropriate driver for a customer");
    match fe.best_eta(&span, &customer).await {
        Ok(d) => {
            tracing::info!(driver = %d.driver, eta_sec = d.eta, "Dispatch successful");
            span.set_tag("driver", d.driver.clone());
            Json(d).into_response()
        }
        Err(DispatchError::UnknownCustomer(text)) => {
            tracing::warn!(customer = %customer, error = %text, "Unknown customer");
            http::error(StatusCode::NOT_FOUND, text)
        }
        Err(DispatchError::Failed(text)) => {
            tracing::error!(error = %text, "Dispatch failed");
            http::error(StatusCode::INTERNAL_SERVER_ERROR, text)
        }
    }
}

async fn index() -> Html<&'static str> {
    Html(INDEX_HTML)
}

async fn client_config(State(fe): State<Arc<Frontend>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "jaeger": fe.jaeger_ui.clone().unwrap_or_default() }))
}

/// The frontend's routes, traced: `/`, `/dispatch`, `/config`, and the
/// trace view (`/trace`, `/api/...`).
pub fn router(config: &Config, telemetry: &Telemetry) -> Result<Router, Error> {
    let tracer = telemetry.tracer("frontend")?;
    let http_client = ClientBuilder::new(
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(|e| Error::Setup(format!("HTTP client: {e}")))?,
    )
    .with(TracingMiddleware::new(tracer.clone()))
    .build();
    let driver_url = config.url(Service::Driver);
    let channel = Endpoint::from_shared(driver_url.clone())
        .map_err(|e| Error::Setup(format!("driver endpoint {driver_url}: {e}")))?
        .connect_timeout(DRIVER_DEADLINE)
        .connect_lazy();
    let origin = driver_url
        .parse()
        .map_err(|e| Error::Setup(format!("driver endpoint {driver_url}: {e}")))?;
    let channel = tower::ServiceBuilder::new()
        .layer(GrpcClientLayer::new(tracer.clone()).with_origin(origin))
        .service(channel);
    let fe = Arc::new(Frontend {
        http: http_client,
        driver: DriverServiceClient::new(channel),
        customer_url: format!("{}/customer", config.url(Service::Customer)),
        route_url: format!("{}/route", config.url(Service::Route)),
        pool: Semaphore::new(config.route_worker_pool_size.max(1)),
        jaeger_ui: config
            .jaeger_ui
            .as_ref()
            .map(|u| u.trim_end_matches('/').to_owned())
            .filter(|u| !u.is_empty()),
    });
    let app = Router::new()
        .route("/", get(index))
        .route("/dispatch", get(dispatch))
        .route("/config", get(client_config))
        .with_state(fe)
        .merge(traceview::router(telemetry))
        .route(
            "/favicon.ico",
            get(|| async { ([(CONTENT_TYPE, "image/svg+xml")], FAVICON) }),
        );
    Ok(http::instrument(app, tracer, telemetry, &["frontend"]))
}

const FAVICON: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#c0392b"/><text x="8" y="12" font-size="10" text-anchor="middle" fill="#fff" font-family="sans-serif">H</text></svg>"##;
