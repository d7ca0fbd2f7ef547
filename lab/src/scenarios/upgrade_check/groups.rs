//! (i) A preservation group across the kexec: nginx proxies 127.0.0.1:8081
//! to relive-slowfile over a unix socket (mkosi/mkosi.extra). relive-fetch,
//! started just before the upgrade, downloads 12 MiB through nginx slowly
//! enough to be in flight during the stoppage; it must finish intact, and
//! the plan and the report must show the two units as one group.

use crate::scenarios::download;
use relive_api::plan::Plan;
use relive_api::report::{TiePeer, UpgradeReport};

const GROUP: [&str; 2] = ["nginx.service", "relive-slowfile.service"];

/// The dry-run names nginx and relive-slowfile as one group (and says
/// which unix sockets will be reset).
pub fn plan_verdict(plan: &Plan) -> (bool, String) {
    let groups = plan.groups();
    let grouped = groups
        .iter()
        .any(|g| GROUP.iter().all(|u| g.iter().any(|m| m == u)));
    let links: Vec<String> = plan
        .unix_links
        .iter()
        .map(|l| format!("{} <-> {} ({} {})", l.a, l.b, l.kind.name(), l.name))
        .collect();
    let resets: Vec<String> = plan
        .doomed_connections
        .iter()
        .filter(|c| c.local.starts_with("unix"))
        .map(|c| format!("{}: {}", c.unit, c.reason))
        .collect();
    (
        grouped,
        format!(
            "groups {:?}; links: {}; unix resets: {}",
            groups,
            links.join(", "),
            if resets.is_empty() {
                "none".into()
            } else {
                resets.join("; ")
            }
        ),
    )
}

/// The report: each of the two restored with a tie to the other.
pub fn report_verdict(report: &UpgradeReport) -> (bool, String) {
    let mut ok = true;
    let mut detail = Vec::new();
    for (unit, other) in [(GROUP[0], GROUP[1]), (GROUP[1], GROUP[0])] {
        let record = report.units.iter().find(|r| r.name == unit);
        let ties: Vec<String> = record
            .map(|r| {
                r.unix_ties
                    .iter()
                    .map(|t| match &t.peer {
                        TiePeer::Unit { unit, inode } => {
                            format!(
                                "socket {} -> {unit} socket {inode}, {} bytes queued",
                                t.inode, t.queued
                            )
                        }
                        TiePeer::Reset { why } => format!("socket {} reset ({why})", t.inode),
                    })
                    .collect()
            })
            .unwrap_or_default();
        ok &= record.is_some_and(|r| {
            r.unix_ties
                .iter()
                .any(|t| matches!(&t.peer, TiePeer::Unit { unit, .. } if unit == other))
        });
        detail.push(format!("{unit}: {}", ties.join(", ")));
    }
    (ok, detail.join("; "))
}

/// What the result file says, once the download has ended: it started
/// before the upgrade, ended after the kexec, and got every byte.
pub fn fetch_verdict(result: &str, report: &UpgradeReport) -> (bool, String) {
    match download::intact(result) {
        Ok((started, ended)) => {
            let before = report.started_usec as i64 / 1_000_000 - started as i64;
            let after = ended as i64 - report.kexec_usec as i64 / 1_000_000;
            (
                before >= 0 && after >= 0,
                format!(
                    "{} bytes intact; started {before} s before the upgrade, ended {after} s after the kexec",
                    download::BODY_BYTES
                ),
            )
        }
        Err(why) => (false, why),
    }
}

/// (k) nginx and its backend after the upgrade: `relivectl reload` and
/// `systemctl reload` work (nginx's PID file crossed the kexec), and the
/// file relive-slowfile keeps open in /dev/shm is there, as it wrote it.
pub const AFTER_SCRIPT: &str = "relivectl reload nginx.service && systemctl reload nginx.service && echo reloaded; \
     cat /run/nginx.pid; systemctl show -p MainPID --value nginx.service; cat /dev/shm/relive-slowfile";

/// What [`AFTER_SCRIPT`] printed, against nginx's main PID before.
pub fn after_verdict(stdout: &str, nginx_pid: u32) -> (bool, String) {
    let lines: Vec<&str> = stdout.lines().map(str::trim).collect();
    let body = relive_workloads::checksum(&relive_workloads::pattern(download::BODY_BYTES));
    let pid = nginx_pid.to_string();
    let ok = lines.len() == 4
        && lines[0] == "reloaded"
        && lines[1] == pid
        && lines[2] == pid
        && lines[3] == format!("relive-slowfile {body}");
    (ok, format!("nginx PID before {pid}; {}", lines.join(" | ")))
}

/// Waits (10 s at most) until no nginx worker is left from before a reload.
pub const OLD_WORKERS_GONE: &str = "for i in $(seq 50); do \
     pgrep -f 'nginx: worker process is shutting down' >/dev/null || break; sleep 0.2; done";
