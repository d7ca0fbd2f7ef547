//! Building what goes into the image: relive's binaries and the workload
//! programs, with the same cargo that built the driver. Cargo decides what
//! is stale, so this costs a fraction of a second when nothing changed.

use crate::vm::paths::Paths;
use anyhow::{bail, Context, Result};
use std::os::fd::AsFd;
use std::process::{Command, Stdio};

/// Set to skip the build and use whatever target/release holds (e.g. while
/// relive's sources are half edited).
pub const NO_BUILD_ENV: &str = "RELIVE_LAB_NO_BUILD";

pub fn build_binaries(paths: &Paths) -> Result<()> {
    if std::env::var_os(NO_BUILD_ENV).is_some() {
        eprintln!("relive-lab: {NO_BUILD_ENV} is set: using target/release as it is");
        return Ok(());
    }
    // `cargo run` exports CARGO: the cargo (and toolchain) that built us.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("relive-lab: cargo build --release -p relive -p relive-workloads --bins");
    let status = Command::new(&cargo)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "relive",
            "-p",
            "relive-workloads",
            "--bins",
        ])
        .current_dir(&paths.root)
        // Cargo's progress is not a result: stderr, not stdout.
        .stdout(Stdio::from(std::io::stderr().as_fd().try_clone_to_owned()?))
        .status()
        .with_context(|| format!("running {}", cargo.to_string_lossy()))?;
    if !status.success() {
        bail!("building relive and the workloads failed ({status}); set {NO_BUILD_ENV}=1 to boot the binaries already in target/release");
    }
    Ok(())
}
