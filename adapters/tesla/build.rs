//! Generates the Vehicle Command Protocol's prost types from `proto/` (keyway's own copy
//! of the definitions), compiled by protox so that no protoc is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/universal_message.proto",
        "proto/signatures.proto",
        "proto/vcsec.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
