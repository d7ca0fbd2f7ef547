//! `relivectl daemon-reexec`: relive hands its state to a fresh binary
//! while every service keeps running, untouched and supervised.

use relive_tests::{require_sandbox, Sandbox};
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

const CONFIG: &str = "[manager]\ndefault_timeout_stop_sec = 5\n";

#[test]
fn reexec_keeps_every_service_and_its_supervision() {
    require_sandbox!();
    let notify = relive_tests::workload("notify-workload");
    let ticker = "[Service]\nExecStart=/bin/sh -c 'i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done'\n";
    let notifier = format!(
        "[Service]\nType=notify\nExecStart={} 10\n",
        notify.display()
    );
    let setup = "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n";
    let flaky = "[Unit]\nStartLimitBurst=100\n[Service]\nExecStart=/bin/sh -c 'sleep 1; exit 3'\nRestart=on-failure\nRestartSec=200ms\n";
    let target = "[Unit]\nWants=ticker.service notifier.service setup.service flaky.service\n";
    let sandbox = Sandbox::boot_own_binary(
        &[
            ("ticker.service", ticker),
            ("notifier.service", &notifier),
            ("setup.service", setup),
            ("flaky.service", flaky),
            ("multi-user.target", target),
        ],
        CONFIG,
    );
    for unit in ["ticker.service", "notifier.service", "setup.service"] {
        sandbox.wait_state(unit, "active", Duration::from_secs(20));
    }
    let pid1 = sandbox.pid1();
    let before: Vec<serde_json::Value> = ["ticker.service", "notifier.service", "setup.service"]
        .iter()
        .map(|u| sandbox.status(u))
        .collect();
    let ticker_pids = sandbox.cgroup_pids("ticker.service");

    // A package upgrade replaces the binary's file: the re-exec runs the new one.
    let replacement = sandbox.dir.join("relive.new");
    std::fs::copy(&sandbox.relive, &replacement).unwrap();
    std::fs::rename(&replacement, &sandbox.relive).unwrap();
    let new_inode = std::fs::metadata(&sandbox.relive).unwrap().ino();
    let old_inode = std::fs::metadata(format!("/proc/{pid1}/exe"))
        .unwrap()
        .ino();
    assert_ne!(old_inode, new_inode);
    let restarts_before = sandbox.status("flaky.service")["restarts"]
        .as_u64()
        .unwrap();

    sandbox.ctl_ok(&["daemon-reexec"]);

    assert_eq!(sandbox.pid1(), pid1, "PID 1 is the same process");
    assert_eq!(
        std::fs::metadata(format!("/proc/{pid1}/exe"))
            .unwrap()
            .ino(),
        new_inode,
        "runs the new binary"
    );
    assert!(
        !sandbox.log_lines("resumed").is_empty(),
        "{}",
        sandbox.log()
    );
    for old in &before {
        let name = old["name"].as_str().unwrap();
        let now = sandbox.status(name);
        assert_eq!(now["active_state"], old["active_state"], "{name}: {now}");
        assert_eq!(now["main_pid"], old["main_pid"], "{name}: {now}");
        assert_eq!(
            now["state_change_usec"], old["state_change_usec"],
            "{name}: {now}"
        );
    }
    // The ticker's shell (its oldest process) is still the same process.
    let shell = ticker_pids.iter().min().unwrap();
    assert!(sandbox.cgroup_pids("ticker.service").contains(shell));
    assert_eq!(sandbox.status("notifier.service")["status_text"], "serving");

    // Output is still captured through the pipes handed over.
    let ticks_now = sandbox.log_lines("ticker.service: tick").len();
    sandbox.wait_for(
        "new output after the re-exec",
        Duration::from_secs(5),
        || sandbox.log_lines("ticker.service: tick").len() > ticks_now + 2,
    );
    // Supervision goes on: the flaky service keeps being restarted.
    sandbox.wait_for(
        "a restart after the re-exec",
        Duration::from_secs(10),
        || {
            sandbox.status("flaky.service")["restarts"]
                .as_u64()
                .unwrap()
                > restarts_before + 1
        },
    );
    // And stopping works on processes started by the previous relive.
    sandbox.ctl_ok(&["stop", "ticker.service"]);
    assert_eq!(sandbox.active_state("ticker.service"), "inactive");
    assert!(sandbox.cgroup_pids("ticker.service").is_empty());

    // A second re-exec works as well.
    sandbox.ctl_ok(&["daemon-reexec"]);
    assert_eq!(sandbox.active_state("notifier.service"), "active");
    let binary = sandbox.relive.clone();
    let (status, log) = sandbox.poweroff();
    assert!(status.success(), "{log}");
    let _ = std::fs::remove_file(binary);
}
