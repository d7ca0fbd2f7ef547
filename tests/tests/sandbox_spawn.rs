//! Starting processes never makes PID 1 wait: a child that cannot exec
//! yet (its program on a hung mount, its cgroup frozen) holds only its
//! own unit, and a failed exec reads as systemd's would.

use relive_tests::{require_sandbox, Sandbox};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A child cloned into a frozen cgroup does not run until it is thawed:
/// the same as one whose exec hangs on a dead NFS server, without one.
#[test]
fn a_child_stuck_before_its_exec_never_holds_the_loop() {
    require_sandbox!();
    let sandbox = Sandbox::boot(
        &[
            (
                "stuck.service",
                "[Service]\nType=exec\nExecStart=/bin/sleep 300\n",
            ),
            ("multi-user.target", "[Unit]\n"),
        ],
        "",
    );
    let cgroup = sandbox.unit_cgroup("stuck.service");
    std::fs::create_dir_all(&cgroup).unwrap();
    std::fs::write(cgroup.join("cgroup.freeze"), "1").unwrap();

    // `start` waits for the job, which waits for the exec.
    let mut start = Command::new(relive_tests::binary("relivectl"))
        .arg("--socket")
        .arg(&sandbox.socket)
        .args(["start", "stuck.service"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    sandbox.wait_for(
        "the child in the frozen cgroup",
        Duration::from_secs(10),
        || !sandbox.cgroup_pids("stuck.service").is_empty(),
    );
    for _ in 0..5 {
        let asked = Instant::now();
        sandbox.ctl_ok(&["list-units"]);
        assert!(
            asked.elapsed() < Duration::from_secs(1),
            "list-units took {:?} while a child could not exec",
            asked.elapsed()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let status = sandbox.status("stuck.service");
    assert_eq!(
        (
            status["active_state"].as_str(),
            status["sub_state"].as_str()
        ),
        (Some("activating"), Some("start")),
        "Type=exec is started once the program runs: {status}"
    );
    assert!(
        start.try_wait().unwrap().is_none(),
        "the start job ended early"
    );

    std::fs::write(cgroup.join("cgroup.freeze"), "0").unwrap();
    let done = start.wait().unwrap();
    assert!(
        done.success(),
        "start failed after the thaw\n{}",
        sandbox.log()
    );
    assert_eq!(sandbox.active_state("stuck.service"), "active");
    let (status, log) = sandbox.poweroff();
    assert!(status.success(), "{status}\n{log}");
}

/// A program that cannot run: Type=exec fails its start job with the
/// reason; Type=simple is started at once (as systemd's) and then fails
/// with 203/EXEC.
#[test]
fn a_failed_exec_fails_the_unit_with_its_reason() {
    require_sandbox!();
    let sandbox = Sandbox::boot(
        &[
            (
                "exec.service",
                "[Service]\nType=exec\nExecStart=/nonexistent/program\n",
            ),
            (
                "simple.service",
                "[Service]\nExecStart=/nonexistent/program\n",
            ),
            ("multi-user.target", "[Unit]\n"),
        ],
        "",
    );
    let out = sandbox.ctl(&["start", "exec.service"]);
    assert!(
        !out.status.success(),
        "starting a missing program succeeded"
    );
    assert_eq!(sandbox.active_state("exec.service"), "failed");

    sandbox.ctl_ok(&["start", "simple.service"]);
    sandbox.wait_state("simple.service", "failed", Duration::from_secs(10));

    for unit in ["exec.service", "simple.service"] {
        let reason = sandbox.log_lines(&format!("{unit}: PID"));
        assert!(
            reason
                .iter()
                .any(|l| l.contains("failed executing the program: No such file or directory")),
            "{unit}: {reason:?}\n{}",
            sandbox.log()
        );
        assert!(
            !sandbox
                .log_lines(&format!("{unit}: main process exited, status=203/EXEC"))
                .is_empty(),
            "{}",
            sandbox.log()
        );
    }
    let (status, log) = sandbox.poweroff();
    assert!(status.success(), "{status}\n{log}");
}
