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

/// SIGPIPE is ignored in services, as systemd's IgnoreSIGPIPE=yes
/// default has it, unless the unit says no (cron, getty do).
#[test]
fn sigpipe_is_ignored_unless_the_unit_says_no() {
    require_sandbox!();
    let dir = std::env::temp_dir().join(format!("relive-sigpipe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let unit = |file: &str, extra: &str| {
        format!(
            "[Service]\nType=oneshot\n{extra}\nExecStart=/bin/grep SigIgn /proc/self/status\nStandardOutput=file:{}\n",
            dir.join(file).display()
        )
    };
    let sandbox = Sandbox::boot(
        &[
            ("default.service", &unit("default", "")),
            ("no.service", &unit("no", "IgnoreSIGPIPE=no")),
            (
                "multi-user.target",
                "[Unit]\nWants=default.service no.service\n",
            ),
        ],
        "",
    );
    let ignored = |file: &str| -> bool {
        let text = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        let mask = text
            .trim()
            .strip_prefix("SigIgn:")
            .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
            .unwrap_or_else(|| panic!("{file}: {text:?}"));
        mask & (1 << (libc::SIGPIPE - 1)) != 0
    };
    sandbox.wait_for("both to run", Duration::from_secs(10), || {
        ["default", "no"].iter().all(|f| dir.join(f).exists())
    });
    std::thread::sleep(Duration::from_millis(200));
    assert!(ignored("default"), "IgnoreSIGPIPE= defaults to yes");
    assert!(!ignored("no"), "IgnoreSIGPIPE=no");
    let (status, log) = sandbox.poweroff();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success(), "{status}\n{log}");
}

/// The capability sets of a process, from /proc/PID/status.
fn cap_sets(text: &str) -> std::collections::BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.starts_with("Cap"))
        .map(|(k, v)| (k.to_owned(), u64::from_str_radix(v.trim(), 16).unwrap()))
        .collect()
}

/// AmbientCapabilities= gives a User= service the capability it names
/// (and `!!` keeps User=, as on any kernel with ambient capabilities);
/// CapabilityBoundingSet= bounds a root service.
#[test]
fn ambient_capabilities_and_the_bounding_set_reach_the_service() {
    require_sandbox!();
    let dir = std::env::temp_dir().join(format!("relive-caps-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let unit = |file: &str, body: &str| {
        format!(
            "[Service]\nType=oneshot\n{body}\nStandardOutput=file:{}\n",
            dir.join(file).display()
        )
    };
    let bind = 1u64 << 10; // CAP_NET_BIND_SERVICE
    let sandbox = Sandbox::boot(
        &[
            (
                "ambient.service",
                &unit(
                    "ambient",
                    "User=nobody\nAmbientCapabilities=CAP_NET_BIND_SERVICE\nExecStart=!!/bin/grep -E ^(Uid|Cap) /proc/self/status",
                ),
            ),
            (
                "bounded.service",
                &unit(
                    "bounded",
                    "CapabilityBoundingSet=CAP_NET_BIND_SERVICE CAP_CHOWN\nCapabilityBoundingSet=~CAP_CHOWN\nExecStart=/bin/grep ^Cap /proc/self/status",
                ),
            ),
            ("multi-user.target", "[Unit]\nWants=ambient.service bounded.service\n"),
        ],
        "",
    );
    sandbox.wait_for("both to run", Duration::from_secs(10), || {
        ["ambient", "bounded"]
            .iter()
            .all(|f| std::fs::read_to_string(dir.join(f)).is_ok_and(|t| t.contains("CapAmb")))
    });
    let ambient_text = std::fs::read_to_string(dir.join("ambient")).unwrap();
    let ambient = cap_sets(&ambient_text);
    assert!(
        ambient_text.contains("Uid:\t65534"),
        "runs as nobody: {ambient_text}"
    );
    assert_eq!(
        (ambient["CapAmb"], ambient["CapEff"]),
        (bind, bind),
        "{ambient_text}"
    );
    let bounded = cap_sets(&std::fs::read_to_string(dir.join("bounded")).unwrap());
    assert_eq!(bounded["CapBnd"], bind, "{bounded:?}");
    let (status, log) = sandbox.poweroff();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success(), "{status}\n{log}");
}

/// SecureBits= reaches the service (prctl PR_GET_SECUREBITS, read by the
/// service itself): root's as asked, and a User= service's too (which
/// needs CAP_SETPCAP kept through the switch of user for the call), its
/// capabilities gone at the exec all the same. Repeated lines are ORed.
#[test]
fn secure_bits_reach_the_service_of_root_and_of_another_user() {
    require_sandbox!();
    let dir = std::env::temp_dir().join(format!("relive-secbits-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let unit = |file: &str, body: &str| {
        format!(
            "[Service]\nType=oneshot\n{body}\nStandardOutput=file:{}\n\
             ExecStart=/usr/bin/python3 -c \"import ctypes; \
             print('securebits=' + str(ctypes.CDLL(None).prctl(27, 0, 0, 0, 0))); \
             print(open('/proc/self/status').read())\"\n",
            dir.join(file).display()
        )
    };
    let sandbox = Sandbox::boot(
        &[
            (
                "root-bits.service",
                &unit("root", "SecureBits=keep-caps-locked noroot"),
            ),
            (
                "user-bits.service",
                &unit(
                    "user",
                    "User=nobody\nSecureBits=noroot noroot-locked\nSecureBits=no-setuid-fixup",
                ),
            ),
            (
                "multi-user.target",
                "[Unit]\nWants=root-bits.service user-bits.service\n",
            ),
        ],
        "",
    );
    sandbox.wait_for("both to run", Duration::from_secs(10), || {
        ["root", "user"]
            .iter()
            .all(|f| std::fs::read_to_string(dir.join(f)).is_ok_and(|t| t.contains("CapEff")))
    });
    let root = std::fs::read_to_string(dir.join("root")).unwrap();
    // keep-caps-locked (1 << 5) | noroot (1 << 0)
    assert!(root.starts_with("securebits=33\n"), "{root}");
    let user = std::fs::read_to_string(dir.join("user")).unwrap();
    // noroot | noroot-locked | no-setuid-fixup
    assert!(user.starts_with("securebits=7\n"), "{user}");
    assert!(user.contains("Uid:\t65534"), "{user}");
    let caps = cap_sets(&user);
    assert_eq!((caps["CapPrm"], caps["CapEff"]), (0, 0), "{user}");
    let (status, log) = sandbox.poweroff();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success(), "{status}\n{log}");
}
