//! Building what goes into the image: relive's Debian package (scripts/deb)
//! and the workload programs, with the same cargo that built the driver.
//! Cargo decides what is stale, so this costs a few seconds when nothing
//! changed.

use crate::output;
use crate::vm::paths::Paths;
use anyhow::{bail, Result};
use std::process::Command;

/// Set to skip the build and use whatever target/ holds (e.g. while
/// relive's sources are half edited).
pub const NO_BUILD_ENV: &str = "RELIVE_LAB_NO_BUILD";

pub fn build_binaries(paths: &Paths) -> Result<()> {
    let step = output::step("building relive's package and the workloads");
    if std::env::var_os(NO_BUILD_ENV).is_some() {
        step.done_with(&format!("skipped, {NO_BUILD_ENV} is set: target/ as it is"));
        return Ok(());
    }
    // `cargo run` exports CARGO: the cargo (and toolchain) that built us.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(&cargo);
    build
        .args(["build", "--release", "-p", "relive-workloads", "--bins"])
        .current_dir(&paths.root);
    let status = output::status(&mut build)?;
    if !status.success() {
        bail!("building the workloads failed ({status}); set {NO_BUILD_ENV}=1 to boot what target/ holds");
    }
    // The lab's relive carries the fault injection its fault matrix uses
    // (inert without /run/relive/fault-inject); a plain package has none.
    let mut deb = Command::new(paths.root.join("scripts/deb"));
    deb.args(["--features", "relive/fault-injection"])
        .env("CARGO", &cargo)
        .current_dir(&paths.root);
    let status = output::status(&mut deb)?;
    if !status.success() {
        bail!("scripts/deb failed ({status}); set {NO_BUILD_ENV}=1 to boot what target/ holds");
    }
    step.done();
    Ok(())
}
