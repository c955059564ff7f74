//! Helpers shared by the end-to-end and interop tests.
//!
//! This crate is test infrastructure: a failure to start a peer or decode
//! its answer must fail the test loudly, so panicking is the right response.
#![allow(clippy::expect_used, clippy::unwrap_used)]

pub mod python_peer;
