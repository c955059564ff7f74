//! HotROD, "Rides On Demand": a ride-sharing demo of four microservices
//! (`frontend`, `customer`, `driver`, `route`) and two simulated storage
//! backends (`mysql`, `redis`), traced end to end with OpenTracing.
//!
//! Every HTTP and gRPC span comes from the instrumentation layers
//! (`opentracing-tower`, `opentracing-reqwest`, `opentracing-tonic`): the
//! service code makes no tracing calls around its remote calls. The only
//! spans started by hand are those of the simulated databases, which make
//! no remote calls to instrument. Logs written with `tracing::info!` land on
//! the current span through `opentracing-tracing-bridge`.
//!
//! The binary runs all services in one process (`hotrod all`) or one per
//! process; [`start`] does the same for tests and embedders:
//!
//! ```no_run
//! # async fn demo() -> Result<(), hotrod::Error> {
//! let config = hotrod::Config::default();
//! let telemetry = hotrod::Telemetry::from_env();
//! let running = hotrod::start(&hotrod::Service::ALL, &config, &telemetry).await?;
//! println!("open http://{}", running.addr(hotrod::Service::Frontend).unwrap());
//! # Ok(()) }
//! ```

pub mod config;
pub mod customer;
pub mod delay;
pub mod driver;
pub mod frontend;
mod http;
mod lock;
pub mod route;
pub mod store;
pub mod telemetry;
mod traceview;

use std::net::SocketAddr;

pub use config::Config;
pub use store::SpanStore;
pub use telemetry::Telemetry;

/// The gRPC messages and service of the driver service (`driver.proto`).
#[allow(missing_docs, clippy::pedantic)] // generated code
pub mod proto {
    tonic::include_proto!("driver");
}

/// One of HotROD's four microservices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Service {
    /// The web page, `/dispatch`, and the trace view.
    Frontend,
    /// `/customer`, backed by the simulated MySQL.
    Customer,
    /// gRPC `driver.DriverService/FindNearest`, backed by the simulated Redis.
    Driver,
    /// `/route`, with per-customer and per-session compute time.
    Route,
}

impl Service {
    /// The four services, in the order `all` starts them.
    pub const ALL: [Service; 4] = [
        Service::Customer,
        Service::Driver,
        Service::Route,
        Service::Frontend,
    ];

    /// The service name, as the tracer reports it.
    pub fn name(self) -> &'static str {
        match self {
            Service::Frontend => "frontend",
            Service::Customer => "customer",
            Service::Driver => "driver",
            Service::Route => "route",
        }
    }
}

/// Why HotROD could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tracer could not be configured from the environment.
    #[error("tracer configuration: {0}")]
    Tracer(#[from] opentracing_jaeger::ConfigError),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// Another setup failure.
    #[error("{0}")]
    Setup(String),
}

/// The services started by [`start`], with the addresses they listen on.
#[derive(Debug)]
pub struct Running {
    addrs: Vec<(Service, SocketAddr)>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Where `service` listens, if it was started.
    pub fn addr(&self, service: Service) -> Option<SocketAddr> {
        self.addrs
            .iter()
            .find(|(s, _)| *s == service)
            .map(|(_, a)| *a)
    }

    /// Waits until every server has stopped (normally never).
    pub async fn wait(self) {
        for t in self.tasks {
            let _ = t.await;
        }
    }

    /// Stops the servers.
    pub fn abort(&self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Starts `services` on the ports of `config` (port 0 picks a free one,
/// which only works for services nobody else in the process needs to find:
/// the services reach each other at `127.0.0.1` on the configured ports).
pub async fn start(
    services: &[Service],
    config: &Config,
    telemetry: &Telemetry,
) -> Result<Running, Error> {
    let mut running = Running {
        addrs: Vec::new(),
        tasks: Vec::new(),
    };
    for &service in services {
        let addr = SocketAddr::new(config.bind, config.port(service));
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| Error::Bind { addr, source })?;
        let app = match service {
            Service::Frontend => frontend::router(config, telemetry)?,
            Service::Customer => customer::router(config, telemetry)?,
            Service::Driver => driver::router(telemetry)?,
            Service::Route => route::router(telemetry)?,
        };
        tracing::info!(service = service.name(), address = %format!("http://{local}"), "Starting");
        running.addrs.push((service, local));
        running.tasks.push(tokio::spawn(async move {
            let served = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await;
            if let Err(e) = served {
                tracing::error!(service = service.name(), error = %e, "Server stopped");
            }
        }));
    }
    Ok(running)
}

/// Runs the four services in this process until they stop.
pub async fn run_all(config: &Config, telemetry: &Telemetry) -> Result<(), Error> {
    start(&Service::ALL, config, telemetry).await?.wait().await;
    Ok(())
}
