//! PID 1 hardening in the namespace sandbox: what a unit file asks for
//! must never change relive itself.

use relive_tests::{has_cap, require_sandbox, Sandbox, CAP_SYS_RESOURCE};
use std::time::Duration;

/// The soft and hard "Max open files" of a host PID.
fn nofile(pid: i32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("a Max open files line");
    let mut numbers = line
        .split_whitespace()
        .filter_map(|w| w.parse::<u64>().ok());
    (numbers.next().unwrap(), numbers.next().unwrap())
}

/// Sets a host PID's open-file limits.
fn set_nofile(pid: i32, soft: u64, hard: u64) {
    let limit = libc::rlimit64 {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: prlimit64 reads `limit` and writes nothing (old is null).
    let rc = unsafe { libc::prlimit64(pid, libc::RLIMIT_NOFILE, &limit, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
}

/// LimitNOFILE= above PID 1's own hard limit is the service's alone: PID 1
/// keeps its limits (it once took the unit's soft limit, 16 descriptors,
/// and could then not accept a connection).
#[test]
fn limit_nofile_above_pid1s_own_never_changes_pid1() {
    require_sandbox!();
    let unit = "[Service]\nExecStart=/bin/sleep 300\nLimitNOFILE=16:8192\n";
    let sandbox = Sandbox::boot(
        &[("many.service", unit), ("multi-user.target", "[Unit]\n")],
        "",
    );
    let pid1 = sandbox.pid1();
    set_nofile(pid1, 1024, 4096);
    sandbox.ctl_ok(&["start", "many.service"]);
    sandbox.wait_state("many.service", "active", Duration::from_secs(10));
    assert_eq!(nofile(pid1), (1024, 4096), "relive's own limits changed");
    let service = sandbox.cgroup_pids("many.service")[0] as i32;
    if has_cap(pid1, CAP_SYS_RESOURCE) {
        assert_eq!(nofile(service), (16, 8192), "the service's limits");
    } else {
        // Without CAP_SYS_RESOURCE no process may raise a hard limit: the
        // service gets relive's, and the log says so.
        assert_eq!(nofile(service), (16, 4096), "the service's limits");
        assert!(
            !sandbox
                .log_lines("LimitNOFILE=8192 is above the hard limit relive may grant (4096)")
                .is_empty(),
            "{}",
            sandbox.log()
        );
    }
    // relive still serves its API (it needs descriptors for that).
    sandbox.ctl_ok(&["list-units"]);
    let _ = sandbox.poweroff();
}

/// A directory any service user may write to, for PID files.
fn shared_dir(sandbox: &Sandbox) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = sandbox.dir.join("shared");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
    dir
}

/// A PIDFile= written by the service's own user that names a process
/// outside the unit (here PID 1, relive itself) is refused: adopted, the
/// unit's stop would have signalled PID 1. A FIFO at the path must not
/// hold the loop.
#[test]
fn an_untrusted_or_blocking_pid_file_is_refused() {
    require_sandbox!();
    let sandbox = Sandbox::boot(&[("multi-user.target", "[Unit]\n")], "");
    let dir = shared_dir(&sandbox);
    let evil = format!(
        "[Service]\nType=forking\nUser=nobody\nPIDFile={d}/evil.pid\nExecStart=/bin/sh -c 'echo 1 > {d}/evil.pid; sleep 600 &'\n",
        d = dir.display()
    );
    let fifo = format!(
        "[Service]\nType=forking\nPIDFile={d}/fifo.pid\nExecStart=/bin/sh -c 'mkfifo {d}/fifo.pid; sleep 600 &'\n",
        d = dir.display()
    );
    std::fs::write(sandbox.units.join("evil.service"), evil).unwrap();
    std::fs::write(sandbox.units.join("fifo.service"), fifo).unwrap();
    sandbox.ctl_ok(&["daemon-reload"]);
    let _ = sandbox.ctl(&["start", "evil.service"]);
    let status = sandbox.status("evil.service");
    assert_eq!(status["active_state"], "failed", "{status}");
    assert_ne!(status["main_pid"], 1, "{status}");
    assert!(
        !sandbox
            .log_lines("(owned by uid 65534) names PID 1")
            .is_empty()
            || !sandbox.log_lines("names PID 1: refused").is_empty(),
        "{}",
        sandbox.log()
    );
    let started = std::time::Instant::now();
    let _ = sandbox.ctl(&["start", "fifo.service"]);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "start took {:?}",
        started.elapsed()
    );
    assert_eq!(sandbox.active_state("fifo.service"), "failed");
    assert!(
        !sandbox.log_lines("not a regular file").is_empty(),
        "{}",
        sandbox.log()
    );
    // relive is still itself: it answers, and powers off on request only.
    sandbox.ctl_ok(&["list-units"]);
    let (status, log) = sandbox.poweroff();
    assert!(status.success(), "{status}\n{log}");
}

/// A notify socket that cannot be bound (a full or read-only /run) must
/// not stop the boot: services start, Type=notify ones as Type=simple.
#[test]
fn the_boot_goes_on_without_a_notify_socket() {
    require_sandbox!();
    let workload = relive_tests::workload("notify-workload");
    let notify = format!(
        "[Service]\nType=notify\nExecStart={} 200\n",
        workload.display()
    );
    let target = "[Unit]\nWants=notify.service plain.service\n";
    // Its parent is a file: the socket cannot be made there.
    let blocker = std::env::temp_dir().join(format!("relive-no-dir-{}", std::process::id()));
    std::fs::write(&blocker, "").unwrap();
    let socket = blocker.join("notify");
    let sandbox = Sandbox::boot_with_args(
        &[
            ("notify.service", &notify),
            ("plain.service", "[Service]\nExecStart=/bin/sleep 600\n"),
            ("multi-user.target", target),
        ],
        "",
        &["--notify-socket", socket.to_str().unwrap()],
    );
    sandbox.wait_state("plain.service", "active", Duration::from_secs(10));
    sandbox.wait_state("notify.service", "active", Duration::from_secs(10));
    assert!(
        !sandbox
            .log_lines("cannot bind the notify socket")
            .is_empty(),
        "{}",
        sandbox.log()
    );
    let (status, log) = sandbox.poweroff();
    let _ = std::fs::remove_file(&blocker);
    assert!(status.success(), "{status}\n{log}");
}
