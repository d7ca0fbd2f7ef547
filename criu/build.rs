//! Generates the Rust types of CRIU's RPC protocol (`criu_req`, `criu_resp`,
//! `criu_opts` ...) from the schema that Debian's `criu` package installs.
//!
//! The schema is read from the installed file rather than a copy in this
//! repository so that the messages always match the CRIU that will run them
//! (and no third-party file has to be carried). The code is generated with
//! Debian's `protoc` (package `protobuf-compiler`).

use std::env;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Installed by Debian's `criu` package (MIT licensed).
const RPC_PROTO: &str = "/usr/include/criu/rpc.proto";
/// Installed by Debian's `protobuf-compiler` package.
const DEBIAN_PROTOC: &str = "/usr/bin/protoc";
/// The generated module, included by `src/proto.rs`.
const OUT_FILE: &str = "criu_rpc";

fn main() -> ExitCode {
    println!("cargo:rerun-if-changed={RPC_PROTO}");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=PROTOC");

    let proto = Path::new(RPC_PROTO);
    if !proto.is_file() {
        return fail(&format!(
            "{RPC_PROTO} not found: CRIU's RPC schema comes with Debian's `criu` package; \
             install it with `apt-get install criu protobuf-compiler`"
        ));
    }

    // PROTOC wins when set (another protoc on purpose); otherwise Debian's.
    let protoc = match env::var_os("PROTOC") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(DEBIAN_PROTOC),
    };
    if !protoc.is_file() {
        return fail(&format!(
            "protoc not found at {}: install Debian's `protobuf-compiler` (and `criu`) with \
             `apt-get install criu protobuf-compiler`, or set PROTOC to a protoc binary",
            protoc.display()
        ));
    }

    let include = proto.parent().unwrap_or(Path::new("/"));
    let mut config = prost_build::Config::new();
    config
        .protoc_executable(&protoc)
        // rpc.proto declares no package: name the output file ourselves.
        .default_package_filename(OUT_FILE);
    match config.compile_protos(&[proto], &[include]) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&format!(
            "generating Rust types from {RPC_PROTO} with {}: {e} \
             (Debian packages needed: criu, protobuf-compiler)",
            protoc.display()
        )),
    }
}

/// Cargo prints a failed build script's stderr: say what is missing there.
fn fail(msg: &str) -> ExitCode {
    eprintln!("error: relive-criu build: {msg}");
    ExitCode::FAILURE
}
