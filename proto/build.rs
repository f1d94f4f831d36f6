//! Compiles `ktbroker/v1/broker.proto` with protox (pure Rust), so no `protoc` is needed anywhere.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["ktbroker/v1/broker.proto", "google/rpc/status.proto"];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(protos, ["."])?;
    tonic_prost_build::configure()
        // prost's encoding, and every encoded message wiped afterwards (src/codec.rs).
        .codec_path("crate::codec::WipingCodec")
        // Messages that carry a password or keytab bytes must never be printable.
        .skip_debug([
            ".ktbroker.v1.FetchKeytabRequest",
            ".ktbroker.v1.FetchKeytabResponse",
            ".ktbroker.v1.FetchKeytabResponse.part",
        ])
        .compile_fds(descriptors)?;
    Ok(())
}
