//! `relivectl live-upgrade` run from inside a unit the upgrade preserves
//! (the usual case: an ssh session, part of ssh.service), followed to its
//! end. Its connection to relive cannot be checkpointed, so a helper
//! process holds it (`live-upgrade --let-go-for UNIT`): the helper passes
//! the progress on as JSON lines and exits when relive says the unit is
//! about to be checkpointed. This process, holding no connection, is
//! frozen, checkpointed and restored with its unit; then it connects to
//! relive again and prints the outcome, exiting with the upgrade's status.

use crate::cli::Global;
use crate::error::CtlError;
use relive_api::progress::{Phase, Progress};
use relive_api::report::UpgradeReport;
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The unit relivectl runs in, from its cgroup: None outside a unit of
/// relive's (relive's units are below /system.slice).
pub fn own_unit(proc_cgroup: &str) -> Option<String> {
    let path = proc_cgroup.lines().find_map(|l| l.strip_prefix("0::"))?;
    let rest = path.strip_prefix("/system.slice/")?;
    let unit = rest.split('/').next()?;
    (!unit.is_empty()).then(|| unit.to_owned())
}

/// The relive unit whose checkpoint takes this process: its own, or,
/// from a scope (an ssh login's session scope, whose processes descend
/// from sshd), that of the nearest ancestor in a unit of relive's.
pub fn own_unit_of_tree() -> Option<String> {
    let mut pid = std::process::id() as i32;
    while pid > 1 {
        let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        if let Some(unit) = own_unit(&cgroup) {
            return Some(unit);
        }
        pid = procfs::process::Process::new(pid).ok()?.stat().ok()?.ppid;
    }
    None
}

/// Whether a progress step is relive asking `unit` to let go.
pub fn asks_to_let_go(p: &Progress, unit: &str) -> bool {
    p.phase == Phase::Wait && p.unit == unit
}

/// How long the restored relivectl waits for the new relive's report.
const REPORT_WAIT: Duration = Duration::from_secs(30 * 60);

/// Runs the upgrade through a helper and follows it; `show` prints each
/// progress step. This process never connects to relive itself: every
/// call is a child relivectl's, whose exit closes its connection at once.
pub fn run(
    global: &Global,
    unit: &str,
    show: &dyn Fn(&Progress),
) -> Result<UpgradeReport, CtlError> {
    // The report of this upgrade starts after this moment (both on the
    // old kernel's clock).
    let asked_usec = now_usec();
    let global_args = global_args(global);
    let mut args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--json").collect();
    args.extend(["--json".into(), "--let-go-for".into(), unit.to_owned()]);
    let mut helper = Command::new(own_exe()?)
        .args(&args)
        .stdout(Stdio::piped())
        .spawn()
        .map_err(CtlError::Output)?;
    let mut let_go = false;
    if let Some(out) = helper.stdout.take() {
        for line in std::io::BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if let Ok(p) = serde_json::from_str::<Progress>(&line) {
                show(&p);
                let_go |= asks_to_let_go(&p, unit);
            }
        }
    }
    let status = helper.wait().map_err(CtlError::Output)?;
    if !let_go {
        // The upgrade failed before touching this unit (the helper said
        // why), or went on without it.
        return Err(CtlError::Refused(format!(
            "the live upgrade ended before {unit} was checkpointed ({status})"
        )));
    }
    eprintln!("relivectl: let go of relive while {unit} is checkpointed; waiting for the outcome");
    let deadline = Instant::now() + REPORT_WAIT;
    loop {
        // Frozen and restored in between, or thawed after an undone
        // upgrade: either way the next report tells.
        std::thread::sleep(Duration::from_secs(1));
        if let Some(report) = report_since(&global_args, asked_usec)? {
            return Ok(report);
        }
        if Instant::now() > deadline {
            return Err(CtlError::Refused(
                "no report of the live upgrade came: see `relivectl upgrade-report`".into(),
            ));
        }
    }
}

/// The options a child relivectl needs to reach the same relive.
fn global_args(global: &Global) -> Vec<String> {
    let mut args = vec!["--socket".into(), global.socket.display().to_string()];
    if global.bus {
        args.push("--bus".into());
    }
    args
}

/// The report of an upgrade started at `since_usec` or later (wall
/// clock, microseconds), if one has completed.
pub fn report_of_upgrade_since(
    global: &Global,
    since_usec: u64,
) -> Result<Option<UpgradeReport>, CtlError> {
    report_since(&global_args(global), since_usec)
}

/// Now, as upgrade reports count time: microseconds of the wall clock.
pub fn now_usec() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn own_exe() -> Result<std::path::PathBuf, CtlError> {
    std::env::current_exe().map_err(CtlError::Output)
}

/// The last report, from a child `relivectl upgrade-report --json`, if
/// it is of an upgrade started at `since_usec` or later.
fn report_since(
    global_args: &[String],
    since_usec: u64,
) -> Result<Option<UpgradeReport>, CtlError> {
    let out = Command::new(own_exe()?)
        .args(global_args)
        .args(["--json", "upgrade-report"])
        .stderr(Stdio::null())
        .output()
        .map_err(CtlError::Output)?;
    Ok(serde_json::from_slice::<UpgradeReport>(&out.stdout)
        .ok()
        .filter(|r| r.started_usec >= since_usec))
}

/// Whether the upgrade did what was asked: the new kernel runs and no
/// unit's state was lost.
pub fn succeeded(report: &UpgradeReport) -> bool {
    report.aborted.is_none() && report.rolled_back.is_none() && report.lost().next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unit_comes_from_the_cgroup() {
        assert_eq!(
            own_unit("0::/system.slice/ssh.service\n").as_deref(),
            Some("ssh.service")
        );
        assert_eq!(
            own_unit("0::/system.slice/getty@tty1.service/sub\n").as_deref(),
            Some("getty@tty1.service")
        );
        assert_eq!(own_unit("0::/\n"), None);
        assert_eq!(own_unit("0::/user.slice/user-0.slice\n"), None);
    }

    #[test]
    fn only_a_wait_for_this_unit_asks_to_let_go() {
        let wait = Progress::new(Phase::Wait, "ssh.service", 0, "let go");
        assert!(asks_to_let_go(&wait, "ssh.service"));
        assert!(!asks_to_let_go(&wait, "cron.service"));
        let freeze = Progress::new(Phase::Freeze, "ssh.service", 0, "freezing");
        assert!(!asks_to_let_go(&freeze, "ssh.service"));
    }
}
