//! (j) One clock: after each upgrade, the restored units, the units
//! started in the new kernel and a new ssh session all read their clocks
//! in the one time namespace the report names (relive_sys::timens), so
//! their CLOCK_MONOTONIC agree; after a second upgrade too (`--then`).

use relive_api::report::{ClockOffsets, UpgradeReport};

/// Restored units, units started afresh in the new kernel, and the ssh
/// command's own shell (a new session of the restored sshd): each line
/// `NAME monotonic S NS boottime S NS`.
pub const SCRIPT: &str = "for u in relive-counter.service relive-echo.service nginx.service \
     redis-server.service ssh.service dbus.service systemd-journald.service; do \
     p=$(systemctl show -p MainPID --value $u); echo \"$u $(tr -s ' \\n' ' ' < /proc/$p/timens_offsets)\"; \
     done; echo \"ssh-session $(tr -s ' \\n' ' ' < /proc/self/timens_offsets)\"";

fn parse(line: &str) -> Option<(String, ClockOffsets)> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let ns = |secs: &str, nsecs: &str| -> Option<i64> {
        Some(secs.parse::<i64>().ok()? * 1_000_000_000 + nsecs.parse::<i64>().ok()?)
    };
    match words[..] {
        [name, "monotonic", ms, mn, "boottime", bs, bn] => Some((
            name.to_owned(),
            ClockOffsets {
                monotonic_ns: ns(ms, mn)?,
                boottime_ns: ns(bs, bn)?,
            },
        )),
        _ => None,
    }
}

/// Every process read its clocks with the report's offsets.
pub fn verdict(stdout: &str, report: &UpgradeReport) -> (bool, String) {
    let read: Vec<(String, Option<ClockOffsets>)> = stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| match parse(l) {
            Some((name, offsets)) => (name, Some(offsets)),
            None => (l.trim().to_owned(), None),
        })
        .collect();
    let wanted = report.clock_offsets;
    let ok = wanted.is_some() && read.len() == 8 && read.iter().all(|(_, o)| *o == wanted);
    let show = |o: &ClockOffsets| {
        format!(
            "monotonic {:+.3} s, boottime {:+.3} s",
            o.monotonic_ns as f64 / 1e9,
            o.boottime_ns as f64 / 1e9
        )
    };
    let differ: Vec<String> = read
        .iter()
        .filter(|(_, o)| *o != wanted)
        .map(|(name, o)| format!("{name}: {}", o.as_ref().map_or("unreadable".into(), show)))
        .collect();
    (
        ok,
        format!(
            "report: {}; {} processes read; {}",
            wanted.as_ref().map_or("no time namespace".into(), show),
            read.len(),
            if differ.is_empty() {
                "all the same".to_owned()
            } else {
                format!("differ: {}", differ.join(", "))
            }
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_of_one_namespace_agree() {
        let report = UpgradeReport {
            clock_offsets: Some(ClockOffsets {
                monotonic_ns: 100_500_000_000,
                boottime_ns: 112_000_000_000,
            }),
            ..UpgradeReport::default()
        };
        let line = |n: &str| format!("{n} monotonic 100 500000000 boottime 112 0 \n");
        let names = [
            "relive-counter.service",
            "relive-echo.service",
            "nginx.service",
            "redis-server.service",
            "ssh.service",
            "dbus.service",
            "systemd-journald.service",
            "ssh-session",
        ];
        let all: String = names.iter().map(|n| line(n)).collect();
        assert!(verdict(&all, &report).0);
        let one_off = all.replace(
            "nginx.service monotonic 100 500000000",
            "nginx.service monotonic 7 0",
        );
        let (ok, detail) = verdict(&one_off, &report);
        assert!(!ok);
        assert!(detail.contains("differ: nginx.service"), "{detail}");
    }
}
