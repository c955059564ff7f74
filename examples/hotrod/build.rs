//! Compiles `proto/driver.proto` with the protoc binary shipped in the
//! `protoc-bin-vendored` crate, so no system protobuf compiler is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // Build scripts run single-threaded before the crate is compiled.
    std::env::set_var("PROTOC", protoc);
    println!("cargo:rerun-if-changed=proto/driver.proto");
    tonic_prost_build::configure().compile_protos(&["proto/driver.proto"], &["proto"])?;
    Ok(())
}
