//! The driver service: gRPC `driver.DriverService/FindNearest`, backed by a
//! simulated Redis that times out now and then.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use axum::Router;
use opentracing_api::{tags, SpanFutureExt, TracerExt};
use opentracing_jaeger::JaegerTracer;
use opentracing_tonic::GrpcServerLayer;
use rand::Rng;
use tonic::{Request, Response, Status};

use crate::config::{REDIS_FIND_DELAY, REDIS_GET_DELAY};
use crate::proto::driver_service_server::{DriverService, DriverServiceServer};
use crate::proto::{DriverLocation, DriverLocationRequest, DriverLocationResponse};
use crate::{delay, Error, Telemetry};

/// Attempts of `GetDriver` per driver.
const GET_DRIVER_ATTEMPTS: u32 = 3;
/// Drivers `FindDriverIDs` returns.
const NEARBY_DRIVERS: usize = 10;

/// The simulated Redis: `FindDriverIDs` and `GetDriver`, each a client span
/// of the `redis` service. The first `GetDriver` call and every fifth after
/// it time out.
#[derive(Debug)]
pub struct Redis {
    tracer: JaegerTracer,
    calls: AtomicU64,
}

/// A `GetDriver` failure.
#[derive(Debug, thiserror::Error)]
#[error("redis timeout")]
pub struct RedisTimeout;

impl Redis {
    /// A Redis traced with `tracer` (service `redis`).
    pub fn new(tracer: JaegerTracer) -> Self {
        Redis {
            tracer,
            calls: AtomicU64::new(0),
        }
    }

    /// The ids of the drivers near `location`.
    pub async fn find_driver_ids(&self, location: &str) -> Vec<String> {
        let span = self
            .tracer
            .span("FindDriverIDs")
            .tag(tags::SPAN_KIND, tags::SPAN_KIND_CLIENT)
            .tag(tags::PEER_SERVICE, "redis")
            .tag("param.location", location.to_owned())
            .start_shared();
        delay::sleep(REDIS_FIND_DELAY, REDIS_FIND_DELAY / 4)
            .with_span(span.clone())
            .await;
        span.finish();
        let mut rng = rand::rng();
        (0..NEARBY_DRIVERS)
            .map(|_| format!("T7{:05}C", rng.random_range(0..100_000)))
            .collect()
    }

    /// The location of driver `id`.
    pub async fn get_driver(&self, id: &str) -> Result<DriverLocation, RedisTimeout> {
        let span = self
            .tracer
            .span("GetDriver")
            .tag(tags::SPAN_KIND, tags::SPAN_KIND_CLIENT)
            .tag(tags::PEER_SERVICE, "redis")
            .tag("param.driverID", id.to_owned())
            .start_shared();
        let result = async {
            delay::sleep(REDIS_GET_DELAY, REDIS_GET_DELAY / 4).await;
            if self.calls.fetch_add(1, Ordering::Relaxed) % 5 == 0 {
                delay::sleep(2 * REDIS_GET_DELAY, REDIS_GET_DELAY / 4).await;
                // An error event marks the span failed.
                tracing::error!(driver_id = %id, "redis timeout");
                return Err(RedisTimeout);
            }
            let mut rng = rand::rng();
            Ok(DriverLocation {
                driver_id: id.to_owned(),
                location: format!(
                    "{},{}",
                    rng.random_range(0..1000),
                    rng.random_range(0..1000)
                ),
            })
        }
        .with_span(span.clone())
        .await;
        span.finish();
        result
    }
}

/// The `DriverService` implementation.
#[derive(Debug, Clone)]
pub struct Driver {
    redis: Arc<Redis>,
}

impl Driver {
    /// A driver service reading from `redis`.
    pub fn new(redis: Arc<Redis>) -> Self {
        Driver { redis }
    }
}

#[tonic::async_trait]
impl DriverService for Driver {
    async fn find_nearest(
        &self,
        request: Request<DriverLocationRequest>,
    ) -> Result<Response<DriverLocationResponse>, Status> {
        let location = request.into_inner().location;
        tracing::info!(location = %location, "Searching for nearby drivers");
        let ids = self.redis.find_driver_ids(&location).await;
        let mut locations = Vec::with_capacity(ids.len());
        for id in ids {
            let mut found = None;
            for attempt in 1..=GET_DRIVER_ATTEMPTS {
                match self.redis.get_driver(&id).await {
                    Ok(driver) => {
                        found = Some(driver);
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(retry_no = attempt, driver_id = %id, error = %e, "Retrying GetDriver after error");
                    }
                }
            }
            let Some(driver) = found else {
                tracing::error!(driver_id = %id, "Failed to get driver after {GET_DRIVER_ATTEMPTS} attempts");
                return Err(Status::unavailable(format!(
                    "failed to get driver {id} after {GET_DRIVER_ATTEMPTS} attempts: redis timeout"
                )));
            };
            locations.push(driver);
        }
        tracing::info!(num_drivers = locations.len(), "Search successful");
        Ok(Response::new(DriverLocationResponse { locations }))
    }
}

/// The driver service: the gRPC service, traced, and `/metrics` on the
/// same port (HTTP/1.1 and HTTP/2 are both served).
pub fn router(telemetry: &Telemetry) -> Result<Router, Error> {
    let redis = Arc::new(Redis::new(telemetry.tracer("redis")?));
    let grpc = tonic::service::Routes::new(DriverServiceServer::new(Driver::new(redis)))
        .into_axum_router()
        .layer(
            GrpcServerLayer::new(telemetry.tracer("driver")?)
                .with_observer(telemetry.rpc_metrics("driver")),
        );
    let scrape = telemetry.clone();
    Ok(grpc.route(
        "/metrics",
        get(move || async move {
            (
                [(CONTENT_TYPE, "text/plain; version=0.0.4")],
                scrape.prometheus_text(&["driver", "redis"]),
            )
        }),
    ))
}
