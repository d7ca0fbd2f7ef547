//! Process attributes a unit asks for (Limit*=, Nice=, OOMScoreAdjust=,
//! IOScheduling*=, CPUScheduling*=, NoNewPrivileges=) are what its process
//! has, read back from /proc as an administrator would.

use relive_tests::{has_cap, require_sandbox, Sandbox, CAP_SYS_RESOURCE};
use std::time::Duration;

/// A /proc/PID/limits line's soft and hard values, as printed.
fn limit(pid: i32, name: &str) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("no {name} line"));
    let mut words = line[name.len()..].split_whitespace();
    (
        words.next().unwrap().to_owned(),
        words.next().unwrap().to_owned(),
    )
}

/// Field `n` (1-based, as in proc(5)) of /proc/PID/stat.
fn stat_field(pid: i32, n: usize) -> String {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The command name may hold spaces: count from after its ')'.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    rest.split_whitespace().nth(n - 3).unwrap().to_owned()
}

#[test]
fn a_services_process_has_the_attributes_its_unit_asks_for() {
    require_sandbox!();
    let unit = "[Service]\nExecStart=/bin/sleep 300\nUser=nobody\n\
        Nice=5\nOOMScoreAdjust=500\nLimitCORE=0\nLimitNPROC=100:200\n\
        LimitMEMLOCK=64K\nIOSchedulingClass=idle\nCPUSchedulingPolicy=batch\n\
        NoNewPrivileges=yes\n";
    let sandbox = Sandbox::boot(
        &[("attrs.service", unit), ("multi-user.target", "[Unit]\n")],
        "",
    );
    sandbox.ctl_ok(&["start", "attrs.service"]);
    sandbox.wait_state("attrs.service", "active", Duration::from_secs(10));
    let pid = sandbox.cgroup_pids("attrs.service")[0] as i32;
    assert_eq!(stat_field(pid, 19), "5", "nice");
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{pid}/oom_score_adj"))
            .unwrap()
            .trim(),
        "500"
    );
    assert_eq!(limit(pid, "Max core file size"), ("0".into(), "0".into()));
    assert_eq!(limit(pid, "Max processes"), ("100".into(), "200".into()));
    assert_eq!(
        limit(pid, "Max locked memory"),
        ("65536".into(), "65536".into())
    );
    // SCHED_BATCH is 3.
    assert_eq!(stat_field(pid, 41), "3", "scheduling policy");
    let ionice = std::process::Command::new("ionice")
        .args(["-p", &pid.to_string()])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&ionice.stdout).trim(), "idle");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(status.contains("NoNewPrivs:\t1"), "{status}");
    // PID 1 itself keeps its own.
    let pid1 = sandbox.pid1();
    assert_eq!(stat_field(pid1, 19), "0", "relive's nice level");
    let _ = sandbox.poweroff();
}

/// A negative OOM score needs CAP_SYS_RESOURCE, and is set before the
/// switch to User=: with it the service runs with its score; without it
/// (a container may withhold it) the start fails with systemd's
/// 206/OOM_ADJUST instead of running without what the unit asked for.
#[test]
fn a_privileged_attribute_is_set_before_the_user_switch_or_fails_the_start() {
    require_sandbox!();
    let unit = "[Service]\nExecStart=/bin/sleep 300\nUser=nobody\nOOMScoreAdjust=-500\n";
    let sandbox = Sandbox::boot(
        &[
            ("protected.service", unit),
            ("multi-user.target", "[Unit]\n"),
        ],
        "",
    );
    let _ = sandbox.ctl(&["start", "protected.service"]);
    if has_cap(sandbox.pid1(), CAP_SYS_RESOURCE) {
        sandbox.wait_state("protected.service", "active", Duration::from_secs(10));
        let pid = sandbox.cgroup_pids("protected.service")[0] as i32;
        let score = std::fs::read_to_string(format!("/proc/{pid}/oom_score_adj")).unwrap();
        assert_eq!(score.trim(), "-500");
    } else {
        sandbox.wait_state("protected.service", "failed", Duration::from_secs(10));
        assert!(
            !sandbox.log_lines("status=206/OOM_ADJUST").is_empty(),
            "{}",
            sandbox.log()
        );
    }
    let _ = sandbox.poweroff();
}

/// StateDirectory= and friends: made before the start under their bases,
/// the service's (but the configuration one), with their modes, named in
/// $STATE_DIRECTORY and friends, and kept after the stop. The sandbox
/// shares the host's /var and /etc: the names are unique and removed.
#[test]
fn state_logs_and_configuration_directories_are_made_for_the_service() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    require_sandbox!();
    let name = format!("relive-test-{}", std::process::id());
    let unit = format!(
        "[Service]\nUser=nobody\nStateDirectory={name} {name}-b\nLogsDirectory={name}\n\
         LogsDirectoryMode=0750\nConfigurationDirectory={name}\n\
         ExecStart=/bin/sh -c 'echo dirs=$STATE_DIRECTORY+$LOGS_DIRECTORY+$CONFIGURATION_DIRECTORY; exec sleep 300'\n"
    );
    let sandbox = Sandbox::boot(
        &[
            ("dirs.service", unit.as_str()),
            ("multi-user.target", "[Unit]\n"),
        ],
        "",
    );
    sandbox.ctl_ok(&["start", "dirs.service"]);
    sandbox.wait_state("dirs.service", "active", Duration::from_secs(10));
    let paths = [
        format!("/var/lib/{name}"),
        format!("/var/lib/{name}-b"),
        format!("/var/log/{name}"),
        format!("/etc/{name}"),
    ];
    let nobody = nix::unistd::User::from_name("nobody")
        .unwrap()
        .unwrap()
        .uid
        .as_raw();
    let meta: Vec<std::fs::Metadata> = paths
        .iter()
        .map(|p| std::fs::metadata(p).unwrap())
        .collect();
    let summary: Vec<(u32, u32)> = meta
        .iter()
        .map(|m| (m.uid(), m.permissions().mode() & 0o7777))
        .collect();
    for p in &paths {
        let _ = std::fs::remove_dir(p);
    }
    assert_eq!(
        summary,
        [
            (nobody, 0o755),
            (nobody, 0o755),
            (nobody, 0o750),
            (0, 0o755)
        ],
        "owner and mode of {paths:?}"
    );
    sandbox.wait_for("output", Duration::from_secs(5), || {
        !sandbox.log_lines("dirs.service: dirs=").is_empty()
    });
    let wanted = format!("dirs=/var/lib/{name}:/var/lib/{name}-b+/var/log/{name}+/etc/{name}");
    assert!(!sandbox.log_lines(&wanted).is_empty(), "{}", sandbox.log());
    let _ = sandbox.poweroff();
}
