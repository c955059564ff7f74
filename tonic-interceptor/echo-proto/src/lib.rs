//! The `bench.Echo` gRPC service, generated from `proto/echo.proto`: a
//! unary call, server-, client- and bidirectional streaming, each able to
//! end with a chosen status code. Used by the `opentracing-tonic` tests and
//! the `grpc-bench-server` benchmark binary.

#![allow(missing_docs, clippy::pedantic)] // generated code

/// The `bench` protobuf package.
pub mod bench {
    tonic::include_proto!("bench");
}

pub use bench::echo_client::EchoClient;
pub use bench::echo_server::{Echo, EchoServer};
pub use bench::{EchoReply, EchoRequest};
