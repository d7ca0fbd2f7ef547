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

/// Boots a sandbox whose multi-user.target wants two oneshot services
/// with these [Service] lines (ExecStart= and all), each writing its
/// output to a file of its own; waits until both printed a CapEff line
/// (every probe below prints /proc/self/status's); powers off. Returns
/// what each printed.
fn outputs_of_two_oneshots(tag: &str, first: &str, second: &str) -> (String, String) {
    let dir = std::env::temp_dir().join(format!("relive-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let unit = |file: &str, body: &str| {
        format!(
            "[Service]\nType=oneshot\n{body}\nStandardOutput=append:{}\n",
            dir.join(file).display()
        )
    };
    let sandbox = Sandbox::boot(
        &[
            ("first.service", &unit("first", first)),
            ("second.service", &unit("second", second)),
            (
                "multi-user.target",
                "[Unit]\nWants=first.service second.service\n",
            ),
        ],
        "",
    );
    let said = |file: &str| std::fs::read_to_string(dir.join(file)).unwrap_or_default();
    sandbox.wait_for("both to run", Duration::from_secs(10), || {
        said("first").contains("CapEff") && said("second").contains("CapEff")
    });
    let outputs = (said("first"), said("second"));
    let (status, log) = sandbox.poweroff();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success(), "{status}\n{log}");
    outputs
}

/// AmbientCapabilities= gives a User= service the capability it names
/// (and `!!` keeps User=, as on any kernel with ambient capabilities);
/// CapabilityBoundingSet= bounds a root service.
#[test]
fn ambient_capabilities_and_the_bounding_set_reach_the_service() {
    require_sandbox!();
    let bind = 1u64 << 10; // CAP_NET_BIND_SERVICE
    let (ambient_text, bounded_text) = outputs_of_two_oneshots(
        "caps",
        "User=nobody\nAmbientCapabilities=CAP_NET_BIND_SERVICE\nExecStart=!!/bin/grep -E ^(Uid|Cap) /proc/self/status",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE CAP_CHOWN\nCapabilityBoundingSet=~CAP_CHOWN\nExecStart=/bin/grep ^Cap /proc/self/status",
    );
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
    let bounded = cap_sets(&bounded_text);
    assert_eq!(bounded["CapBnd"], bind, "{bounded:?}");
}

/// SecureBits= reaches the service (prctl PR_GET_SECUREBITS, read by the
/// service itself): root's as asked, and a User= service's too (which
/// needs CAP_SETPCAP kept through the switch of user for the call), its
/// capabilities gone at the exec all the same. Repeated lines are ORed.
#[test]
fn secure_bits_reach_the_service_of_root_and_of_another_user() {
    require_sandbox!();
    let probe = "ExecStart=/usr/bin/python3 -c \"import ctypes; \
        print('securebits=' + str(ctypes.CDLL(None).prctl(27, 0, 0, 0, 0))); \
        print(open('/proc/self/status').read())\"";
    let (root, user) = outputs_of_two_oneshots(
        "secbits",
        &format!("SecureBits=keep-caps-locked noroot\n{probe}"),
        &format!(
            "User=nobody\nSecureBits=noroot noroot-locked\nSecureBits=no-setuid-fixup\n{probe}"
        ),
    );
    // keep-caps-locked (1 << 5) | noroot (1 << 0)
    assert!(root.starts_with("securebits=33\n"), "{root}");
    // noroot | noroot-locked | no-setuid-fixup
    assert!(user.starts_with("securebits=7\n"), "{user}");
    assert!(user.contains("Uid:\t65534"), "{user}");
    let caps = cap_sets(&user);
    assert_eq!((caps["CapPrm"], caps["CapEff"]), (0, 0), "{user}");
}

/// PrivateIPC=: the service's own IPC namespace gives its first System V
/// segment an id no shared mapping's inode number reaches (CRIU takes one
/// for the other), and the next ones as usual; the machine's namespace is
/// untouched.
#[test]
fn a_private_ipc_namespace_numbers_its_first_segment_out_of_reach() {
    require_sandbox!();
    let make_two = "ExecStart=/usr/bin/python3 -c \"import ctypes; libc = ctypes.CDLL(None); \
        print('ids', libc.shmget(0, 4096, 0o1600), libc.shmget(0, 4096, 0o1600)); \
        print(open('/proc/self/status').read())\"";
    let (own, shared) = outputs_of_two_oneshots(
        "ipcns",
        &format!("PrivateIPC=yes\n{make_two}"),
        "ExecStart=/bin/sh -c 'cat /proc/sys/kernel/shm_next_id; grep CapEff /proc/self/status'",
    );
    let first_line = |text: &str| text.lines().next().unwrap_or_default().to_owned();
    // relive_sys::namespace::FIRST_SHM_ID, 1 << 30.
    assert_eq!(first_line(&own), "ids 1073741824 1", "{own}");
    assert_eq!(first_line(&shared), "-1", "{shared}");
}

/// PrivateUsers=: the service runs in a user namespace of its own that
/// maps root and its own user and group to themselves and nothing else.
#[test]
fn private_users_map_only_root_and_the_service_s_own_ids() {
    require_sandbox!();
    let probe = "PrivateUsers=yes\nPrivateTmp=yes\n\
        ExecStart=/bin/sh -c 'cat /proc/self/uid_map /proc/self/gid_map; \
        readlink /proc/self/ns/user; grep ^CapEff /proc/self/status'";
    let (user, root) = outputs_of_two_oneshots(
        "userns",
        &format!("User=nobody\nGroup=nogroup\n{probe}"),
        &format!(
            "PrivateNetwork=yes\nProtectSystem=strict\nProtectHostname=yes\n{probe}\n\
             ExecStartPre=/bin/sh -c 'touch /usr/relive-userns-probe 2>/dev/null || echo usr-read-only; \
             grep -c : /proc/net/dev'"
        ),
    );
    let words = |text: &str| -> Vec<Vec<String>> {
        text.lines()
            .map(|l| l.split_whitespace().map(str::to_owned).collect())
            .collect()
    };
    let user = words(&user);
    let nogroup = "65534";
    assert_eq!(
        user[..4],
        [
            vec!["0", "0", "1"],
            vec!["65534", "65534", "1"],
            vec!["0", "0", "1"],
            vec![nogroup, nogroup, "1"],
        ],
        "{user:?}"
    );
    // Its own user namespace, not relive's (the sandbox shares this
    // test's).
    let relives = std::fs::read_link("/proc/self/ns/user").unwrap();
    let relives = vec![relives.to_string_lossy().into_owned()];
    assert_ne!(user[4], relives, "{user:?}");
    let root = words(&root);
    // Its other namespaces, made again with the user namespace, still do
    // what they did (ExecStartPre=, first): /usr read-only, only lo in
    // the network namespace.
    assert_eq!(root[..2], [vec!["usr-read-only"], vec!["1"]], "{root:?}");
    assert_eq!(
        root[2..4],
        [vec!["0", "0", "1"], vec!["0", "0", "1"]],
        "{root:?}"
    );
    assert_ne!(root[4], relives, "{root:?}");
    assert!(!std::path::Path::new("/usr/relive-userns-probe").exists());
}
