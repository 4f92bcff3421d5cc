//! Compiles `proto/` with protox (pure Rust, no system `protoc`) and
//! generates prost messages and tonic services.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time, not with `env!`: a build script binary reused from a
    // shared target dir must not point at the checkout it was compiled in.
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("proto");
    let files = [
        "tandem/sequencer/v1/types.proto",
        "tandem/sequencerblock/v1/block.proto",
        "tandem/sequencerblock/v1/service.proto",
        "tandem/conductor/v1/forwarder.proto",
    ];
    for file in &files {
        println!("cargo:rerun-if-changed={}", root.join(file).display());
    }
    let descriptors = protox::compile(files, [&root])?;
    tonic_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    Ok(())
}
