//! The wire types of relive: what crosses a crate, the D-Bus socket or the
//! kexec, as enums and structs that serde reads and writes.
//!
//! relive (PID 1), relivectl and the lab all depend on this crate, so the
//! report relivectl prints and the lab checks is the one relive writes.
//! It depends on serde and zvariant only: relivectl links no PID 1 code.
//!
//! - [`names`]: the D-Bus object, interface, socket and error names.
//! - [`units`]: one unit's summary and status.
//! - [`progress`]: a step of a running upgrade.
//! - [`plan`]: the plan of an upgrade and its preflight checks.
//! - [`report`]: what an upgrade did, unit by unit.
//! - [`warm`]: a warm snapshot, as relivectl shows it.

/// What `relive --version` and `relivectl --version` print after the
/// program's name: the package version and the git commit built from.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("RELIVE_GIT_COMMIT"),
    ")"
);

pub mod names;
pub mod network;
pub mod plan;
pub mod progress;
pub mod report;
pub mod units;
pub mod warm;

/// A byte count for people: `512 B`, `3.0 MiB`.
pub fn human(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_well() {
        assert_eq!(super::human(512), "512 B");
        assert_eq!(super::human(3 * 1024 * 1024), "3.0 MiB");
    }
}
