//! Building what goes into the image: relive's binaries and the workload
//! programs, with the same cargo that built the driver. Cargo decides what
//! is stale, so this costs a fraction of a second when nothing changed.

use crate::output;
use crate::vm::paths::Paths;
use anyhow::{bail, Result};
use std::process::Command;

/// Set to skip the build and use whatever target/release holds (e.g. while
/// relive's sources are half edited).
pub const NO_BUILD_ENV: &str = "RELIVE_LAB_NO_BUILD";

pub fn build_binaries(paths: &Paths) -> Result<()> {
    let step = output::step("building relive and the workloads");
    if std::env::var_os(NO_BUILD_ENV).is_some() {
        step.done_with(&format!(
            "skipped, {NO_BUILD_ENV} is set: target/release as it is"
        ));
        return Ok(());
    }
    // `cargo run` exports CARGO: the cargo (and toolchain) that built us.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // The lab's relive carries the fault injection its fault matrix uses
    // (inert without /run/relive/fault-inject); a plain release build has none.
    let mut build = Command::new(&cargo);
    build
        .args([
            "build",
            "--release",
            "-p",
            "relive",
            "-p",
            "relive-ctl",
            "-p",
            "relive-workloads",
            "--features",
            "relive/fault-injection",
            "--bins",
        ])
        .current_dir(&paths.root);
    let status = output::status(&mut build)?;
    if !status.success() {
        bail!("building relive and the workloads failed ({status}); set {NO_BUILD_ENV}=1 to boot the binaries already in target/release");
    }
    step.done();
    Ok(())
}
