//! Compiles the .proto files with protox (a protobuf compiler in Rust, so no system
//! `protoc` is needed) and generates the messages and tonic services from them; the
//! descriptor set is kept for gRPC server reflection.

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/google/longrunning/operations.proto",
        "proto/google/rpc/status.proto",
        "proto/google/rpc/error_details.proto",
        "proto/google/earthengine/v1/operation_metadata.proto",
        "proto/longrun/v1/longrun.proto",
    ];
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(files, ["proto"])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("descriptors.bin"), descriptors.encode_to_vec())?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
