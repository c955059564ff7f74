//! A sink for load runs: accepts OTLP/HTTP (and any other HTTP POST) and
//! Jaeger UDP datagrams, and discards them.
//!
//! `bench-sink --http-port N --udp-port M` (0 picks a free port; the chosen
//! ports are printed as `HTTP <n>` and `UDP <m>`).

use std::net::SocketAddr;

use axum::http::StatusCode;
use axum::Router;

fn arg(name: &str) -> u16 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let http =
        tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], arg("--http-port"))))
            .await?;
    let udp =
        tokio::net::UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], arg("--udp-port")))).await?;
    println!("HTTP {}", http.local_addr()?.port());
    println!("UDP {}", udp.local_addr()?.port());
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_536];
        while udp.recv_from(&mut buf).await.is_ok() {}
    });
    let app = Router::new().fallback(|_body: axum::body::Bytes| async { StatusCode::OK });
    axum::serve(http, app).await
}
