//! relive as PID 1 of a namespace sandbox: boot, ordering, dependencies,
//! unit-file errors, the control API's access check, and shutdown.

use relive_tests::{require_sandbox, Sandbox};
use std::time::Duration;

const CONFIG: &str = "[manager]\ndefault_timeout_stop_sec = 5\n";

fn oneshot(dir: &str, name: &str, extra: &str) -> String {
    format!(
        "[Unit]\nDescription=step {name}\n{extra}\n[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/sh -c 'sleep 0.2; echo {name} >> {dir}/order'\n"
    )
}

#[test]
fn start_order_follows_after_and_requires() {
    require_sandbox!();
    let dir = std::env::temp_dir().join(format!("relive-order-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.display().to_string();
    let a = oneshot(&d, "a", "");
    // b is listed first everywhere, yet must wait for a.
    let b = oneshot(&d, "b", "Requires=a.service\nAfter=a.service");
    let c = oneshot(&d, "c", "After=b.service\nWants=b.service");
    let target = "[Unit]\nDescription=test target\nWants=c.service b.service a.service\n";
    let sandbox = Sandbox::boot_with_args(
        &[
            ("a.service", &a),
            ("b.service", &b),
            ("c.service", &c),
            ("test.target", target),
        ],
        CONFIG,
        &["--target", "test.target"],
    );
    sandbox.wait_state("test.target", "active", Duration::from_secs(20));
    sandbox.wait_state("c.service", "active", Duration::from_secs(20));
    let order = std::fs::read_to_string(dir.join("order")).unwrap();
    assert_eq!(order, "a\nb\nc\n", "start order; log:\n{}", sandbox.log());
    let (status, _) = sandbox.poweroff();
    assert!(status.success());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn failed_requirement_fails_its_dependents_and_the_rest_boots() {
    require_sandbox!();
    let broken = "[Service]\nType=oneshot\nExecStart=/bin/false\n";
    let needs_broken = "[Unit]\nRequires=broken.service\nAfter=broken.service\n[Service]\nExecStart=/bin/sleep 1000\n";
    let fine = "[Service]\nExecStart=/bin/sleep 1000\n";
    let target = "[Unit]\nWants=needs-broken.service fine.service\n";
    let sandbox = Sandbox::boot_with_args(
        &[
            ("broken.service", broken),
            ("needs-broken.service", needs_broken),
            ("fine.service", fine),
            ("test.target", target),
        ],
        CONFIG,
        &["--target", "test.target"],
    );
    sandbox.wait_state("fine.service", "active", Duration::from_secs(20));
    sandbox.wait_state("broken.service", "failed", Duration::from_secs(20));
    sandbox.wait_state("needs-broken.service", "failed", Duration::from_secs(20));
    assert_eq!(
        sandbox.status("needs-broken.service")["result"],
        "dependency"
    );
    assert_eq!(sandbox.status("broken.service")["result"], "exit-code");
    // The target was still reached: a failed unit never stops the boot.
    assert_eq!(sandbox.active_state("test.target"), "active");
    assert!(sandbox.cgroup_pids("needs-broken.service").is_empty());
    let _ = sandbox.poweroff();
}

#[test]
fn malformed_unit_is_an_error_with_file_and_line_while_others_start() {
    require_sandbox!();
    let bad = "[Unit]\nDescription=bad\n[Service]\nType=simple\nRestart=sometimes\nExecStart=/bin/sleep 1000\n";
    let good =
        "[Unit]\nDescription=good\n[Service]\nExecStart=/bin/sleep 1000\nIPAddressDeny=any\n";
    let target = "[Unit]\nWants=bad.service good.service\n";
    let sandbox = Sandbox::boot_with_args(
        &[
            ("bad.service", bad),
            ("good.service", good),
            ("test.target", target),
        ],
        CONFIG,
        &["--target", "test.target"],
    );
    sandbox.wait_state("good.service", "active", Duration::from_secs(20));
    sandbox.wait_state("test.target", "active", Duration::from_secs(20));
    let bad_path = sandbox.units.join("bad.service");
    let status = sandbox.status("bad.service");
    assert_eq!(status["load_state"], "error");
    let err = status["load_error"].as_str().unwrap();
    assert!(
        err.starts_with(&format!("{}:5:", bad_path.display())),
        "load error: {err}"
    );
    assert!(err.contains("Restart="), "load error: {err}");
    // The same error in relive's log, with file:line.
    assert!(
        !sandbox
            .log_lines(&format!("{}:5:", bad_path.display()))
            .is_empty(),
        "{}",
        sandbox.log()
    );
    // An unsupported directive: one warning with file:line, even across a reload.
    let good_path = sandbox.units.join("good.service");
    let warning = format!("{}:5:", good_path.display());
    sandbox.ctl_ok(&["daemon-reload"]);
    sandbox.ctl_ok(&["restart", "good.service"]);
    let warnings: Vec<String> = sandbox
        .log_lines(&warning)
        .into_iter()
        .filter(|l| l.contains("IPAddressDeny"))
        .collect();
    assert_eq!(
        warnings.len(),
        1,
        "warnings: {warnings:?}\n{}",
        sandbox.log()
    );
    let _ = sandbox.poweroff();
}

#[test]
fn non_root_callers_are_refused() {
    require_sandbox!();
    let sleeper = "[Service]\nExecStart=/bin/sleep 1000\n";
    let sandbox = Sandbox::boot(
        &[
            ("sleeper.service", sleeper),
            ("multi-user.target", "[Unit]\nWants=sleeper.service\n"),
        ],
        CONFIG,
    );
    sandbox.wait_state("sleeper.service", "active", Duration::from_secs(20));
    let as_nobody = |args: &[&str]| {
        std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(relive_tests::binary("relivectl"))
            .arg("--socket")
            .arg(&sandbox.socket)
            .args(args)
            .output()
            .unwrap()
    };
    // The socket is root-only: a non-root process cannot even connect.
    let mode = std::fs::metadata(&sandbox.socket)
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
        .unwrap();
    assert_eq!(mode, 0o600);
    let out = as_nobody(&["stop", "sleeper.service"]);
    assert!(!out.status.success());
    // Opened up by hand, the API itself still refuses the caller.
    std::fs::set_permissions(
        &sandbox.socket,
        std::os::unix::fs::PermissionsExt::from_mode(0o666),
    )
    .unwrap();
    for args in [
        &["stop", "sleeper.service"][..],
        &["start", "sleeper.service"][..],
        &["restart", "sleeper.service"][..],
        &["reload", "sleeper.service"][..],
        &["list-units"][..],
        &["status", "sleeper.service"][..],
        &["poweroff"][..],
        &["reboot"][..],
        &["halt"][..],
        &["daemon-reload"][..],
        &["daemon-reexec"][..],
        &["live-upgrade", "--prepare"][..],
        &["live-upgrade", "--discard"][..],
        &["live-upgrade", "--kernel", "/bin/sh", "--dry-run"][..],
        &["live-upgrade", "--kernel", "/bin/sh"][..],
        &["live-upgrade", "--kernel", "/bin/sh", "--detach"][..],
        &["upgrade-report"][..],
    ] {
        let out = as_nobody(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded as nobody");
        assert!(stderr.contains("root"), "{args:?}: {stderr}");
    }
    assert_eq!(sandbox.active_state("sleeper.service"), "active");
    let _ = sandbox.poweroff();
}

#[test]
fn poweroff_stops_units_in_reverse_order_and_pid1_exits() {
    require_sandbox!();
    let dir = std::env::temp_dir().join(format!("relive-stop-order-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.display();
    let svc = |name: &str, after: &str| {
        format!("[Unit]\nAfter={after}\n[Service]\nExecStart=/bin/sleep 1000\nExecStop=/bin/sh -c 'echo {name} >> {d}/stopped'\n")
    };
    let first = svc("first", "");
    let second = svc("second", "first.service");
    let third = svc("third", "second.service");
    let target = "[Unit]\nWants=first.service second.service third.service\n";
    let sandbox = Sandbox::boot(
        &[
            ("first.service", &first),
            ("second.service", &second),
            ("third.service", &third),
            ("multi-user.target", target),
        ],
        CONFIG,
    );
    sandbox.wait_state("third.service", "active", Duration::from_secs(20));
    let (status, log) = sandbox.poweroff();
    assert!(status.success(), "exit status {status}\n{log}");
    let stopped = std::fs::read_to_string(dir.join("stopped")).unwrap();
    assert_eq!(stopped, "third\nsecond\nfirst\n", "{log}");
    assert!(log.contains("poweroff: exiting"), "{log}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn sigterm_to_pid1_shuts_down_cleanly() {
    require_sandbox!();
    let sleeper = "[Service]\nExecStart=/bin/sleep 1000\n";
    let mut sandbox = Sandbox::boot(
        &[
            ("sleeper.service", sleeper),
            ("multi-user.target", "[Unit]\nWants=sleeper.service\n"),
        ],
        CONFIG,
    );
    sandbox.wait_state("sleeper.service", "active", Duration::from_secs(20));
    sandbox.signal_pid1(libc::SIGTERM);
    let status = sandbox.wait_exit(Duration::from_secs(30));
    assert!(status.success());
    assert!(
        sandbox.log().contains("stopping sleeper.service"),
        "{}",
        sandbox.log()
    );
}
