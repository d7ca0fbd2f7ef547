//! Every Condition*= of systemd 252 is evaluated, not ignored: in the
//! sandbox relive is PID 1 of a PID namespace, which systemd calls a
//! container ("container-other").

use relive_tests::{require_sandbox, Sandbox};
use std::time::Duration;

#[test]
fn conditions_beyond_paths_decide_what_starts() {
    require_sandbox!();
    let unit =
        |condition: &str| format!("[Unit]\n{condition}\n[Service]\nExecStart=/bin/sleep 300\n");
    let cases = [
        (
            "in-container.service",
            "ConditionVirtualization=container",
            "active",
        ),
        (
            "not-in-container.service",
            "ConditionVirtualization=!container",
            "inactive",
        ),
        (
            "odd-cmdline.service",
            "ConditionKernelCommandLine=relive.no-such-flag",
            "inactive",
        ),
        ("as-root.service", "ConditionUser=root", "active"),
        ("big-machine.service", "ConditionMemory=>=1000T", "inactive"),
        ("some-cpu.service", "ConditionCPUs=>=1", "active"),
        ("this-os.service", "ConditionOSRelease=ID=debian", "active"),
        (
            "new-kernel.service",
            "ConditionKernelVersion=>=3.10",
            "active",
        ),
        ("on-s390x.service", "AssertArchitecture=s390x", "failed"),
    ];
    let texts: Vec<(String, String)> = cases
        .iter()
        .map(|(name, condition, _)| (name.to_string(), unit(condition)))
        .collect();
    let wants: Vec<&str> = cases.iter().map(|(n, _, _)| *n).collect();
    let target = format!("[Unit]\nWants={}\n", wants.join(" "));
    let mut units: Vec<(&str, &str)> = texts
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    units.push(("multi-user.target", &target));
    let sandbox = Sandbox::boot(&units, "");
    sandbox.wait_state("in-container.service", "active", Duration::from_secs(10));
    for (name, condition, want) in cases {
        if want == "active" {
            sandbox.wait_state(name, "active", Duration::from_secs(10));
        }
        assert_eq!(
            sandbox.active_state(name),
            want,
            "{name} ({condition})\n{}",
            sandbox.log()
        );
    }
    let skipped = sandbox.log_lines(
        "not-in-container.service: start condition not met: ConditionVirtualization=!container",
    );
    assert!(!skipped.is_empty(), "{}", sandbox.log());
    let (status, log) = sandbox.poweroff();
    assert!(status.success(), "{status}\n{log}");
}
