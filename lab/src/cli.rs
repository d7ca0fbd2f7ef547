//! The command line: every verb and flag of relive-lab. README.md,
//! lab/README.md and scripts/test use them: keep them as they are.

use crate::vm::distro::Distro;
use crate::vm::guest::Init;
use crate::vm::newer_criu::CriuFrom;
use crate::vm::paths::Paths;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// `--kernel`, `--from`, `--to`: a kernel series, one of the selected
/// release's kernels list (checked by [`Verb::check_kernels`] once the
/// release is known).
const SERIES_HELP: &str = "Kernel series from the release's kernels list \
    (bookworm: 6.1, 6.12; trixie: 6.12, 6.16, 6.17, 6.18, 6.19)";

#[derive(Debug, Parser)]
#[command(name = "relive-lab", about = "The QEMU lab for relive")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Verb,
}

#[derive(Debug, Subcommand)]
pub enum Verb {
    /// Build the image (mkosi tree, ext4 disk, kernels), or reuse it when
    /// its inputs have not changed.
    Image {
        /// Rebuild the mkosi tree even if it looks up to date.
        #[arg(long)]
        force: bool,
        /// The Debian release (each has its own image in lab/out/).
        #[arg(long, value_enum, default_value = "bookworm")]
        distro: Distro,
    },
    /// Boot the image in the background; return once the guest is ready.
    Boot {
        #[arg(long, value_parser = parse_series, help = SERIES_HELP)]
        kernel: String,
        /// The Debian release whose image boots.
        #[arg(long, value_enum, default_value = "bookworm")]
        distro: Distro,
        /// PID 1 (default: relive if the image has it, else systemd).
        #[arg(long, value_enum)]
        init: Option<Init>,
        /// Boot a writable copy of the disk instead of a -snapshot overlay
        /// (`stop` then checks its file system).
        #[arg(long)]
        writable: bool,
        /// Seconds to wait for readiness.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// Run a command in the running guest (an interactive shell without one).
    Ssh {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Power the guest off (its init's poweroff) and wait for QEMU to exit.
    Stop {
        /// Seconds to wait before killing QEMU.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
    /// Show the running guest.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// The lab tests: boot each kernel with relive, check the guest, power
    /// it off and check QEMU's exit status and the file system.
    Check {
        /// Kernel series to check (repeatable; default: every series of
        /// the release's kernels list: bookworm 6.1 and 6.12).
        #[arg(long, value_parser = parse_series)]
        kernel: Vec<String>,
        /// The Debian release whose image is checked.
        #[arg(long, value_enum, default_value = "bookworm")]
        distro: Distro,
    },
    /// A live upgrade under load: an injected dump failure first (all
    /// undone on the old kernel), then the real one; checks the workloads,
    /// an echo connection, an ssh session, PIDs, the report. Without
    /// --from/--to: the oldest series to the newest and back (bookworm:
    /// 6.1 -> 6.12, then 6.12 -> 6.1).
    UpgradeCheck {
        #[arg(long, value_parser = parse_series, requires = "to", help = SERIES_HELP)]
        from: Option<String>,
        #[arg(long, value_parser = parse_series, requires = "from", help = SERIES_HELP)]
        to: Option<String>,
        /// Then on, on the same guest, to this series (repeatable: a
        /// chain such as --from 6.12 --to 6.16 --then 6.19); every hop
        /// is checked as the first upgrade is.
        #[arg(long, value_parser = parse_series, requires = "to")]
        then: Vec<String>,
        /// The Debian release whose image is upgraded.
        #[arg(long, value_enum, default_value = "bookworm")]
        distro: Distro,
        /// Which CRIU the guest runs: the release's own, or forky's
        /// (4.2.1, installed in the booted trixie guest with dpkg; trixie's
        /// 4.1.1 cannot checkpoint on 6.16 and later).
        #[arg(long, value_enum, default_value = "release")]
        criu: CriuFrom,
    },
    /// Debian 12's CRIU and a kernel it cannot restore on: a bookworm
    /// guest (6.12) is given trixie-backports' 6.19 (from the trixie
    /// image, built if missing); relivectl --check and the kernel hook
    /// must refuse the live upgrade, naming both versions, before
    /// anything is touched.
    CriuCompat,
    /// The fault matrix: on one guest, inject each fault or bad input
    /// (corrupt or foreign kernel, missing initrd, an init that is not
    /// relive, CRIU errors and kills, a full store, a corrupt image, a
    /// restore error, panics in relive's upgrade and resume code) and check
    /// that no service is lost, the error names the cause and the upgrade
    /// can be tried again. Prints a table and the services lost (must be 0).
    Faults {
        #[arg(long, value_parser = parse_series, default_value = "6.1")]
        from: String,
        #[arg(long, value_parser = parse_series, default_value = "6.12")]
        to: String,
        /// Only the scenarios whose name contains this text.
        #[arg(long)]
        only: Option<String>,
        /// Only the scenarios the test suite runs (scripts/test): the
        /// full matrix leaves out none of them and adds those that cost
        /// minutes each along paths the others already take, and a lazy
        /// restore whose page source is damaged while the unit runs.
        #[arg(long)]
        suite: bool,
    },
    /// A rolling live upgrade across N guests with the repository's
    /// Ansible collection: 6.1 -> 6.12 one host at a time (PIDs and echo
    /// connections kept), a second run that changes nothing, promtool on
    /// each host's metrics, a rollout back stopped by a rollback on the
    /// second host (the rest untouched), then two hosts upgrading at once
    /// through a FleetLock server. ~15 min under TCG.
    Fleet {
        /// Guests (2 GiB each; at least 3: the faulty rollout needs a
        /// host after the faulty one).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(3..=8))]
        hosts: u8,
    },
    /// Boot 6.1 with relive, show `relivectl list-units` and `uname -r`,
    /// live-upgrade to 6.12, show the upgrade report and `uname -r`, power
    /// off.
    Demo,
    /// One live upgrade (6.1 -> 6.12) and one cold reboot of the same VM:
    /// per-unit stoppage, the echo client's largest gap, blackout ratio.
    BenchUpgrade {
        /// Print the figures as JSON instead of the table.
        #[arg(long)]
        json: bool,
        /// Upgrade with relive's minimal initrd (`relivectl live-upgrade
        /// --minimal-initrd`); the cold reboot boots the distribution's.
        #[arg(long)]
        minimal_initrd: bool,
    },
    /// The two-phase stoppage benchmark: per memory size, dirty rate and
    /// snapshot mode, a fresh 6.1 guest with two relive-dirty units
    /// (bench-critical, Priority=900; bench-normal, 100) live-upgraded to
    /// 6.12. Prints each unit's stoppage single- vs two-phase, against the
    /// floor (kexec + its restore), pre-dump rounds, the final dump, the
    /// bytes written in the stoppage, and the targets met or not; writes
    /// all figures as JSON and an SVG plot. Every page must come back
    /// intact. Takes hours under TCG: start with `--sizes 64M --rates idle`.
    Bench {
        /// Memory per bench unit, comma-separated (M or G suffix).
        #[arg(long, default_value = "64M,256M,1G,2G")]
        sizes: String,
        /// Dirty rates in MiB/s, comma-separated: idle, 1M, 50M, ...
        #[arg(long, default_value = "idle,1M,50M")]
        rates: String,
        /// Snapshot modes, comma-separated: single (`relivectl live-upgrade
        /// --single-phase`), two.
        #[arg(long, default_value = "single,two")]
        modes: String,
        /// Where the images travel (`relivectl live-upgrade --store`),
        /// comma-separated: disk, memory (a memmap= region sized for the
        /// run, at 4 GiB). With both, the ratios disk/memory are printed.
        #[arg(long, default_value = "disk")]
        store: String,
        /// Small idle units (4 MiB, Priority=500, bench-small-NN) added to
        /// every run beside the bench units, as on a real server: target
        /// (f) is judged on the two-phase idle runs that have them (80).
        #[arg(long, default_value_t = 0, value_name = "N")]
        small_units: usize,
        /// CPU-bound units (bench-burn-N, 4 MiB, Priority=500), one per
        /// guest CPU, beside bench-busy: phase 1 on a machine whose every
        /// CPU is busy (target (e) under load; needs a non-idle rate). Its
        /// rounds are long and rewrite a dirtying unit whole: with
        /// `--store disk`, as the memory region is sized for fewer.
        #[arg(long)]
        saturate: bool,
        /// Runs of each combination: the figures vary by seconds from one
        /// run to the next under TCG; with more than one, the spread
        /// (median, fewest, most) is printed.
        #[arg(long, default_value_t = 1, value_name = "N")]
        repeat: usize,
        /// Upgrade with relive's minimal initrd (`relivectl live-upgrade
        /// --minimal-initrd`): the floor with relive's initrd rather
        /// than the distribution's.
        #[arg(long)]
        minimal_initrd: bool,
        /// Restore lazily (`relivectl live-upgrade --lazy-restore`): the
        /// units run before their memory is back; the lazy tail is
        /// printed beside each unit's stoppage.
        #[arg(long)]
        lazy_restore: bool,
        /// The figures as JSON [default: lab/out/bench-twophase.json].
        #[arg(long, value_name = "PATH")]
        json_out: Option<PathBuf>,
        /// The SVG plot [default: the JSON's path with .svg].
        #[arg(long, value_name = "PATH")]
        svg_out: Option<PathBuf>,
    },
    /// Boot the same image with systemd, then with relive, N rounds; print
    /// time to multi-user.target and PID 1's memory, medians and ratios.
    BenchBoot {
        #[arg(long, value_parser = parse_series, default_value = "6.1")]
        kernel: String,
        /// Rounds (each boots both inits once).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Print the samples as JSON instead of the table.
        #[arg(long)]
        json: bool,
    },
}

/// A kernel series' shape, MAJOR.MINOR; whether the release has it is
/// [`Verb::check_kernels`]'s question.
fn parse_series(text: &str) -> Result<String, String> {
    let numbers: Vec<&str> = text.split('.').collect();
    let number = |n: &&str| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit());
    if numbers.len() == 2 && numbers.iter().all(number) {
        Ok(text.to_owned())
    } else {
        Err("expected a kernel series, MAJOR.MINOR (e.g. 6.12)".into())
    }
}

impl Verb {
    /// The Debian release whose image the verb uses (bookworm for the
    /// verbs without `--distro`).
    pub fn distro(&self) -> Distro {
        match self {
            Verb::Image { distro, .. }
            | Verb::Boot { distro, .. }
            | Verb::Check { distro, .. }
            | Verb::UpgradeCheck { distro, .. } => *distro,
            _ => Distro::Bookworm,
        }
    }

    /// Every kernel series the command line names must be in the
    /// release's kernels list; the error names the release and its series.
    pub fn check_kernels(&self, paths: &Paths) -> anyhow::Result<()> {
        let named: Vec<&String> = match self {
            Verb::Boot { kernel, .. } | Verb::BenchBoot { kernel, .. } => vec![kernel],
            Verb::Check { kernel, .. } => kernel.iter().collect(),
            Verb::UpgradeCheck { from, to, then, .. } => {
                from.iter().chain(to).chain(then.iter()).collect()
            }
            Verb::Faults { from, to, .. } => vec![from, to],
            _ => Vec::new(),
        };
        for series in named {
            self.distro().check_series(paths, series)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// The command lines README.md, lab/README.md and scripts/test use.
    #[test]
    fn documented_command_lines_parse() {
        Cli::command().debug_assert();
        for line in [
            "image",
            "image --force",
            "image --distro trixie",
            "boot --distro trixie --kernel 6.19",
            "check --distro trixie --kernel 6.12",
            "upgrade-check --distro trixie --from 6.12 --to 6.19",
            "upgrade-check --distro trixie --from 6.12 --to 6.16 --then 6.19",
            "criu-compat",
            "boot --kernel 6.1",
            "boot --kernel 6.12 --init systemd --writable --timeout 60",
            "ssh -- uname -r",
            "ssh",
            "status --json",
            "stop --timeout 30",
            "check",
            "check --kernel 6.1 --kernel 6.12",
            "upgrade-check",
            "upgrade-check --from 6.12 --to 6.1",
            "demo",
            "bench-boot --kernel 6.1 --rounds 3 --json",
            "bench-upgrade --json",
            "bench --sizes 64M,256M,1G,2G --rates idle,1M,50M --modes single,two \
             --store disk,memory --json-out /tmp/b.json --svg-out /tmp/b.svg",
            "bench --sizes 1G --rates idle --modes two --small-units 80",
            "faults --from 6.1 --to 6.12 --only CRIU",
            "faults --suite",
            "fleet --hosts 3",
        ] {
            let args = std::iter::once("relive-lab").chain(line.split_whitespace());
            if let Err(e) = Cli::try_parse_from(args) {
                panic!("relive-lab {line}: {e}");
            }
        }
        let ssh = Cli::try_parse_from(["relive-lab", "ssh", "--", "ls", "-l"]).unwrap();
        assert!(matches!(ssh.command, Verb::Ssh { command } if command == ["ls", "-l"]));
        assert!(Cli::try_parse_from(["relive-lab", "upgrade-check", "--from", "6.1"]).is_err());
        assert!(Cli::try_parse_from(["relive-lab", "boot", "--kernel", "6"]).is_err());
        assert!(Cli::try_parse_from(["relive-lab", "boot", "--distro", "sid"]).is_err());
    }

    /// The series come from the release's kernels list, with an error
    /// naming the release.
    #[test]
    fn kernel_series_come_from_the_release() {
        let paths = Paths::discover();
        let verb = |line: &str| {
            let args = std::iter::once("relive-lab").chain(line.split_whitespace());
            Cli::try_parse_from(args).unwrap().command
        };
        for ok in [
            "boot --kernel 6.1",
            "boot --kernel 6.12 --distro trixie",
            "upgrade-check --distro trixie --from 6.12 --to 6.19",
            "check --distro trixie",
            "faults",
        ] {
            verb(ok).check_kernels(&paths).unwrap();
        }
        let err = verb("boot --kernel 6.1 --distro trixie")
            .check_kernels(&paths)
            .unwrap_err();
        assert!(
            err.to_string().starts_with("trixie has no 6.1 kernel"),
            "{err}"
        );
        let err = verb("upgrade-check --from 6.12 --to 6.19")
            .check_kernels(&paths)
            .unwrap_err();
        assert!(
            err.to_string().starts_with("bookworm has no 6.19 kernel"),
            "{err}"
        );
        assert!(verb("boot --kernel 5.10").check_kernels(&paths).is_err());
    }
}
