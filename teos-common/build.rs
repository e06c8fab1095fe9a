//! Compiles the admin gRPC API's `.proto` files (`proto/`, a symlink to the workspace's `proto/` that
//! `cargo package` turns into a copy; ADMIN_RPC.md) into Rust when the `grpc`
//! feature is on; does nothing otherwise.
//!
//! The `.proto` files are parsed by protox (a pure-Rust protobuf compiler), so no system `protoc` is
//! needed; tonic-prost-build turns the resulting descriptors into prost messages plus the tonic
//! server and client of `teos.v2.PrivateTowerServices`. `google/protobuf/empty.proto` is provided by
//! protox and maps to `()`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    #[cfg(feature = "grpc")]
    grpc::compile()?;
    Ok(())
}

#[cfg(feature = "grpc")]
mod grpc {
    /// The proto root, relative to this crate.
    const ROOT: &str = "proto";
    /// Every file compiled, relative to [`ROOT`].
    const FILES: [&str; 3] = [
        "common/teos/v2/appointment.proto",
        "common/teos/v2/user.proto",
        "teos/v2/tower_services.proto",
    ];

    pub fn compile() -> Result<(), Box<dyn std::error::Error>> {
        for file in FILES {
            println!("cargo:rerun-if-changed={ROOT}/{file}");
        }
        let descriptors = protox::compile(FILES, [ROOT])?;
        tonic_prost_build::configure()
            // teos-cli brings its own TLS channel; the generated `connect` helper would need tonic's
            // transport feature here.
            .build_transport(false)
            .compile_fds(descriptors)?;
        Ok(())
    }
}
