//! Supervision in the namespace sandbox: restart policy and rate limit,
//! Type=notify and Type=forking, zombies, stop escalation, output capture.

use relive_tests::{require_sandbox, Sandbox};
use std::time::{Duration, Instant};

const CONFIG: &str = "[manager]\ndefault_timeout_stop_sec = 5\n";

fn boot_one(name: &str, unit: &str) -> Sandbox {
    let target = format!("[Unit]\nWants={name}\n");
    Sandbox::boot(&[(name, unit), ("multi-user.target", &target)], CONFIG)
}

#[test]
fn restart_on_failure_restarts_and_the_rate_limit_holds() {
    require_sandbox!();
    let crasher = "[Unit]\nStartLimitIntervalSec=30\nStartLimitBurst=3\n[Service]\nExecStart=/bin/sh -c 'echo crashing; sleep 0.2; exit 7'\nRestart=on-failure\nRestartSec=100ms\n";
    let sandbox = boot_one("crasher.service", crasher);
    sandbox.wait_state("crasher.service", "failed", Duration::from_secs(30));
    let status = sandbox.status("crasher.service");
    assert_eq!(status["result"], "start-limit-hit", "{status}");
    // Ran 3 times (the burst); the third automatic restart is the one the
    // limit refused. Like systemd's NRestarts, refused restarts count.
    assert_eq!(status["restarts"], 3, "{status}");
    assert_eq!(
        sandbox.log_lines("crasher.service: crashing").len(),
        3,
        "{}",
        sandbox.log()
    );
    // It stays failed: no more restarts once the limit is hit.
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(sandbox.log_lines("crasher.service: crashing").len(), 3);
    let _ = sandbox.poweroff();
}

#[test]
fn restart_prevent_exit_status_is_honoured() {
    require_sandbox!();
    let unit = "[Service]\nExecStart=/bin/sh -c 'sleep 0.2; exit 255'\nRestart=on-failure\nRestartSec=100ms\nRestartPreventExitStatus=255\n";
    let sandbox = boot_one("prevented.service", unit);
    sandbox.wait_state("prevented.service", "failed", Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(500));
    let status = sandbox.status("prevented.service");
    assert_eq!(status["restarts"], 0);
    assert_eq!(status["result"], "exit-code");
    let _ = sandbox.poweroff();
}

#[test]
fn notify_service_is_active_only_after_ready() {
    require_sandbox!();
    let workload = relive_tests::workload("notify-workload");
    let unit = format!(
        "[Unit]\nDescription=notify test\n[Service]\nType=notify\nExecStart={} 1500\n",
        workload.display()
    );
    let sandbox = boot_one("notify.service", &unit);
    sandbox.wait_for("notify.service to start", Duration::from_secs(10), || {
        sandbox.status("notify.service")["main_pid"] != 0
    });
    let started = Instant::now();
    let early = sandbox.status("notify.service");
    assert_eq!(early["active_state"], "activating", "{early}");
    sandbox.wait_state("notify.service", "active", Duration::from_secs(20));
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "active after {:?}",
        started.elapsed()
    );
    let status = sandbox.status("notify.service");
    assert_eq!(status["status_text"], "serving");
    assert!(
        status["output"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().contains("notify-workload: ready")),
        "{status}"
    );
    let _ = sandbox.poweroff();
}

#[test]
fn notify_service_exiting_before_ready_fails() {
    require_sandbox!();
    let workload = relive_tests::workload("notify-workload");
    let unit = format!(
        "[Service]\nType=notify\nExecStart={} 100 exit-before-ready\n",
        workload.display()
    );
    let sandbox = boot_one("early-exit.service", &unit);
    sandbox.wait_state("early-exit.service", "failed", Duration::from_secs(20));
    assert_eq!(sandbox.status("early-exit.service")["result"], "exit-code");
    let _ = sandbox.poweroff();
}

#[test]
fn forking_service_follows_its_pid_file() {
    require_sandbox!();
    // The daemon forks twice; its grandchild writes the PID file, the
    // parent exits. The PID in the file becomes the main PID.
    let dir = std::env::temp_dir().join(format!("relive-forker-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let daemon = dir.join("daemon.sh");
    std::fs::write(
        &daemon,
        "#!/bin/sh\n( sh -c 'echo $$ > /run/forker.pid; exec sleep 1000' & )\nsleep 0.3\n",
    )
    .unwrap();
    let unit = format!(
        "[Service]\nType=forking\nPIDFile=/run/forker.pid\nExecStart=/bin/sh {}\n",
        daemon.display()
    );
    let unit = unit.as_str();
    let sandbox = boot_one("forker.service", unit);
    sandbox.wait_state("forker.service", "active", Duration::from_secs(20));
    let status = sandbox.status("forker.service");
    let main = status["main_pid"].as_u64().unwrap();
    assert!(main > 0);
    let pids: Vec<u64> = status["pids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap())
        .collect();
    assert_eq!(pids, vec![main], "{status}");
    // Killing the main process is noticed: the unit stops.
    sandbox.ctl_ok(&["stop", "forker.service"]);
    assert_eq!(sandbox.active_state("forker.service"), "inactive");
    let _ = sandbox.poweroff();
}

#[test]
fn double_forking_processes_leave_no_zombie() {
    require_sandbox!();
    // Each round leaves an orphan that exits later: PID 1 must reap it.
    let unit = "[Service]\nExecStart=/bin/sh -c 'for i in 1 2 3 4 5; do (sh -c \"sleep 0.2\" &); done; exec sleep 1000'\n";
    let sandbox = boot_one("orphans.service", unit);
    sandbox.wait_state("orphans.service", "active", Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(1500));
    let zombies = sandbox.ctl_ok(&["status", "orphans.service"]);
    let pids = sandbox.cgroup_pids("orphans.service");
    assert_eq!(pids.len(), 1, "leftover processes: {pids:?}\n{zombies}");
    // No zombie anywhere in the sandbox's cgroup tree.
    let states: Vec<String> = pids
        .iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
        .filter(|s| {
            s.split(") ")
                .nth(1)
                .is_some_and(|rest| rest.starts_with('Z'))
        })
        .collect();
    assert!(states.is_empty(), "zombies: {states:?}");
    let _ = sandbox.poweroff();
}

#[test]
fn stop_escalates_to_sigkill_after_timeout() {
    require_sandbox!();
    let unit = "[Service]\nExecStart=/bin/sh -c 'trap \"echo got TERM\" TERM; while true; do sleep 0.1; done'\nTimeoutStopSec=1\n";
    let sandbox = boot_one("stubborn.service", unit);
    sandbox.wait_state("stubborn.service", "active", Duration::from_secs(20));
    let started = Instant::now();
    let out = sandbox.ctl(&["stop", "stubborn.service"]);
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        took >= Duration::from_millis(900),
        "stopped after {took:?}: SIGTERM alone cannot stop it"
    );
    assert!(took < Duration::from_secs(8), "stopped after {took:?}");
    let status = sandbox.status("stubborn.service");
    assert_eq!(status["result"], "timeout", "{status}");
    assert!(sandbox.cgroup_pids("stubborn.service").is_empty());
    assert!(
        !sandbox
            .log_lines("stubborn.service: stop timed out, killing")
            .is_empty(),
        "{}",
        sandbox.log()
    );
    let _ = sandbox.poweroff();
}

#[test]
fn environment_runtime_directory_reload_and_output() {
    require_sandbox!();
    let unit = "[Service]\nEnvironment=GREETING=hello \"WORDS=a b\"\nEnvironmentFile=-/nonexistent/env\nRuntimeDirectory=envtest\nExecStart=/bin/sh -c 'echo greeting=$GREETING dir=$RUNTIME_DIRECTORY; echo unit=%n; for w in $0 \"$@\"; do echo word=$w; done; trap \"echo reloaded\" HUP; while true; do sleep 0.1; done' $WORDS\nExecReload=/bin/kill -HUP $MAINPID\n";
    let sandbox = boot_one("env.service", unit);
    sandbox.wait_state("env.service", "active", Duration::from_secs(20));
    sandbox.wait_for("output", Duration::from_secs(5), || {
        !sandbox.log_lines("env.service: word=b").is_empty()
    });
    assert!(
        !sandbox
            .log_lines("env.service: greeting=hello dir=/run/envtest")
            .is_empty(),
        "{}",
        sandbox.log()
    );
    assert!(
        !sandbox
            .log_lines("env.service: unit=env.service")
            .is_empty(),
        "{}",
        sandbox.log()
    );
    assert!(
        !sandbox.log_lines("env.service: word=a").is_empty(),
        "{}",
        sandbox.log()
    );
    sandbox.ctl_ok(&["reload", "env.service"]);
    sandbox.wait_for("reload", Duration::from_secs(5), || {
        !sandbox.log_lines("env.service: reloaded").is_empty()
    });
    let status = sandbox.status("env.service");
    assert!(
        status["output"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l == "reloaded"),
        "{status}"
    );
    sandbox.ctl_ok(&["stop", "env.service"]);
    let _ = sandbox.poweroff();
}

#[test]
fn unknown_unit_gives_a_clear_error() {
    require_sandbox!();
    let sandbox = boot_one("a.service", "[Service]\nExecStart=/bin/sleep 1000\n");
    let out = sandbox.ctl(&["start", "no-such.service"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no-such.service"), "{err}");
    let out = sandbox.ctl(&["status", "no-such.service"]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = sandbox.poweroff();
}

/// An init script wrapped as Type=forking (what systemd-sysv-generator
/// makes, GuessMainPID=no, RemainAfterExit=yes) that only configures and
/// leaves no process: the start succeeds, as under systemd.
#[test]
fn a_forking_service_that_leaves_no_process_is_not_a_failure() {
    require_sandbox!();
    let sandbox = Sandbox::boot(
        &[
            (
                "script.service",
                "[Service]\nType=forking\nGuessMainPID=no\nRemainAfterExit=yes\nExecStart=/bin/true\n",
            ),
            ("brief.service", "[Service]\nType=forking\nExecStart=/bin/true\n"),
            ("multi-user.target", "[Unit]\n"),
        ],
        "",
    );
    sandbox.ctl_ok(&["start", "script.service", "brief.service"]);
    let status = sandbox.status("script.service");
    assert_eq!(
        (
            status["active_state"].as_str(),
            status["sub_state"].as_str()
        ),
        (Some("active"), Some("exited")),
        "{status}"
    );
    let brief = sandbox.status("brief.service");
    assert_eq!(
        (brief["active_state"].as_str(), brief["result"].as_str()),
        (Some("inactive"), Some("success")),
        "{brief}"
    );
    let (status, log) = sandbox.poweroff();
    assert!(status.success(), "{status}\n{log}");
}

/// WatchdogSec=: a service that stops pinging is killed with SIGABRT
/// and, with Restart=on-watchdog, started again; one that pings lives.
#[test]
fn a_silent_service_is_killed_by_its_watchdog_and_restarted() {
    require_sandbox!();
    let script = std::env::temp_dir().join(format!("relive-pinger-{}.py", std::process::id()));
    std::fs::write(
        &script,
        "import os, socket, time\n\
         s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n\
         while True:\n    s.sendto(b'WATCHDOG=1', os.environ['NOTIFY_SOCKET'])\n    time.sleep(0.2)\n",
    )
    .unwrap();
    let pinger = format!(
        "[Service]\nWatchdogSec=1\nNotifyAccess=all\nExecStart=/usr/bin/python3 {}\n",
        script.display()
    );
    let sandbox = Sandbox::boot(
        &[
            (
                "silent.service",
                "[Service]\nWatchdogSec=1\nRestart=on-watchdog\nRestartSec=0\nExecStart=/bin/sleep 300\n",
            ),
            ("pinger.service", &pinger),
            (
                "multi-user.target",
                "[Unit]\nWants=silent.service pinger.service\n",
            ),
        ],
        CONFIG,
    );
    sandbox.wait_for("a watchdog restart", Duration::from_secs(15), || {
        sandbox.status("silent.service")["restarts"].as_u64() >= Some(1)
    });
    assert!(
        !sandbox
            .log_lines("silent.service: watchdog timeout")
            .is_empty(),
        "{}",
        sandbox.log()
    );
    std::thread::sleep(Duration::from_secs(2));
    let pinger = sandbox.status("pinger.service");
    assert_eq!(
        (pinger["active_state"].as_str(), pinger["restarts"].as_u64()),
        (Some("active"), Some(0)),
        "{pinger}\n{}",
        sandbox.log()
    );
    let _ = std::fs::remove_file(&script);
    let (status, log) = sandbox.poweroff();
    assert!(status.success(), "{status}\n{log}");
}

/// FileDescriptorStoreMax=: a service hands relive a descriptor with
/// FDSTORE=1 and, after it failed and was restarted, gets it back (after
/// its sockets, none here) with its name in LISTEN_FDNAMES.
#[test]
fn the_fd_store_gives_a_restarted_service_its_descriptors_back() {
    require_sandbox!();
    let script = std::env::temp_dir().join(format!("relive-fdstore-{}.py", std::process::id()));
    std::fs::write(
        &script,
        "import os, socket, sys, time\n\
         names = os.environ.get('LISTEN_FDNAMES', '')\n\
         if names:\n\
         \x20   print('got', names, os.environ['LISTEN_FDS'], os.read(3, 100).decode(), flush=True)\n\
         \x20   time.sleep(300)\n\
         r, w = os.pipe()\n\
         os.write(w, b'kept-data')\n\
         s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n\
         s.connect(os.environ['NOTIFY_SOCKET'])\n\
         socket.send_fds(s, [b'FDSTORE=1\\nFDNAME=pipe'], [r])\n\
         sys.exit(1)\n",
    )
    .unwrap();
    let unit = format!(
        "[Service]\nFileDescriptorStoreMax=4\nNotifyAccess=main\nRestart=on-failure\nRestartSec=0\n\
         ExecStart=/usr/bin/python3 {}\n",
        script.display()
    );
    let sandbox = boot_one("keeper.service", &unit);
    sandbox.wait_for("the second life", Duration::from_secs(15), || {
        sandbox.status("keeper.service")["output"]
            .as_array()
            .is_some_and(|o| {
                o.iter()
                    .any(|l| l.as_str().is_some_and(|l| l.starts_with("got")))
            })
    });
    let status = sandbox.status("keeper.service");
    let line = status["output"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l.as_str())
        .find(|l| l.starts_with("got"))
        .unwrap()
        .to_owned();
    assert!(line.ends_with("got pipe 1 kept-data"), "{line}");
    assert_eq!(status["restarts"].as_u64(), Some(1), "{status}");
    let _ = std::fs::remove_file(&script);
    let (status, log) = sandbox.poweroff();
    assert!(status.success(), "{status}\n{log}");
}

/// FileDescriptorStorePreserve=yes (logind's since systemd 254: it keeps
/// its sessions' leaders there): the store outlives a stop, and the next
/// start gets the descriptor back; with the default, a stop for good
/// empties it.
#[test]
fn a_preserved_fd_store_outlives_a_stop() {
    require_sandbox!();
    let script = std::env::temp_dir().join(format!("relive-fdkeep-{}.py", std::process::id()));
    std::fs::write(
        &script,
        "import os, socket, time\n\
         print('got', os.environ.get('LISTEN_FDNAMES', '-'), flush=True)\n\
         r, w = os.pipe()\n\
         os.write(w, b'kept')\n\
         s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n\
         s.connect(os.environ['NOTIFY_SOCKET'])\n\
         socket.send_fds(s, [b'FDSTORE=1\\nFDNAME=pipe'], [r])\n\
         time.sleep(300)\n",
    )
    .unwrap();
    let unit = |preserve: &str| {
        format!(
            "[Service]\nFileDescriptorStoreMax=4\n{preserve}NotifyAccess=main\n\
             ExecStart=/usr/bin/python3 {}\n",
            script.display()
        )
    };
    let kept = unit("FileDescriptorStorePreserve=yes\n");
    let dropped = unit("");
    let target = "[Unit]\nWants=kept.service dropped.service\n";
    let sandbox = Sandbox::boot(
        &[
            ("kept.service", &kept),
            ("dropped.service", &dropped),
            ("multi-user.target", target),
        ],
        CONFIG,
    );
    let got = |name: &str| -> Vec<String> {
        sandbox.status(name)["output"]
            .as_array()
            .map(|o| {
                o.iter()
                    .filter_map(|l| l.as_str())
                    .filter(|l| l.starts_with("got"))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    for name in ["kept.service", "dropped.service"] {
        sandbox.wait_for("the first start", Duration::from_secs(15), || {
            got(name).len() == 1
        });
        // The descriptor is stored before the stop.
        std::thread::sleep(Duration::from_millis(500));
        sandbox.ctl_ok(&["stop", name]);
        sandbox.ctl_ok(&["start", name]);
        sandbox.wait_for("the second start", Duration::from_secs(15), || {
            got(name).len() == 2
        });
    }
    assert_eq!(got("kept.service"), ["got -", "got pipe"]);
    assert_eq!(got("dropped.service"), ["got -", "got -"]);
    let _ = std::fs::remove_file(&script);
    let (status, log) = sandbox.poweroff();
    assert!(status.success(), "{status}\n{log}");
}
