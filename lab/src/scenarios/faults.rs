//! `relive-lab faults`: the fault matrix. One guest; each scenario injects
//! faults (relive's /run/relive/fault-inject, inert otherwise) or bad
//! input, asks for a live upgrade, and checks what a user would: no
//! service lost (every preserved unit active, on its old PIDs unless the
//! report or the abort says its state was lost and it was started
//! afresh), an error naming the cause, and a machine that can attempt the
//! upgrade again (the preflight passes afterwards). Prints one line per scenario and the
//! total of services lost, which must be 0.

use crate::scenarios::check;
use crate::scenarios::phase_check::outcome_text;
use crate::scenarios::upgrade;
use crate::vm::boot::{self, Booted, Options};
use crate::vm::guest::Init;
use crate::vm::image;
use crate::vm::paths::Paths;
use crate::vm::signals::Interrupt;
use crate::vm::ssh;
use crate::vm::stop;
use anyhow::{bail, Result};
use relive_api::report::UnitMode;
use std::collections::BTreeMap;
use std::time::Duration;

/// Every preserved unit of the lab image.
const UNITS: &[&str] = &[
    "ssh.service",
    "redis-server.service",
    "relive-echo.service",
    "relive-counter.service",
    "relive-idle.service",
    "relive-busy.service",
];
const FAULT_FILE: &str = "/run/relive/fault-inject";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// The preflight (or the request) refuses; nothing changes.
    Refused,
    /// The upgrade starts and is undone on the running kernel.
    Undone,
    /// The upgrade completes; some units may be started afresh, reported.
    Completed,
    /// The new kernel cannot restore a unit with OnRestoreFailure=rollback:
    /// the machine goes back to the old kernel, every unit restored there.
    RolledBack,
}

struct Scenario {
    name: &'static str,
    /// Lines for the fault file.
    faults: &'static [&'static str],
    /// Guest commands run first (bad files...).
    setup: &'static str,
    /// `relivectl live-upgrade` arguments instead of the target kernel's;
    /// `{K}`/`{I}` stand for its kernel and initrd paths.
    args: Option<&'static str>,
    expect: Expect,
    /// What the error, the abort line or the report must say.
    cause: &'static str,
}

fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "a truncated kernel image",
            faults: &[],
            setup: "head -c 4000000 {K} > /root/corrupt-vmlinuz",
            args: Some("--kernel /root/corrupt-vmlinuz --initrd {I} --reuse-cmdline"),
            expect: Expect::Refused,
            cause: "truncated x86 kernel image",
        },
        Scenario {
            name: "a kernel of another architecture",
            faults: &[],
            // An aarch64 ELF: /bin/true with e_machine = 183.
            setup: "cp /bin/true /root/arm64-vmlinuz && printf '\\267\\000' | dd of=/root/arm64-vmlinuz bs=1 seek=18 conv=notrunc status=none",
            args: Some("--kernel /root/arm64-vmlinuz --initrd {I} --reuse-cmdline"),
            expect: Expect::Refused,
            cause: "not an x86 kernel image",
        },
        Scenario {
            name: "a missing initrd",
            faults: &[],
            setup: "",
            args: Some("--kernel {K} --initrd /boot/no-such-initrd --reuse-cmdline"),
            expect: Expect::Refused,
            cause: "no-such-initrd",
        },
        Scenario {
            name: "--append that would not start relive",
            faults: &[],
            setup: "",
            args: Some("--kernel {K} --initrd {I} --append 'root=/dev/vda init=/bin/false'"),
            expect: Expect::Refused,
            cause: "not relive",
        },
        Scenario {
            name: "CRIU dump error in one unit",
            faults: &["dump-fail relive-idle.service"],
            setup: "",
            args: None,
            expect: Expect::Undone,
            cause: "relive-idle.service: CRIU dump failed",
        },
        Scenario {
            name: "CRIU killed during the final dump",
            faults: &["criu-kill-dump relive-counter.service"],
            setup: "",
            args: None,
            expect: Expect::Undone,
            cause: "relive-counter.service: CRIU dump failed",
        },
        Scenario {
            name: "a failed final dump takes the process with it",
            faults: &["dump-kills relive-counter.service"],
            setup: "",
            args: None,
            expect: Expect::Undone,
            cause: "relive-counter.service: state lost: its main process",
        },
        Scenario {
            name: "the store full",
            faults: &["store-full any"],
            setup: "",
            args: Some("--kernel {K} --initrd {I} --reuse-cmdline --store disk"),
            expect: Expect::Undone,
            cause: "is full",
        },
        Scenario {
            name: "a panic in relive's upgrade code",
            faults: &["panic relive-busy.service"],
            setup: "",
            args: None,
            expect: Expect::Undone,
            cause: "panicked: injected fault (panic relive-busy.service)",
        },
        Scenario {
            name: "CRIU killed in a pre-dump; a fatal pre-dump; a corrupt image; a restore error",
            faults: &[
                "criu-kill-pre-dump relive-busy.service",
                "corrupt-image relive-idle.service",
                "restore-fail relive-counter.service",
                "pre-dump-kills redis-server.service",
            ],
            setup: "",
            args: None,
            expect: Expect::Completed,
            cause: "relive-idle.service: state lost: images refused",
        },
        Scenario {
            name: "a rollback unit fails to restore in the new kernel",
            faults: &["restore-fail-new relive-counter.service"],
            setup: "mkdir -p /etc/systemd/system/relive-counter.service.d && printf '[X-LiveUpgrade]\nOnRestoreFailure=rollback\n' > /etc/systemd/system/relive-counter.service.d/rollback.conf && relivectl daemon-reload",
            args: None,
            expect: Expect::RolledBack,
            cause: "relive-counter.service could not be restored",
        },
        Scenario {
            name: "a panic in relive's resume code",
            faults: &["panic-resume relive-busy.service"],
            setup: "",
            args: None,
            expect: Expect::Completed,
            cause: "relive-busy.service: state lost: relive's resume code panicked",
        },
    ]
}

/// One scenario's outcome, for the table.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub scenario: String,
    pub expected: String,
    pub observed: String,
    pub lost: usize,
    pub ok: bool,
}

pub fn faults(
    paths: &Paths,
    from: &str,
    to: &str,
    only: Option<&str>,
    interrupt: &Interrupt,
) -> Result<Vec<Outcome>> {
    let image = image::build_or_reuse(paths, false)?;
    let releases = [
        image.kernel(from)?.release.clone(),
        image.kernel(to)?.release.clone(),
    ];
    let opts = Options {
        writable: true,
        ..Options::new(from, Some(Init::Relive))
    };
    let mut booted = boot::start(paths, &opts, interrupt)?;
    let mut outcomes = Vec::new();
    // Completed upgrades flip the kernel: the next one goes back.
    let mut running = 0;
    let chosen = scenarios()
        .into_iter()
        .filter(|s| only.is_none_or(|text| s.name.contains(text)));
    for scenario in chosen {
        interrupt.check()?;
        eprintln!("relive-lab faults: {}", scenario.name);
        let target = &releases[1 - running];
        let outcome =
            run(paths, &mut booted, &scenario, target, interrupt).unwrap_or_else(|e| Outcome {
                scenario: scenario.name.into(),
                expected: format!("{:?}", scenario.expect),
                observed: format!("the scenario broke: {e:#}"),
                lost: 0,
                ok: false,
            });
        if scenario.expect == Expect::Completed && outcome.ok {
            running = 1 - running;
        }
        eprintln!(
            "relive-lab faults: {} -> {}",
            outcome.scenario, outcome.observed
        );
        let broke = outcome.observed.starts_with("the scenario broke");
        outcomes.push(outcome);
        if broke {
            break;
        }
    }
    let off = check::poweroff_verdict(stop::poweroff(
        paths,
        booted,
        Duration::from_secs(120),
        interrupt,
    ));
    outcomes.push(Outcome {
        scenario: "poweroff after the matrix".into(),
        expected: "clean".into(),
        observed: off.detail.clone(),
        lost: 0,
        ok: off.ok,
    });
    if outcomes.iter().all(|o| o.ok) {
        let _ = std::fs::remove_file(paths.writable_disk());
    }
    Ok(outcomes)
}

fn run(
    paths: &Paths,
    booted: &mut Booted,
    scenario: &Scenario,
    target: &str,
    interrupt: &Interrupt,
) -> Result<Outcome> {
    let port = booted.guest.ssh_port;
    let sh = |cmd: &str| ssh::run(paths, port, cmd);
    let fill = |s: &str| {
        s.replace("{K}", &format!("/boot/vmlinuz-{target}"))
            .replace("{I}", &format!("/boot/initrd.img-{target}"))
    };
    let before = units(paths, port)?;
    if !scenario.setup.is_empty() {
        sh(&fill(scenario.setup))?;
    }
    sh(&format!(
        "printf '%s\\n' {} > {FAULT_FILE}",
        scenario
            .faults
            .iter()
            .map(|f| format!("'{f}'"))
            .collect::<Vec<_>>()
            .join(" ")
    ))?;
    let args = scenario
        .args
        .map(fill)
        .unwrap_or_else(|| upgrade::kernel_args(target));
    let mark = upgrade::serial_mark(booted);
    let asked = sh(&format!(
        "relivectl live-upgrade --detach {args} 2>&1; echo exit=$?"
    ))?;
    let said = asked.stdout.trim().to_owned();
    let mut observed = String::new();
    let mut cause_named = false;
    let mut refusals_ok = true;
    match scenario.expect {
        Expect::Refused if said.ends_with("exit=0") => {
            // Not refused: let the upgrade end before anything else.
            let ended = upgrade::wait_serial(
                booted,
                mark,
                &[upgrade::COMPLETE_LINE],
                &[upgrade::UNDONE_LINE],
                interrupt,
            );
            upgrade::wait_ssh(paths, port, interrupt)?;
            observed = format!(
                "NOT refused; the upgrade {}",
                if ended.is_ok() {
                    "completed"
                } else {
                    "was undone"
                }
            );
        }
        Expect::Refused => {
            cause_named = said.contains(scenario.cause);
            observed = format!("refused: {}", last_line_with(&said, scenario.cause));
        }
        Expect::RolledBack if said.ends_with("exit=0") => {
            upgrade::wait_serial(
                booted,
                mark,
                &[upgrade::COMPLETE_LINE],
                &[upgrade::ABORTED_LINE],
                interrupt,
            )?;
            upgrade::wait_ssh(paths, port, interrupt)?;
            sh("rm -rf /etc/systemd/system/relive-counter.service.d && relivectl daemon-reload")?;
            let report = upgrade::report(paths, port)?;
            let why = report.rolled_back.clone().unwrap_or_default();
            let back_home =
                before.get("uname").map(|(r, _)| r.as_str()) == Some(report.kernel_to.as_str());
            cause_named = why.contains(scenario.cause) && back_home;
            observed = format!("on {} again: {why}", report.kernel_to);
        }
        Expect::Undone | Expect::Completed if said.ends_with("exit=0") => {
            if scenario.expect == Expect::Completed {
                // While it runs: a second upgrade and a poweroff are refused.
                let again = sh(&format!(
                    "relivectl live-upgrade --detach {args} 2>&1; echo exit=$?"
                ))?;
                let off = sh("relivectl poweroff 2>&1; echo exit=$?")?;
                // A unit file edited between the preflight and the kexec.
                sh("touch /etc/systemd/system/relive-idle.service")?;
                refusals_ok = again.stdout.contains("already running")
                    && off.stdout.contains("a live upgrade is running");
                if !refusals_ok {
                    observed.push_str(&format!(
                        "NOT refused while running: {} / {}; ",
                        again.stdout.trim(),
                        off.stdout.trim()
                    ));
                }
            }
            let (wanted, unwanted) = match scenario.expect {
                Expect::Undone => (
                    vec![upgrade::ABORTED_LINE, upgrade::UNDONE_LINE],
                    vec![upgrade::COMPLETE_LINE],
                ),
                _ => (vec![upgrade::COMPLETE_LINE], vec![upgrade::ABORTED_LINE]),
            };
            upgrade::wait_serial(booted, mark, &wanted, &unwanted, interrupt)?;
            upgrade::wait_ssh(paths, port, interrupt)?;
            if scenario.expect == Expect::Undone {
                let log = std::fs::read(&booted.guest.serial_log).unwrap_or_default();
                let log = String::from_utf8_lossy(log.get(mark..).unwrap_or_default()).into_owned();
                let line = last_line_with(&log, upgrade::ABORTED_LINE);
                cause_named = line.contains(scenario.cause);
                observed.push_str(&format!("undone: {line}"));
            } else {
                let report = upgrade::report(paths, port)?;
                let lines: Vec<String> = report
                    .units
                    .iter()
                    .filter(|u| u.mode == UnitMode::Preserve)
                    .map(|u| format!("{}: {}", u.name, outcome_text(u)))
                    .collect();
                let noted = report
                    .notes
                    .iter()
                    .any(|n| n.contains("relive-idle.service was edited during the upgrade"));
                cause_named = lines.iter().any(|l| l.starts_with(scenario.cause))
                    && report.kernel_to == target
                    && noted;
                observed.push_str(&format!(
                    "completed on {}: {}; notes: {}",
                    report.kernel_to,
                    lines.join("; "),
                    report.notes.join(" ")
                ));
            }
        }
        _ => {
            observed = format!("refused unexpectedly: {said}");
        }
    }
    sh(&format!("rm -f {FAULT_FILE}"))?;
    let after = units(paths, port)?;
    let lost = lost_units(&before, &after, scenario.expect, &observed);
    // The machine can try again: the preflight passes.
    let release = |m: &BTreeMap<String, (String, String)>| m.get("uname").map(|(r, _)| r.clone());
    let retry_to = if release(&after).as_deref() == Some(target) {
        release(&before).unwrap_or_default()
    } else {
        target.to_owned()
    };
    let retry = sh(&format!(
        "relivectl live-upgrade --dry-run {} >/dev/null 2>&1; echo $?",
        upgrade::kernel_args(&retry_to)
    ))?;
    let can_retry = retry.stdout.trim() == "0";
    if !can_retry {
        observed.push_str("; the preflight fails afterwards");
    }
    if !lost.is_empty() {
        observed.push_str(&format!("; LOST {}", lost.join(", ")));
    }
    Ok(Outcome {
        scenario: scenario.name.into(),
        expected: format!("{:?}", scenario.expect).to_lowercase(),
        ok: cause_named && lost.is_empty() && can_retry && refusals_ok,
        observed,
        lost: lost.len(),
    })
}

/// Per preserved unit: (active state, PIDs); plus "uname".
fn units(paths: &Paths, port: u16) -> Result<BTreeMap<String, (String, String)>> {
    let script = format!(
        "echo uname $(uname -r) -; for u in {}; do echo $u $(relivectl is-active $u) $(cat /sys/fs/cgroup/system.slice/$u/cgroup.procs 2>/dev/null | sort | tr '\\n' ,); done",
        UNITS.join(" ")
    );
    let out = ssh::run(paths, port, &script)?;
    if !out.success() {
        bail!("reading the units' state: {}", out.stderr.trim());
    }
    Ok(out
        .stdout
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let name = w.next()?.to_owned();
            let state = w.next().unwrap_or("").to_owned();
            let pids = w.next().unwrap_or("").to_owned();
            Some((name, (state, pids)))
        })
        .collect())
}

/// Units not active afterwards, or (without a reported loss) on new PIDs.
/// ssh's session processes come and go: only its main PID counts.
fn lost_units(
    before: &BTreeMap<String, (String, String)>,
    after: &BTreeMap<String, (String, String)>,
    expect: Expect,
    observed: &str,
) -> Vec<String> {
    UNITS
        .iter()
        .filter(|u| {
            let (Some((_, pids_before)), Some((state, pids_after))) =
                (before.get(**u), after.get(**u))
            else {
                return true;
            };
            let first = |pids: &str| pids.split(',').next().unwrap_or("").to_owned();
            let same = if **u == "ssh.service" {
                first(pids_before) == first(pids_after) || pids_after.contains(&first(pids_before))
            } else {
                pids_before == pids_after
            };
            // Started afresh with the loss reported counts as kept.
            let reported = matches!(expect, Expect::Completed | Expect::Undone)
                && observed.contains(&format!("{u}: state lost"));
            state != "active" || (!same && !reported)
        })
        .map(|u| u.to_string())
        .collect()
}

fn last_line_with(text: &str, needle: &str) -> String {
    text.lines()
        .rev()
        .find(|l| l.contains(needle))
        .unwrap_or(text.lines().last().unwrap_or(""))
        .trim()
        .to_owned()
}

/// The table and the total; true if every scenario held and none lost a service.
pub fn print_table(outcomes: &[Outcome]) -> bool {
    println!("{:<62} {:<10} {:>5}  OBSERVED", "FAULT", "EXPECTED", "LOST");
    for o in outcomes {
        println!(
            "{} {:<57} {:<10} {:>5}  {}",
            if o.ok { "ok  " } else { "FAIL" },
            o.scenario,
            o.expected,
            o.lost,
            o.observed
        );
    }
    let lost: usize = outcomes.iter().map(|o| o.lost).sum();
    println!("services lost in all: {lost}");
    lost == 0 && outcomes.iter().all(|o| o.ok)
}
