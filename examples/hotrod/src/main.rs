//! `hotrod`: the HotROD demo's four services, all in one process (`hotrod
//! all`, the default) or one per process (`hotrod frontend` ...).

// The doc comments of `Args` are the `--help` text, printed as they are:
// no Markdown there.
#![allow(clippy::doc_markdown)]

use std::net::IpAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use hotrod::config::{parse_duration, DEFAULT_MAX_SPANS, MYSQL_GET_DELAY, ROUTE_WORKER_POOL_SIZE};
use hotrod::{Config, Service, Telemetry};
use opentracing_api::NoopTracer;
use opentracing_tracing_bridge::{OpenTracingLayer, WithTraceIds};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::prelude::*;

/// HotROD: Rides On Demand, a traced microservices demo.
///
/// Tracing is configured with the JAEGER_* and OTEL_* variables (for
/// example OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 for Jaeger v2,
/// JAEGER_AGENT_HOST=localhost for a Jaeger v1 agent). With no exporter
/// variable set, spans stay in memory and the frontend shows them at
/// /trace.
#[derive(Parser, Debug)]
#[command(name = "hotrod", version)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,

    /// Port of the frontend service.
    #[arg(short = 'f', long, default_value_t = 8080, global = true)]
    frontend_service_port: u16,
    /// Port of the customer service.
    #[arg(short = 'c', long, default_value_t = 8081, global = true)]
    customer_service_port: u16,
    /// Port of the driver service.
    #[arg(short = 'd', long, default_value_t = 8082, global = true)]
    driver_service_port: u16,
    /// Port of the route service.
    #[arg(short = 'r', long, default_value_t = 8083, global = true)]
    route_service_port: u16,
    /// Address the services listen on.
    #[arg(long, default_value = "127.0.0.1", global = true)]
    bind: IpAddr,

    /// Mean delay of the simulated MySQL query (e.g. 300ms, 0.1s).
    #[arg(short = 'D', long, value_parser = parse_duration, default_value = "300ms", global = true)]
    fix_db_query_delay: Duration,
    /// Serve MySQL queries without the single-connection lock.
    #[arg(short = 'M', long, global = true)]
    fix_disable_db_conn_mutex: bool,
    /// Concurrent route calls per frontend.
    #[arg(short = 'W', long, default_value_t = ROUTE_WORKER_POOL_SIZE, global = true)]
    fix_route_worker_pool_size: usize,

    /// Jaeger UI address to link traces to (e.g. http://localhost:16686);
    /// by default they link to the built-in trace view.
    #[arg(short = 'j', long, global = true)]
    jaeger_ui: Option<String>,
    /// Spans each service keeps in memory for the trace view.
    #[arg(long, default_value_t = DEFAULT_MAX_SPANS, global = true)]
    max_spans: usize,
}

#[derive(Subcommand, Debug, Clone, Copy, PartialEq, Eq)]
enum Command {
    /// Runs all four services (the default).
    All,
    /// Runs the frontend: the web page, /dispatch and the trace view.
    Frontend,
    /// Runs the customer service (and the simulated MySQL).
    Customer,
    /// Runs the driver service (and the simulated Redis).
    Driver,
    /// Runs the route service.
    Route,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::registry()
        // `info!` and friends inside a request become logs of its span.
        .with(
            OpenTracingLayer::new(NoopTracer)
                .with_spans(false)
                .with_filter(LevelFilter::INFO),
        )
        // The console: every line inside a request carries its trace id.
        .with(
            tracing_subscriber::fmt::layer()
                .event_format(WithTraceIds::new(tracing_subscriber::fmt::format()))
                .with_filter(
                    Targets::new()
                        .with_default(LevelFilter::WARN)
                        .with_target("hotrod", LevelFilter::INFO),
                ),
        )
        .init();

    let services: Vec<Service> = match args.command.unwrap_or(Command::All) {
        Command::All => Service::ALL.to_vec(),
        Command::Frontend => vec![Service::Frontend],
        Command::Customer => vec![Service::Customer],
        Command::Driver => vec![Service::Driver],
        Command::Route => vec![Service::Route],
    };
    let config = Config {
        bind: args.bind,
        frontend_port: args.frontend_service_port,
        customer_port: args.customer_service_port,
        driver_port: args.driver_service_port,
        route_port: args.route_service_port,
        mysql_delay: args.fix_db_query_delay,
        mysql_mutex_disabled: args.fix_disable_db_conn_mutex,
        route_worker_pool_size: args.fix_route_worker_pool_size.max(1),
        jaeger_ui: args.jaeger_ui,
    };
    if config.mysql_delay != MYSQL_GET_DELAY {
        tracing::info!(delay = ?config.mysql_delay, "fix: overriding MySQL query delay");
    }
    if config.mysql_mutex_disabled {
        tracing::info!("fix: disabling db connection mutex");
    }
    if config.route_worker_pool_size != ROUTE_WORKER_POOL_SIZE {
        tracing::info!(
            size = config.route_worker_pool_size,
            "fix: overriding route worker pool size"
        );
    }
    let telemetry = Telemetry::with_vars(|name| std::env::var(name).ok(), args.max_spans);

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hotrod: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        tracing::info!(
            "Starting services: {}",
            services
                .iter()
                .map(|s| s.name())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let running = hotrod::start(&services, &config, &telemetry).await?;
        if let Some(addr) = running.addr(Service::Frontend) {
            tracing::info!("Open http://{addr} in a browser; traces at http://{addr}/trace");
        }
        tokio::select! {
            () = running.wait() => {}
            () = shutdown_signal() => tracing::info!("Shutting down"),
        }
        Ok::<(), hotrod::Error>(())
    });
    // Deliver the spans still queued.
    telemetry.close(Duration::from_secs(5));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hotrod: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Ctrl-C, or SIGTERM (how containers are stopped).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
