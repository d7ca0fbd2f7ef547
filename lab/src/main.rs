//! relive-lab: the QEMU lab for relive. Builds the mkosi image, boots it
//! (systemd or relive as PID 1, kernel 6.1 or 6.12), runs commands in the
//! guest over ssh and stops it; runs the lab tests (`check`), the demo and
//! the benchmarks. Progress goes to stderr, results to stdout.

mod bench;
mod scenarios;
mod vm;

use anyhow::{bail, Result};
use clap::{Parser, Subcommand};
use scenarios::{check, demo, faults, upgrade_check};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use vm::guest::{Guest, Init};
use vm::paths::Paths;
use vm::{boot, build, prereq, signals, ssh, stop};

#[derive(Debug, Parser)]
#[command(name = "relive-lab", about = "The QEMU lab for relive")]
struct Cli {
    #[command(subcommand)]
    command: Verb,
}

#[derive(Debug, Subcommand)]
enum Verb {
    /// Build the image (mkosi tree, ext4 disk, kernels), or reuse it when
    /// its inputs have not changed.
    Image {
        /// Rebuild the mkosi tree even if it looks up to date.
        #[arg(long)]
        force: bool,
    },
    /// Boot the image in the background; return once the guest is ready.
    Boot {
        /// Kernel series.
        #[arg(long, value_parser = ["6.1", "6.12"])]
        kernel: String,
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
        /// Kernel series to check (repeatable; default: 6.1 and 6.12).
        #[arg(long, value_parser = ["6.1", "6.12"])]
        kernel: Vec<String>,
    },
    /// A live upgrade under load: an injected dump failure first (all
    /// undone on the old kernel), then the real one; checks the workloads,
    /// an echo connection, an ssh session, PIDs, the report. Without
    /// --from/--to: 6.1 -> 6.12, then 6.12 -> 6.1.
    UpgradeCheck {
        #[arg(long, value_parser = ["6.1", "6.12"], requires = "to")]
        from: Option<String>,
        #[arg(long, value_parser = ["6.1", "6.12"], requires = "from")]
        to: Option<String>,
    },
    /// The fault matrix: on one guest, inject each fault or bad input
    /// (corrupt or foreign kernel, missing initrd, an init that is not
    /// relive, CRIU errors and kills, a full store, a corrupt image, a
    /// restore error, panics in relive's upgrade and resume code) and check
    /// that no service is lost, the error names the cause and the upgrade
    /// can be tried again. Prints a table and the services lost (must be 0).
    Faults {
        #[arg(long, value_parser = ["6.1", "6.12"], default_value = "6.1")]
        from: String,
        #[arg(long, value_parser = ["6.1", "6.12"], default_value = "6.12")]
        to: String,
        /// Only the scenarios whose name contains this text.
        #[arg(long)]
        only: Option<String>,
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
        #[arg(long, value_parser = ["6.1", "6.12"], default_value = "6.1")]
        kernel: String,
        /// Rounds (each boots both inits once).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Print the samples as JSON instead of the table.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            // Not `{e:?}`: that adds a backtrace whenever RUST_BACKTRACE is set.
            eprintln!("relive-lab: error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run(verb: Verb) -> Result<ExitCode> {
    let paths = Paths::discover();
    match verb {
        Verb::Image { force } => {
            prereq::ensure_prerequisites()?;
            build::build_binaries(&paths)?;
            std::fs::create_dir_all(&paths.out)?;
            let started = Instant::now();
            let image = vm::image::build_or_reuse(&paths, force)?;
            eprintln!(
                "relive-lab: image ready in {:.1} s",
                started.elapsed().as_secs_f64()
            );
            println!("disk: {}", image.disk.display());
            for kernel in &image.kernels {
                println!("kernel: {}", kernel.release);
            }
            println!(
                "relive: {}",
                if image.has_relive {
                    "installed"
                } else {
                    "absent (boots with systemd)"
                }
            );
        }
        Verb::Boot {
            kernel,
            init,
            writable,
            timeout,
        } => {
            let interrupt = prepare(&paths)?;
            let opts = boot::Options {
                writable,
                timeout: Duration::from_secs(timeout),
                ..boot::Options::new(&kernel, init)
            };
            let guest = boot::boot(&paths, &opts, &interrupt)?;
            println!(
                "ready in {:.1} s: kernel {}, init {:?}, ssh port {}, echo port {}, serial log {}",
                guest.ready_secs.unwrap_or_default(),
                guest.kernel_release,
                guest.init,
                guest.ssh_port,
                guest.echo_port,
                guest.serial_log.display()
            );
        }
        Verb::Ssh { command } => {
            let guest = Guest::running(&paths)?;
            let mut ssh = ssh::command(&paths, guest.ssh_port);
            if command.is_empty() {
                ssh.arg("-t");
            } else {
                ssh.arg("--").args(command);
            }
            // exec: the guest command's exit status becomes ours.
            let err = ssh.exec();
            bail!("running ssh: {err}");
        }
        Verb::Stop { timeout } => match stop::stop(&paths, Duration::from_secs(timeout))? {
            None => println!("no guest running"),
            Some(stopped) => {
                println!(
                    "stopped in {:.1} s; kernel power-down message: {}",
                    stopped.secs,
                    if stopped.powered_off { "yes" } else { "no" }
                );
                if let Some(clean) = stopped.fsck_clean {
                    println!("file system: {}", if clean { "clean" } else { "NOT clean" });
                }
                if !stopped.powered_off || stopped.fsck_clean == Some(false) {
                    return Ok(ExitCode::FAILURE);
                }
            }
        },
        Verb::Status { json } => match Guest::load(&paths)?.filter(Guest::alive) {
            None if json => println!("{{\"running\":false}}"),
            None => println!("no guest running"),
            Some(guest) if json => {
                let mut value = serde_json::to_value(&guest)?;
                value["running"] = true.into();
                println!("{value}");
            }
            Some(guest) => println!(
                "{}: QEMU pid {}, kernel {}, init {:?}, {:?}, ssh port {}, serial log {}",
                if guest.ready_secs.is_some() {
                    "running"
                } else {
                    "booting"
                },
                guest.qemu_pid,
                guest.kernel_release,
                guest.init,
                guest.accel,
                guest.ssh_port,
                guest.serial_log.display()
            ),
        },
        Verb::Check { kernel } => {
            if let Some(reason) = check::cannot_run() {
                println!("relive-lab check: SKIPPED: {reason}");
                return Ok(ExitCode::SUCCESS);
            }
            let interrupt = prepare(&paths)?;
            let kernels = if kernel.is_empty() {
                vec!["6.1".to_owned(), "6.12".to_owned()]
            } else {
                kernel
            };
            let started = Instant::now();
            let mut failed = Vec::new();
            for kernel in &kernels {
                match check::check_kernel(&paths, kernel, &interrupt) {
                    Ok(verdicts) => failed.extend(
                        verdicts
                            .into_iter()
                            .filter(|v| !v.ok)
                            .map(|v| format!("{kernel} {}", v.name)),
                    ),
                    Err(e) => {
                        println!("FAIL {kernel} boot: {e:#}");
                        failed.push(format!("{kernel} boot"));
                    }
                }
                interrupt.check()?;
            }
            let secs = started.elapsed().as_secs_f64();
            if failed.is_empty() {
                println!("lab checks passed on {} in {secs:.0} s", kernels.join(", "));
            } else {
                println!("lab checks FAILED in {secs:.0} s: {}", failed.join(", "));
                return Ok(ExitCode::FAILURE);
            }
        }
        Verb::Faults { from, to, only } => {
            if let Some(reason) = check::cannot_run() {
                println!("relive-lab faults: SKIPPED: {reason}");
                return Ok(ExitCode::SUCCESS);
            }
            if from == to {
                bail!("--from and --to are the same kernel");
            }
            let interrupt = prepare(&paths)?;
            let results = faults::faults(&paths, &from, &to, only.as_deref(), &interrupt)?;
            if !faults::print_table(&results) {
                return Ok(ExitCode::FAILURE);
            }
        }
        Verb::UpgradeCheck { from, to } => {
            if let Some(reason) = check::cannot_run() {
                println!("relive-lab upgrade-check: SKIPPED: {reason}");
                return Ok(ExitCode::SUCCESS);
            }
            let interrupt = prepare(&paths)?;
            let pairs = match (from, to) {
                (Some(from), Some(to)) if from == to => {
                    bail!("--from and --to are the same kernel")
                }
                (Some(from), Some(to)) => vec![(from, to)],
                _ => vec![("6.1".into(), "6.12".into()), ("6.12".into(), "6.1".into())],
            };
            let mut passed = true;
            for (from, to) in &pairs {
                let started = Instant::now();
                let label = format!("{from} -> {to}");
                match upgrade_check::upgrade_check(&paths, from, to, &interrupt) {
                    Ok(verdicts) => {
                        passed &= upgrade_check::summarize(
                            &label,
                            &verdicts,
                            started.elapsed().as_secs_f64(),
                        )
                    }
                    Err(e) => {
                        println!("FAIL {label} boot: {e:#}");
                        passed = false;
                    }
                }
                interrupt.check()?;
            }
            if !passed {
                return Ok(ExitCode::FAILURE);
            }
        }
        Verb::BenchUpgrade { json } => {
            let interrupt = prepare(&paths)?;
            let figures = bench::upgrade::bench(&paths, &interrupt)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&figures)?);
            } else {
                bench::upgrade::print_table(&figures);
            }
        }
        Verb::Bench {
            sizes,
            rates,
            modes,
            store,
            json_out,
            svg_out,
        } => {
            // Parsed before anything boots: a typo fails at once.
            let matrix = bench::twophase_figures::Matrix::parse(&sizes, &rates, &modes, &store)?;
            let outputs = bench::twophase::Outputs::new(&paths, json_out, svg_out);
            let interrupt = prepare(&paths)?;
            let runs = bench::twophase::bench(&paths, &matrix, &outputs, &interrupt)?;
            bench::twophase::print_summary(&matrix, &runs, &outputs);
            if !bench::twophase::all_good(&runs) {
                return Ok(ExitCode::FAILURE);
            }
        }
        Verb::Demo => {
            let interrupt = prepare(&paths)?;
            demo::demo(&paths, &interrupt)?;
        }
        Verb::BenchBoot {
            kernel,
            rounds,
            json,
        } => {
            let interrupt = prepare(&paths)?;
            let samples = bench::boot::bench(&paths, &kernel, rounds, &interrupt)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&samples)?);
            } else {
                bench::boot::print_table(&kernel, &samples);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What every verb that boots a guest needs first: the host tools, fresh
/// binaries, the output directory and the interrupt flag. (The image
/// itself is built or reused by the boot.)
fn prepare(paths: &Paths) -> Result<signals::Interrupt> {
    prereq::ensure_prerequisites()?;
    build::build_binaries(paths)?;
    std::fs::create_dir_all(&paths.out)?;
    signals::Interrupt::install()
}
