//! `relive-lab faults`: the fault matrix. One guest; each scenario injects
//! faults (relive's /run/relive/fault-inject, inert otherwise) or bad
//! input, asks for a live upgrade, and checks what a user would: no
//! service lost (every preserved unit active, on its old PIDs unless the
//! report or the abort says its state was lost and it was started
//! afresh), an error naming the cause, and a machine that can attempt the
//! upgrade again (the preflight passes afterwards). Prints one line per
//! scenario and the total of services lost, which must be 0.

mod matrix;

use crate::output;
use crate::scenarios::check;
use crate::scenarios::download;
use crate::scenarios::feed;
use crate::scenarios::upgrade::{self, outcome_text};
use crate::vm::boot::{self, Booted, Options};
use crate::vm::guest::Init;
use crate::vm::image::Image;
use crate::vm::paths::Paths;
use crate::vm::signals::Interrupt;
use crate::vm::ssh;
use crate::vm::stop;
use anyhow::{Context, Result};
use matrix::{scenarios, Expect, Scenario};
use relive_api::report::{UnitMode, UpgradeReport};
use relive_api::units::UnitStatus;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Every preserved unit of the lab image.
const UNITS: &[&str] = &[
    "ssh.service",
    "redis-server.service",
    "relive-echo.service",
    "relive-counter.service",
    "relive-idle.service",
    "relive-busy.service",
    "nginx.service",
    "relive-slowfile.service",
];
const FAULT_FILE: &str = "/run/relive/fault-inject";

/// One scenario's line in the table.
#[derive(Debug, Clone)]
pub struct FaultResult {
    pub scenario: String,
    pub expected: String,
    pub observed: String,
    pub lost: usize,
    pub ok: bool,
}

/// Which scenarios of the matrix run.
pub struct Chosen<'a> {
    /// Those whose name contains this text.
    pub only: Option<&'a str>,
    /// Those the test suite runs.
    pub suite: bool,
}

pub fn faults(
    paths: &Paths,
    image: &Image,
    from: &str,
    to: &str,
    chosen: &Chosen,
    interrupt: &Interrupt,
) -> Result<Vec<FaultResult>> {
    let releases = [
        image.kernel(from)?.release.clone(),
        image.kernel(to)?.release.clone(),
    ];
    let opts = Options {
        writable: true,
        ..Options::new(from, Some(Init::Relive))
    };
    let mut booted = boot::start(paths, image, &opts, interrupt)?;
    let mut results = Vec::new();
    // Completed upgrades flip the kernel: the next one goes back.
    let mut running = 0;
    let chosen: Vec<Scenario> = scenarios()
        .into_iter()
        .filter(|s| chosen.only.is_none_or(|text| s.name.contains(text)))
        .filter(|s| s.suite || !chosen.suite)
        .collect();
    let count = chosen.len();
    for (i, scenario) in chosen.into_iter().enumerate() {
        interrupt.check()?;
        let step = output::step(format!("fault {}/{count}: {}", i + 1, scenario.name));
        let target = &releases[1 - running];
        let result = run(paths, &mut booted, &scenario, target, interrupt);
        let broke = result.is_err();
        let result = result.unwrap_or_else(|e| FaultResult {
            scenario: scenario.name.into(),
            expected: expected(scenario.expect),
            observed: format!("the scenario broke: {e:#}"),
            lost: 0,
            ok: false,
        });
        if scenario.expect == Expect::Completed && result.ok {
            running = 1 - running;
        }
        output::log(&format!("{}: {}", result.scenario, result.observed));
        step.finish(result.ok);
        results.push(result);
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
    results.push(FaultResult {
        scenario: "poweroff after the matrix".into(),
        expected: "clean".into(),
        observed: off.detail.clone(),
        lost: 0,
        ok: off.ok,
    });
    if results.iter().all(|r| r.ok) {
        let _ = std::fs::remove_file(paths.writable_disk());
    }
    Ok(results)
}

fn expected(expect: Expect) -> String {
    format!("{expect:?}").to_lowercase()
}

/// What a scenario saw of the upgrade it asked for.
#[derive(Debug, Default)]
struct Seen {
    /// relive named the cause (and refused what it must refuse meanwhile).
    named: bool,
    /// Units whose loss relive reported: started afresh, not lost silently.
    reported_lost: BTreeSet<String>,
    /// For the table.
    observed: String,
}

fn run(
    paths: &Paths,
    booted: &mut Booted,
    scenario: &Scenario,
    target: &str,
    interrupt: &Interrupt,
) -> Result<FaultResult> {
    let port = booted.guest.ssh_port;
    let sh = |cmd: &str| ssh::run(paths, port, cmd);
    let fill = |s: &str| {
        s.replace("{K}", &format!("/boot/vmlinuz-{target}"))
            .replace("{I}", &format!("/boot/initrd.img-{target}"))
    };
    let before = Machine::read(paths, port)?;
    sh(&format!("rm -f {}", download::RESULT))?;
    if !scenario.setup.is_empty() {
        sh(&fill(scenario.setup))?;
    }
    // Two units tied by a FIFO, when the scenario set them up.
    let feed_before = if scenario.setup == feed::SETUP {
        feed::parse(&sh(feed::STATE)?.stdout)
    } else {
        None
    };
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
    let asked = sh(&format!("relivectl live-upgrade --detach {args} 2>&1"))?;
    let said = asked.stdout.trim().to_owned();
    let upgrade = Upgrade {
        paths,
        port,
        mark,
        interrupt,
    };
    let seen = match (scenario.expect, asked.success()) {
        (Expect::Refused, false) => Seen {
            named: scenario.cause.named(&said, None),
            observed: format!("refused: {}", last_line_with(&said, scenario.cause.text())),
            ..Seen::default()
        },
        (Expect::Refused, true) => upgrade.not_refused(booted)?,
        (_, false) => Seen {
            observed: format!("refused unexpectedly: {said}"),
            ..Seen::default()
        },
        (Expect::RolledBack, true) => upgrade.rolled_back(booted, scenario, &before)?,
        (Expect::Undone, true) => upgrade.undone(booted, scenario)?,
        (Expect::Completed, true) => upgrade.completed(booted, scenario, &args, target)?,
    };
    sh(&format!("rm -f {FAULT_FILE}"))?;
    // A download the scenario started must end intact, whatever happened.
    let mut download_lost = None;
    if sh(&format!("test -e {}", download::RESULT))?.success() {
        let result = download::wait(paths, port, interrupt)?;
        if let Err(why) = download::intact(&result) {
            download_lost = Some(why);
        }
    }
    // The FIFO's lines must all arrive, once and in order, to the same
    // two processes.
    let mut feed_lost = None;
    if feed_before.is_some() {
        std::thread::sleep(std::time::Duration::from_secs(2));
        let (kept, detail) = feed::after_verdict(feed_before, &sh(feed::STATE)?.stdout);
        if !kept {
            feed_lost = Some(detail);
        }
        sh(feed::TEARDOWN)?;
    }
    let after = Machine::read(paths, port)?;
    let lost = before.lost(&after, &seen.reported_lost);
    let mut observed = seen.observed;
    // The machine can try again: the preflight passes.
    let retry_to = if after.release == target {
        &before.release
    } else {
        target
    };
    let retry = sh(&format!(
        "relivectl live-upgrade --dry-run {} >/dev/null 2>&1",
        upgrade::kernel_args(retry_to)
    ))?;
    if !retry.success() {
        observed.push_str("; the preflight fails afterwards");
    }
    if !lost.is_empty() {
        observed.push_str(&format!("; LOST {}", lost.join(", ")));
    }
    if let Some(why) = &download_lost {
        observed.push_str(&format!("; the download through nginx LOST: {why}"));
    }
    if let Some(why) = &feed_lost {
        observed.push_str(&format!("; the FIFO's lines LOST: {why}"));
    }
    Ok(FaultResult {
        scenario: scenario.name.into(),
        expected: expected(scenario.expect),
        ok: seen.named
            && lost.is_empty()
            && retry.success()
            && download_lost.is_none()
            && feed_lost.is_none(),
        observed,
        lost: lost.len(),
    })
}

/// An upgrade a scenario has started (`relivectl live-upgrade --detach`
/// said yes), followed to its end.
struct Upgrade<'a> {
    paths: &'a Paths,
    port: u16,
    /// The serial log's length when it was asked for.
    mark: usize,
    interrupt: &'a Interrupt,
}

impl Upgrade<'_> {
    fn sh(&self, script: &str) -> Result<ssh::Output> {
        ssh::run(self.paths, self.port, script)
    }

    /// Waits for relive's end-of-upgrade (or end-of-undo) line, then ssh.
    fn wait(&self, booted: &mut Booted, wanted: &[&str], unwanted: &[&str]) -> Result<()> {
        output::note(&format!("waiting for {wanted:?} on the serial console"));
        upgrade::wait_serial(booted, self.mark, wanted, unwanted, self.interrupt)?;
        output::note("waiting for ssh");
        upgrade::wait_ssh(self.paths, self.port, self.interrupt)
    }

    /// It should have been refused: let it end before anything else.
    fn not_refused(&self, booted: &mut Booted) -> Result<Seen> {
        let ended = upgrade::wait_serial(
            booted,
            self.mark,
            &[upgrade::COMPLETE_LINE],
            &[upgrade::UNDONE_LINE],
            self.interrupt,
        );
        upgrade::wait_ssh(self.paths, self.port, self.interrupt)?;
        Ok(Seen {
            observed: format!(
                "NOT refused; the upgrade {}",
                if ended.is_ok() {
                    "completed"
                } else {
                    "was undone"
                }
            ),
            ..Seen::default()
        })
    }

    /// Undone on the running kernel. No report is written for an abort:
    /// relive's abort line on the serial console is the only record of
    /// the cause and of the units it had to start afresh.
    fn undone(&self, booted: &mut Booted, scenario: &Scenario) -> Result<Seen> {
        self.wait(
            booted,
            &[upgrade::ABORTED_LINE, upgrade::UNDONE_LINE],
            &[upgrade::COMPLETE_LINE],
        )?;
        let log = std::fs::read(&booted.guest.serial_log).unwrap_or_default();
        let log = String::from_utf8_lossy(log.get(self.mark..).unwrap_or_default()).into_owned();
        let line = last_line_with(&log, upgrade::ABORTED_LINE);
        // The report records this abort (its message is the one on the
        // console), with the units started afresh as data.
        let report = self.abort_report(&log);
        let recorded = report.is_some();
        Ok(Seen {
            named: recorded && scenario.cause.named(&line, report.as_ref()),
            reported_lost: report
                .as_ref()
                .map(|r| r.lost().map(|(unit, _)| unit.to_owned()).collect())
                .unwrap_or_default(),
            observed: if recorded {
                format!("undone: {line}")
            } else {
                format!("undone, but the report does not record it: {line}")
            },
        })
    }

    /// The report of the abort the console showed since the fault began
    /// (`log`), once relive has written it (right after the undo): None if
    /// it never does. The console carries each message twice (relive's
    /// own line and the kernel's copy from /dev/kmsg), and the two can
    /// interleave on the serial line: the report's message must appear
    /// whole in one of them.
    fn abort_report(&self, log: &str) -> Option<UpgradeReport> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if let Ok(report) = upgrade::report(self.paths, self.port) {
                let message = report.aborted.as_deref().unwrap_or_default();
                if !message.is_empty() && log.contains(message) {
                    return Some(report);
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        None
    }

    /// Completed on the target kernel. While it runs, a second upgrade
    /// and a poweroff must be refused; a unit file edited meanwhile must
    /// be noted in the report.
    fn completed(
        &self,
        booted: &mut Booted,
        scenario: &Scenario,
        args: &str,
        target: &str,
    ) -> Result<Seen> {
        let again = self.sh(&format!("relivectl live-upgrade --detach {args} 2>&1"))?;
        let off = self.sh("relivectl poweroff 2>&1")?;
        self.sh("touch /etc/systemd/system/relive-idle.service")?;
        let refused = !again.success()
            && again.stdout.contains("already running")
            && !off.success()
            && off.stdout.contains("a live upgrade is running");
        let mut observed = String::new();
        if !refused {
            observed = format!(
                "NOT refused while running: {} / {}; ",
                again.stdout.trim(),
                off.stdout.trim()
            );
        }
        self.wait(booted, &[upgrade::COMPLETE_LINE], &[upgrade::ABORTED_LINE])?;
        let report = upgrade::report(self.paths, self.port)?;
        let noted = report
            .notes
            .iter()
            .any(|n| n.contains("relive-idle.service was edited during the upgrade"));
        observed.push_str(&format!(
            "completed on {}: {}; notes: {}",
            report.kernel_to,
            preserved_outcomes(&report),
            report.notes.join(" ")
        ));
        Ok(Seen {
            named: refused
                && noted
                && report.kernel_to == target
                && scenario.cause.named(&observed, Some(&report)),
            reported_lost: report.lost().map(|(name, _)| name.to_owned()).collect(),
            observed,
        })
    }

    /// The new kernel could not restore a rollback unit: the machine is
    /// back on the kernel it started from, and the report says why.
    fn rolled_back(
        &self,
        booted: &mut Booted,
        scenario: &Scenario,
        before: &Machine,
    ) -> Result<Seen> {
        self.wait(booted, &[upgrade::COMPLETE_LINE], &[upgrade::ABORTED_LINE])?;
        self.sh("rm -rf /etc/systemd/system/relive-counter.service.d && relivectl daemon-reload")?;
        let report = upgrade::report(self.paths, self.port)?;
        let why = report.rolled_back.clone().unwrap_or_default();
        Ok(Seen {
            named: report.rolled_back.is_some()
                && report.kernel_to == before.release
                && scenario.cause.named(&why, Some(&report)),
            observed: format!("on {} again: {why}", report.kernel_to),
            ..Seen::default()
        })
    }
}

fn preserved_outcomes(report: &UpgradeReport) -> String {
    report
        .units
        .iter()
        .filter(|u| u.mode == UnitMode::Preserve)
        .map(|u| format!("{}: {}", u.name, outcome_text(u)))
        .collect::<Vec<_>>()
        .join("; ")
}

/// What a scenario compares before and after: the running kernel, and
/// each preserved unit's state, main PID and cgroup PIDs.
#[derive(Debug)]
struct Machine {
    release: String,
    units: BTreeMap<String, UnitStatus>,
}

impl Machine {
    fn read(paths: &Paths, port: u16) -> Result<Machine> {
        let script = format!("uname -r; relivectl --json status {}", UNITS.join(" "));
        Machine::parse(&ssh::run(paths, port, &script)?.stdout)
    }

    /// `uname -r`'s line, then `relivectl --json status`'s.
    fn parse(stdout: &str) -> Result<Machine> {
        let (release, json) = stdout
            .trim()
            .split_once('\n')
            .context("reading the units' state: relivectl status printed nothing")?;
        let units: Vec<UnitStatus> =
            serde_json::from_str(json).context("reading the units' state")?;
        Ok(Machine {
            release: release.trim().to_owned(),
            units: units.into_iter().map(|u| (u.name.clone(), u)).collect(),
        })
    }

    /// Units not active in `after`, or on other PIDs without their loss
    /// reported. ssh's session processes come and go: only its main PID
    /// counts.
    fn lost(&self, after: &Machine, reported: &BTreeSet<String>) -> Vec<String> {
        let pids = |u: &UnitStatus| u.pids.iter().copied().collect::<BTreeSet<u32>>();
        UNITS
            .iter()
            .filter(|name| {
                let (Some(before), Some(now)) = (self.units.get(**name), after.units.get(**name))
                else {
                    return true;
                };
                let same = if **name == "ssh.service" {
                    before.main_pid == now.main_pid
                } else {
                    pids(before) == pids(now)
                };
                now.active_state != "active" || (!same && !reported.contains(**name))
            })
            .map(|name| name.to_string())
            .collect()
    }
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
pub fn print_table(results: &[FaultResult]) -> bool {
    output::println(format!(
        "{:<62} {:<10} {:>5}  OBSERVED",
        "FAULT", "EXPECTED", "LOST"
    ));
    for r in results {
        output::println(format!(
            "{} {:<57} {:<10} {:>5}  {}",
            if r.ok { "ok  " } else { "FAIL" },
            r.scenario,
            r.expected,
            r.lost,
            r.observed
        ));
    }
    let lost: usize = results.iter().map(|r| r.lost).sum();
    output::println(format!("services lost in all: {lost}"));
    lost == 0 && results.iter().all(|r| r.ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn status(name: &str, active: &str, main_pid: u32, pids: &[u32]) -> serde_json::Value {
        json!({
            "name": name, "description": "", "load_state": "loaded", "load_error": "",
            "fragment": "", "dropins": [], "active_state": active, "sub_state": "running",
            "result": "success", "state_change_usec": 0, "main_pid": main_pid,
            "cgroup": "", "pids": pids, "restarts": 0, "status_text": "",
            "upgrade_mode": "preserve", "upgrade_priority": 0, "warnings": [], "output": [],
        })
    }

    fn machine(units: serde_json::Value) -> Machine {
        Machine::parse(&format!("6.1.0-47-amd64\n{units}\n")).unwrap()
    }

    #[test]
    fn a_unit_on_new_pids_is_lost_unless_relive_reported_it() {
        let all = |counter: &[u32], ssh: &[u32], echo: &str| {
            json!(UNITS
                .iter()
                .map(|&u| match u {
                    "ssh.service" => status(u, "active", 500, ssh),
                    "relive-counter.service" => status(u, "active", counter[0], counter),
                    "relive-echo.service" => status(u, echo, 600, &[600]),
                    _ => status(u, "active", 700, &[700]),
                })
                .collect::<Vec<_>>())
        };
        let before = machine(all(&[800, 801], &[500, 900], "active"));
        assert_eq!(before.release, "6.1.0-47-amd64");
        // ssh's sessions differ; its listener is the same.
        let same = machine(all(&[800, 801], &[500, 910, 911], "active"));
        assert!(before.lost(&same, &BTreeSet::new()).is_empty());
        let fresh = machine(all(&[820], &[500], "active"));
        assert_eq!(
            before.lost(&fresh, &BTreeSet::new()),
            ["relive-counter.service"]
        );
        let reported = BTreeSet::from(["relive-counter.service".to_owned()]);
        assert!(before.lost(&fresh, &reported).is_empty());
        let failed = machine(all(&[800, 801], &[500], "failed"));
        assert_eq!(before.lost(&failed, &reported), ["relive-echo.service"]);
    }

    #[test]
    fn a_lost_cause_is_read_from_the_report_not_from_text() {
        let report: UpgradeReport = serde_json::from_value(json!({
            "kernel_from": "a", "kernel_to": "b", "started_usec": 0, "kexec_usec": 0,
            "resumed_usec": 0, "finished_usec": 0, "total_image_bytes": 0,
            "longest_stoppage_ms": 0.0, "clock": "",
            "units": [
                {"name": "relive-idle.service", "mode": "preserve",
                 "outcome": "state lost: images refused: pages-1.img; started afresh"},
                {"name": "relive-busy.service", "mode": "preserve", "outcome": "restored"},
            ],
        }))
        .unwrap();
        let cause = |unit, reason| matrix::Cause::Lost { unit, reason };
        let text = "relive-busy.service: state lost: images refused";
        assert!(cause("relive-idle.service", "images refused").named("", Some(&report)));
        assert!(!cause("relive-busy.service", "images refused").named(text, Some(&report)));
        assert!(!cause("relive-idle.service", "images refused").named(text, None));
        assert!(matrix::Cause::Says("is full").named("the store is full", None));
    }
}
