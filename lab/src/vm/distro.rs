//! The Debian release an image is built from. Both share mkosi/'s
//! configuration (packages, mkosi.extra, mkosi.postinst); each has its own
//! kernels list, its own outputs under lab/out/ (so that building one
//! leaves the other's image cached) and its own way to the archive.

use crate::vm::apt::{self, KernelPin};
use crate::vm::paths::Paths;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Distro {
    /// Debian 12, the host's own release: kernels 6.1 and 6.12.
    #[default]
    Bookworm,
    /// Debian 13: kernel 6.12, and 6.16 to 6.19 from trixie-backports.
    Trixie,
}

impl Distro {
    pub const ALL: [Distro; 2] = [Distro::Bookworm, Distro::Trixie];

    /// Debian's code name, mkosi's `--release`.
    pub fn name(self) -> &'static str {
        match self {
            Distro::Bookworm => "bookworm",
            Distro::Trixie => "trixie",
        }
    }

    /// What under mkosi/ is this release's alone (the rest is shared):
    /// bookworm's kernels list predates the second release and stays at
    /// the top, trixie's files are in mkosi/trixie/.
    fn own_files(self) -> &'static [&'static str] {
        match self {
            Distro::Bookworm => &["kernels.list"],
            Distro::Trixie => &["trixie"],
        }
    }

    /// Top-level names under mkosi/ that belong to the other releases:
    /// they are no input of this release's image.
    pub fn foreign_files(self) -> Vec<&'static str> {
        Distro::ALL
            .iter()
            .filter(|d| **d != self)
            .flat_map(|d| d.own_files().iter().copied())
            .collect()
    }

    /// The kernels list: one pinned package and a fallback per series.
    pub fn kernels_list(self, paths: &Paths) -> PathBuf {
        match self {
            Distro::Bookworm => paths.mkosi_config().join("kernels.list"),
            Distro::Trixie => paths.mkosi_config().join("trixie/kernels.list"),
        }
    }

    /// This release's settings over mkosi.conf (relive-lab passes the file
    /// to mkosi as `@FILE`, read after mkosi.conf: settings override,
    /// lists such as Packages= add up).
    pub fn mkosi_overlay(self, paths: &Paths) -> Option<PathBuf> {
        match self {
            Distro::Bookworm => None,
            Distro::Trixie => Some(paths.mkosi_config().join("trixie/mkosi.conf")),
        }
    }

    /// Suites of the archive besides the release, -updates and -security
    /// (which mkosi adds itself): trixie's newer kernels are backports.
    pub fn extra_suites(self) -> &'static [&'static str] {
        match self {
            Distro::Bookworm => &[],
            Distro::Trixie => &["trixie-backports"],
        }
    }

    /// bookworm is the host's release: its kernels are resolved with the
    /// host's apt. Any other uses a private apt state (lab/out/NAME/apt/),
    /// leaving the host's /etc/apt and lists alone.
    pub fn uses_host_apt(self) -> bool {
        self == Distro::Bookworm
    }

    /// The PostgreSQL cluster Debian's `postgresql` package creates.
    pub fn postgresql_unit(self) -> &'static str {
        match self {
            Distro::Bookworm => "postgresql@15-main.service",
            Distro::Trixie => "postgresql@17-main.service",
        }
    }

    pub fn kernel_pins(self, paths: &Paths) -> Result<Vec<KernelPin>> {
        apt::read_kernel_pins(&self.kernels_list(paths))
    }

    /// The kernel series of the list, in its order ("6.1", "6.12").
    pub fn series(self, paths: &Paths) -> Result<Vec<String>> {
        Ok(self
            .kernel_pins(paths)?
            .into_iter()
            .map(|pin| pin.series)
            .collect())
    }

    /// An error naming the release and its series unless `series` is one.
    pub fn check_series(self, paths: &Paths, series: &str) -> Result<()> {
        let known = self.series(paths)?;
        if !known.iter().any(|s| s == series) {
            bail!(
                "{} has no {series} kernel: {} lists {}",
                self.name(),
                self.kernels_list(paths)
                    .strip_prefix(&paths.root)
                    .unwrap_or(&self.kernels_list(paths))
                    .display(),
                known.join(", ")
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_lists_name_the_documented_series() {
        let paths = Paths::discover();
        assert_eq!(
            Distro::Bookworm.series(&paths).unwrap(),
            ["6.1", "6.12"],
            "bookworm"
        );
        assert_eq!(
            Distro::Trixie.series(&paths).unwrap(),
            ["6.12", "6.16", "6.17", "6.18", "6.19"],
            "trixie"
        );
        let err = Distro::Trixie.check_series(&paths, "6.1").unwrap_err();
        assert_eq!(
            err.to_string(),
            "trixie has no 6.1 kernel: mkosi/trixie/kernels.list lists 6.12, 6.16, 6.17, 6.18, 6.19"
        );
        Distro::Bookworm.check_series(&paths, "6.12").unwrap();
    }

    #[test]
    fn each_release_leaves_out_the_others_files() {
        assert_eq!(Distro::Bookworm.foreign_files(), ["trixie"]);
        assert_eq!(Distro::Trixie.foreign_files(), ["kernels.list"]);
    }
}
