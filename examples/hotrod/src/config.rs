//! The knobs of the demo: ports, and the three "fixes" of the walk-through.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use crate::Service;

/// Mean delay of the simulated `SELECT` (standard deviation: a tenth of it).
pub const MYSQL_GET_DELAY: Duration = Duration::from_millis(300);
/// Mean delay of the simulated Redis `FindDriverIDs` (deviation: a quarter).
pub const REDIS_FIND_DELAY: Duration = Duration::from_millis(20);
/// Mean delay of the simulated Redis `GetDriver` (deviation: a quarter).
pub const REDIS_GET_DELAY: Duration = Duration::from_millis(10);
/// Mean time of a route computation (deviation: a quarter).
pub const ROUTE_CALC_DELAY: Duration = Duration::from_millis(50);
/// Concurrent calls from the frontend to the route service.
pub const ROUTE_WORKER_POOL_SIZE: usize = 3;
/// Spans each service keeps in memory for the trace view.
pub const DEFAULT_MAX_SPANS: usize = 20_000;

/// How HotROD runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// The address every service listens on (`127.0.0.1` by default).
    pub bind: IpAddr,
    /// The frontend's port (8080).
    pub frontend_port: u16,
    /// The customer service's port (8081).
    pub customer_port: u16,
    /// The driver service's port (8082).
    pub driver_port: u16,
    /// The route service's port (8083).
    pub route_port: u16,
    /// Mean delay of the simulated MySQL query (300 ms).
    pub mysql_delay: Duration,
    /// Whether the simulated MySQL serves queries without its one
    /// connection lock.
    pub mysql_mutex_disabled: bool,
    /// How many route calls the frontend makes at once (3).
    pub route_worker_pool_size: usize,
    /// The Jaeger UI the web page links traces to; `None` links them to the
    /// built-in trace view.
    pub jaeger_ui: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            frontend_port: 8080,
            customer_port: 8081,
            driver_port: 8082,
            route_port: 8083,
            mysql_delay: MYSQL_GET_DELAY,
            mysql_mutex_disabled: false,
            route_worker_pool_size: ROUTE_WORKER_POOL_SIZE,
            jaeger_ui: None,
        }
    }
}

impl Config {
    /// The port `service` listens on.
    pub fn port(&self, service: Service) -> u16 {
        match service {
            Service::Frontend => self.frontend_port,
            Service::Customer => self.customer_port,
            Service::Driver => self.driver_port,
            Service::Route => self.route_port,
        }
    }

    /// Where the other services reach `service`.
    pub fn url(&self, service: Service) -> String {
        format!("http://127.0.0.1:{}", self.port(service))
    }
}

/// Parses a duration: `300ms`, `1.5s`, `250us`, `2m`, or plain milliseconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 300ms, 1s)"))?;
    let scale = match unit.trim() {
        "" | "ms" => 1e-3,
        "s" => 1.0,
        "us" | "µs" => 1e-6,
        "ns" => 1e-9,
        "m" | "min" => 60.0,
        other => return Err(format!("unknown unit {other:?} in {s:?}")),
    };
    Duration::try_from_secs_f64(value * scale).map_err(|e| format!("{s:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_millis(30)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3 parsecs").is_err());
    }
}
