//! relive-lab: the QEMU lab for relive. Builds the mkosi image (Debian
//! bookworm, or trixie with `--distro trixie`), boots it (systemd or
//! relive as PID 1, on one of the release's kernels), runs commands in the
//! guest over ssh and stops it; runs the lab tests (`check`), the demo and
//! the benchmarks. Results go to stdout, the steps to stderr, what the
//! tools print to a log file ([`output`]).
//!
//! - [`cli`]: the verbs and their flags.
//! - [`vm`]: what drives a VM: prerequisites, image, QEMU, boot, ssh, stop.
//! - [`scenarios`]: what the lab checks in a guest, and the demo.
//! - [`bench`](mod@bench): the benchmarks.
//! - [`output`]: results, steps, the log file.

mod bench;
mod cli;
mod output;
mod scenarios;
mod vm;

use anyhow::{bail, Result};
use clap::Parser;
use cli::{Cli, Verb};
use scenarios::{check, criu_compat, demo, faults, fleet, upgrade_check};
use std::os::unix::process::CommandExt;
use std::process::ExitCode;
use std::time::Duration;
use vm::guest::Guest;
use vm::newer_criu::CriuFrom;
use vm::paths::Paths;
use vm::{boot, ssh, stop};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A kernel series the release lacks is a usage error, as clap's are.
    if let Err(e) = cli.command.check_kernels(&Paths::discover()) {
        use clap::CommandFactory;
        Cli::command()
            .error(clap::error::ErrorKind::InvalidValue, format!("{e:#}"))
            .exit();
    }
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            if let Some((path, lines)) = output::tail(20) {
                eprintln!("relive-lab: the log's last lines ({}):", path.display());
                for line in lines {
                    eprintln!("  {line}");
                }
            }
            // Not `{e:?}`: that adds a backtrace whenever RUST_BACKTRACE is set.
            eprintln!("relive-lab: error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            output::log(&format!("error: {e:#}"));
            ExitCode::FAILURE
        }
    }
}

/// The log's name for a verb; None for the verbs that run no tool.
fn log_name(verb: &Verb) -> Option<&'static str> {
    Some(match verb {
        Verb::Ssh { .. } | Verb::Status { .. } => return None,
        Verb::Image { .. } => "image",
        Verb::Boot { .. } => "boot",
        Verb::Stop { .. } => "stop",
        Verb::Check { .. } => "check",
        Verb::UpgradeCheck { .. } => "upgrade-check",
        Verb::Faults { .. } => "faults",
        Verb::Demo => "demo",
        Verb::CriuCompat => "criu-compat",
        Verb::Fleet { .. } => "fleet",
        Verb::BenchUpgrade { .. } => "bench-upgrade",
        Verb::Bench { .. } => "bench",
        Verb::BenchBoot { .. } => "bench-boot",
    })
}

fn run(verb: Verb) -> Result<ExitCode> {
    let distro = verb.distro();
    let paths = Paths::discover().with_distro(distro);
    let lab_test = matches!(
        verb,
        Verb::Check { .. } | Verb::UpgradeCheck { .. } | Verb::Faults { .. }
    );
    if let Some(name) = log_name(&verb) {
        if lab_test && skipped(name) {
            return Ok(ExitCode::SUCCESS);
        }
        // Without it (lab/out not writable) the tools print to stderr,
        // and the verb says why it cannot go on.
        if let Err(e) = output::open_log(&paths, name) {
            eprintln!("relive-lab: no log file: {e:#}");
        }
    }
    match verb {
        Verb::Image { force, .. } => {
            vm::prepare_host(&paths)?;
            let image = vm::image::build_or_reuse(&paths, force)?;
            image.print();
        }
        Verb::Boot {
            kernel,
            init,
            writable,
            timeout,
            ..
        } => {
            let (image, interrupt) = vm::prepare(&paths)?;
            let opts = boot::Options {
                writable,
                timeout: Duration::from_secs(timeout),
                ..boot::Options::new(&kernel, init)
            };
            let guest = boot::boot(&paths, &image, &opts, &interrupt)?;
            println!("{}", guest.ready_line());
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
        Verb::Stop { timeout } => {
            let stopped = stop::stop(&paths, Duration::from_secs(timeout))?;
            return Ok(passed(stop::print(stopped.as_ref())));
        }
        Verb::Status { json } => Guest::print_status(&paths, json)?,
        Verb::Check { kernel, .. } => {
            let (image, interrupt) = vm::prepare(&paths)?;
            let kernels = if kernel.is_empty() {
                distro.series(&paths)?
            } else {
                kernel
            };
            return Ok(passed(check::check_kernels(
                &paths, &image, &kernels, &interrupt,
            )?));
        }
        Verb::Faults {
            from,
            to,
            only,
            suite,
        } => {
            if from == to {
                bail!("--from and --to are the same kernel");
            }
            let (image, interrupt) = vm::prepare(&paths)?;
            let chosen = faults::Chosen {
                only: only.as_deref(),
                suite,
            };
            let results = faults::faults(&paths, &image, &from, &to, &chosen, &interrupt)?;
            return Ok(passed(faults::print_table(&results)));
        }
        Verb::UpgradeCheck {
            from,
            to,
            then,
            criu,
            ..
        } => {
            criu.check_distro(distro)?;
            let pairs = match (from, to) {
                (Some(from), Some(to)) if from == to => {
                    bail!("--from and --to are the same kernel")
                }
                (Some(from), Some(to)) => vec![(from, to)],
                // The oldest series to the newest, and back.
                _ => {
                    let series = distro.series(&paths)?;
                    let (Some(oldest), Some(newest)) = (series.first(), series.last()) else {
                        bail!("{} lists no kernel", distro.name());
                    };
                    vec![
                        (oldest.clone(), newest.clone()),
                        (newest.clone(), oldest.clone()),
                    ]
                }
            };
            let (image, interrupt) = vm::prepare(&paths)?;
            let criu_debs = match criu {
                CriuFrom::Release => None,
                CriuFrom::Forky => Some(vm::newer_criu::fetch(&paths)?),
            };
            return Ok(passed(upgrade_check::check_directions(
                &paths,
                &image,
                &pairs,
                &then,
                criu_debs.as_deref(),
                &interrupt,
            )?));
        }
        Verb::CriuCompat => {
            let (image, interrupt) = vm::prepare(&paths)?;
            return Ok(passed(criu_compat::criu_compat(
                &paths, &image, &interrupt,
            )?));
        }
        Verb::Fleet { hosts } => {
            let (image, interrupt) = vm::prepare(&paths)?;
            return Ok(passed(fleet::fleet(
                &paths,
                &image,
                hosts.into(),
                &interrupt,
            )?));
        }
        Verb::Demo => {
            let (image, interrupt) = vm::prepare(&paths)?;
            demo::demo(&paths, &image, &interrupt)?;
        }
        Verb::BenchUpgrade {
            json,
            minimal_initrd,
        } => {
            let (image, interrupt) = vm::prepare(&paths)?;
            let flags = if minimal_initrd {
                "--minimal-initrd"
            } else {
                ""
            };
            let figures = bench::upgrade::bench(&paths, &image, flags, &interrupt)?;
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
            small_units,
            saturate,
            repeat,
            minimal_initrd,
            lazy_restore,
            json_out,
            svg_out,
        } => {
            // Parsed before anything boots: a typo fails at once.
            let mut matrix = bench::twophase::Matrix::parse(&sizes, &rates, &modes, &store)?;
            matrix.small_units = small_units;
            matrix.saturate = saturate;
            if repeat == 0 {
                bail!("--repeat 0: at least one run of each");
            }
            matrix.repeat = repeat;
            matrix.minimal_initrd = minimal_initrd;
            matrix.lazy_restore = lazy_restore;
            let outputs = bench::twophase::Outputs::new(&paths, json_out, svg_out);
            let (image, interrupt) = vm::prepare(&paths)?;
            let runs = bench::twophase::bench(&paths, &image, &matrix, &outputs, &interrupt)?;
            bench::twophase::print_summary(&matrix, &runs, &outputs);
            return Ok(passed(bench::twophase::all_good(&runs)));
        }
        Verb::BenchBoot {
            kernel,
            rounds,
            json,
        } => {
            let (image, interrupt) = vm::prepare(&paths)?;
            let samples = bench::boot::bench(&paths, &image, &kernel, rounds, &interrupt)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&samples)?);
            } else {
                bench::boot::print_table(&kernel, &samples);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn passed(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The lab tests skip (and pass) only where the lab cannot run at all.
fn skipped(verb: &str) -> bool {
    let reason = check::cannot_run();
    if let Some(reason) = &reason {
        println!("relive-lab {verb}: SKIPPED: {reason}");
    }
    reason.is_some()
}
