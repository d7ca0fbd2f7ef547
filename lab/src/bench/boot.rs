//! `relive-lab bench-boot`: the same image and kernel booted with systemd
//! and then with relive as PID 1, N rounds, medians and relive/systemd
//! ratios.
//!
//! What is measured, identically for both inits:
//! - target: seconds from the kernel's start to multi-user.target becoming
//!   active, by the init's own record, read after `ready`: systemd's
//!   `ActiveEnterTimestampMonotonic`; relive's `state_change_usec` (wall
//!   clock) minus the guest's boot time (`date` minus /proc/uptime, read in
//!   the same command). No probe slack; excludes QEMU, firmware and the
//!   kernel's decompression.
//! - ready: seconds from spawning QEMU to the first ssh command in which
//!   the init itself says multi-user.target is active (`systemctl` /
//!   `relivectl is-active multi-user.target`). A probe logs in only once
//!   sshd's banner arrives (checked every 0.2 s, 1 s timeout), so the
//!   figure includes up to ~1 s of probe slack plus one ssh login under
//!   TCG, the same for both.
//! - PID 1's VmRSS (/proc/1/status) and Pss (/proc/1/smaps_rollup), read
//!   over ssh right after `ready`.
//! - poweroff: seconds from the init's poweroff command to QEMU's exit.

use crate::output;
use crate::vm::boot::{self, Options, ReadyWhen};
use crate::vm::guest::Init;
use crate::vm::image::Image;
use crate::vm::paths::Paths;
use crate::vm::signals::Interrupt;
use crate::vm::ssh;
use crate::vm::stop;
use anyhow::{bail, Context, Result};
use relive_api::units::UnitStatus;
use serde::Serialize;
use std::time::Duration;

#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub round: usize,
    pub init: Init,
    pub target_secs: f64,
    pub ready_secs: f64,
    pub rss_kb: u64,
    pub pss_kb: Option<u64>,
    pub poweroff_secs: f64,
}

pub fn bench(
    paths: &Paths,
    image: &Image,
    kernel: &str,
    rounds: usize,
    interrupt: &Interrupt,
) -> Result<Vec<Sample>> {
    let mut samples = Vec::new();
    for round in 1..=rounds {
        for init in [Init::Systemd, Init::Relive] {
            let step = output::step(format!("round {round}/{rounds}, {init:?}"));
            let sample = measure(paths, image, kernel, init, round, interrupt)?;
            step.done_with(&format!(
                "ready {:.1} s, RSS {} kB, PSS {} kB",
                sample.ready_secs,
                sample.rss_kb,
                sample.pss_kb.map_or("-".into(), |p| p.to_string())
            ));
            samples.push(sample);
        }
    }
    Ok(samples)
}

fn measure(
    paths: &Paths,
    image: &Image,
    kernel: &str,
    init: Init,
    round: usize,
    interrupt: &Interrupt,
) -> Result<Sample> {
    let opts = Options {
        ready_when: ReadyWhen::TargetActive,
        ..Options::new(kernel, Some(init))
    };
    let booted = boot::start(paths, image, &opts, interrupt)?;
    let ready_secs = booted.guest.ready_secs.unwrap_or_default();
    let script = format!(
        "grep '^VmRSS:' /proc/1/status; grep '^Pss:' /proc/1/smaps_rollup || true; {}",
        target_script(init)
    );
    let out = ssh::run(paths, booted.guest.ssh_port, &script)?;
    let rss_kb =
        kb_field(&out.stdout, "VmRSS:").with_context(|| format!("no VmRSS in {:?}", out.stdout))?;
    let pss_kb = kb_field(&out.stdout, "Pss:");
    let target_secs =
        target_secs(&out.stdout).with_context(|| format!("no target time in {:?}", out.stdout))?;
    let off = stop::poweroff(paths, booted, Duration::from_secs(120), interrupt)?;
    if !off.clean() {
        bail!("{init:?} did not power off cleanly: {off:?}");
    }
    Ok(Sample {
        round,
        init,
        target_secs,
        ready_secs,
        rss_kb,
        pss_kb,
        poweroff_secs: off.secs,
    })
}

/// Prints when multi-user.target became active, by the init's own record
/// (see the module comment): systemd's as `target_mono_us=`; relive's as
/// `relivectl --json status` (its `state_change_usec`, wall clock) after
/// `now_us=` and `uptime=`, which turn it into time since boot.
fn target_script(init: Init) -> &'static str {
    match init {
        Init::Systemd => {
            "echo target_mono_us=$(systemctl show -p ActiveEnterTimestampMonotonic --value multi-user.target)"
        }
        Init::Relive => {
            "echo now_us=$(date +%s%6N) uptime=$(cut -d' ' -f1 /proc/uptime); \
             relivectl --json status multi-user.target"
        }
    }
}

/// Seconds since boot at which the target became active, from
/// `target_script`'s output.
fn target_secs(text: &str) -> Option<f64> {
    let field = |key: &str| {
        text.split_whitespace()
            .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
    };
    if let Some(mono) = field("target_mono_us") {
        return Some(mono.parse::<f64>().ok()? / 1e6);
    }
    let status = text.lines().find(|l| l.starts_with('['))?;
    let target = serde_json::from_str::<Vec<UnitStatus>>(status)
        .ok()?
        .pop()?;
    let now: f64 = field("now_us")?.parse().ok()?;
    let uptime: f64 = field("uptime")?.parse().ok()?;
    let boot_wall = now - uptime * 1e6;
    Some((target.state_change_usec as f64 - boot_wall) / 1e6)
}

/// `KEY   1234 kB` → 1234.
fn kb_field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// Median of the values (mean of the middle two for an even count).
pub fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    })
}

/// The table's columns: heading, decimals, value of a sample.
type Column = (&'static str, usize, fn(&Sample) -> Option<f64>);

const COLUMNS: &[Column] = &[
    ("target s", 1, |s| Some(s.target_secs)),
    ("ready s", 1, |s| Some(s.ready_secs)),
    ("RSS kB", 0, |s| Some(s.rss_kb as f64)),
    ("PSS kB", 0, |s| s.pss_kb.map(|p| p as f64)),
    ("poweroff s", 1, |s| Some(s.poweroff_secs)),
];

/// The table on stdout: every sample, the medians per init, the ratios.
pub fn print_table(kernel: &str, samples: &[Sample]) {
    let show = |v: Option<f64>, digits: usize| v.map_or("-".into(), |v| format!("{v:.digits$}"));
    let row = |label: &str, init: &str, cells: Vec<String>| {
        let cells: Vec<String> = cells.iter().map(|c| format!("{c:>11}")).collect();
        println!("{label:<8} {init:<8}{}", cells.join(""));
    };
    println!("bench-boot, kernel {kernel}, {} samples", samples.len());
    row(
        "round",
        "init",
        COLUMNS.iter().map(|(h, _, _)| h.to_string()).collect(),
    );
    for s in samples {
        row(
            &s.round.to_string(),
            &format!("{:?}", s.init).to_lowercase(),
            COLUMNS.iter().map(|(_, d, f)| show(f(s), *d)).collect(),
        );
    }
    let medians = |init: Init| -> Vec<Option<f64>> {
        COLUMNS
            .iter()
            .map(|(_, _, f)| {
                median(
                    samples
                        .iter()
                        .filter(|s| s.init == init)
                        .filter_map(f)
                        .collect(),
                )
            })
            .collect()
    };
    let (sd, rl) = (medians(Init::Systemd), medians(Init::Relive));
    for (name, m) in [("systemd", &sd), ("relive", &rl)] {
        row(
            "median",
            name,
            m.iter()
                .zip(COLUMNS)
                .map(|(v, (_, d, _))| show(*v, *d))
                .collect(),
        );
    }
    let ratios = rl.iter().zip(&sd).map(|(r, s)| match (r, s) {
        (Some(r), Some(s)) if *s > 0.0 => Some(r / s),
        _ => None,
    });
    row("relive/", "systemd", ratios.map(|v| show(v, 2)).collect());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }

    #[test]
    fn target_times() {
        assert_eq!(target_secs("target_mono_us=12500000\n"), Some(12.5));
        let status = |usec: u64| {
            serde_json::json!([{
                "name": "multi-user.target", "description": "", "load_state": "loaded",
                "load_error": "", "fragment": "", "dropins": [], "active_state": "active",
                "sub_state": "active", "result": "success", "state_change_usec": usec,
                "main_pid": 0, "cgroup": "", "pids": [], "restarts": 0, "status_text": "",
                "upgrade_mode": "", "upgrade_priority": 0, "warnings": [], "output": [],
            }])
            .to_string()
        };
        let relive = format!(
            "now_us=1000020000000 uptime=20.00\n{}\n",
            status(1_000_013_000_000)
        );
        assert_eq!(target_secs(&relive), Some(13.0));
        assert_eq!(target_secs("now_us=1 uptime=2\n[]\n"), None);
    }

    #[test]
    fn kb_fields() {
        let text = "VmRSS:\t    6084 kB\nPss:                4765 kB\n";
        assert_eq!(kb_field(text, "VmRSS:"), Some(6084));
        assert_eq!(kb_field(text, "Pss:"), Some(4765));
        assert_eq!(kb_field(text, "Rss:"), None);
    }
}
