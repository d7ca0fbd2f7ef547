//! Debian's own ssh.service and redis-server.service, unchanged from their
//! packages, run under relive in the namespace sandbox (with its own
//! network namespace, so they listen on nothing of the host's).

use relive_tests::{require_sandbox, Sandbox};
use std::path::Path;
use std::time::Duration;

const CONFIG: &str = "[manager]\ndefault_timeout_stop_sec = 10\n";

/// Brings the sandbox's loopback up before network.target, as a network
/// setup unit would on a machine.
const LOOPBACK: &str = "[Unit]\nDescription=loopback up\nBefore=network.target\nWants=network.target\n[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/sbin/ip link set lo up\n";
const TARGET: &str =
    "[Unit]\nDescription=test\nWants=loopback.service ssh.service redis-server.service\n";

fn installed() -> Option<String> {
    let needed = [
        "/lib/systemd/system/ssh.service",
        "/lib/systemd/system/redis-server.service",
        "/usr/sbin/sshd",
        "/usr/bin/redis-server",
        "/usr/bin/redis-cli",
        "/usr/bin/ssh-keyscan",
        "/sbin/ip",
    ];
    needed.iter().find(|p| !Path::new(p).exists()).map(|p| format!("{p} is missing (scripts/test installs openssh-server, redis-server, redis-tools, iproute2)"))
}

#[test]
fn debian_ssh_and_redis_run_unchanged() {
    require_sandbox!();
    if let Some(missing) = installed() {
        // scripts/test installs these: in CI this never skips.
        panic!("{missing}");
    }
    let sandbox = Sandbox::boot_full(
        &[("loopback.service", LOOPBACK), ("test.target", TARGET)],
        CONFIG,
        &[
            "--units-dir",
            "/etc/systemd/system",
            "--units-dir",
            "/lib/systemd/system",
            "--target",
            "test.target",
        ],
        true,
    );
    sandbox.wait_state("redis-server.service", "active", Duration::from_secs(30));
    sandbox.wait_state("ssh.service", "active", Duration::from_secs(30));
    let ssh = sandbox.status("ssh.service");
    assert_eq!(ssh["fragment"], "/lib/systemd/system/ssh.service", "{ssh}");
    let redis = sandbox.status("redis-server.service");
    assert_eq!(
        redis["fragment"], "/lib/systemd/system/redis-server.service",
        "{redis}"
    );
    // Every sandboxing directive of Debian's unit is applied, its
    // PrivateUsers= too: nothing is reported as not applied, and redis
    // runs in a user namespace of its own.
    assert!(
        !redis["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("is not applied")),
        "{redis}"
    );
    // (A host PID: the status's are the sandbox's.)
    let redis_pid = sandbox.cgroup_pids("redis-server.service")[0];
    assert_ne!(
        std::fs::read_link(format!("/proc/{redis_pid}/ns/user")).unwrap(),
        std::fs::read_link("/proc/self/ns/user").unwrap(),
        "{redis}"
    );

    // redis answers, as the redis user, with what was stored.
    let cli = |args: &[&str]| {
        let out = sandbox.in_network("redis-cli", &[&["-h", "127.0.0.1"][..], args].concat());
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert_eq!(cli(&["ping"]), "PONG", "{}", sandbox.log());
    assert_eq!(cli(&["set", "relive", "kept"]), "OK");
    assert_eq!(cli(&["get", "relive"]), "kept");
    let redis_pid = redis["main_pid"].as_u64().unwrap();
    assert!(redis_pid > 0);
    // ... with the rest of its sandbox: seccomp filters, no_new_privs and
    // a mount namespace of its own (read through the host's PID).
    let host_pid = sandbox.cgroup_pids("redis-server.service")[0] as u64;
    let status = std::fs::read_to_string(format!("/proc/{host_pid}/status")).unwrap();
    assert!(status.contains("Seccomp:\t2"), "{status}");
    assert!(status.contains("NoNewPrivs:\t1"), "{status}");
    let mnt = |pid: u64| std::fs::read_link(format!("/proc/{pid}/ns/mnt")).unwrap();
    assert_ne!(mnt(host_pid), mnt(sandbox.pid1() as u64));

    // sshd speaks SSH on port 22 of the sandbox.
    let scan = sandbox.in_network("ssh-keyscan", &["-T", "5", "127.0.0.1"]);
    let keys = String::from_utf8_lossy(&scan.stdout);
    assert!(
        keys.contains("ssh-ed25519"),
        "ssh-keyscan: {keys}\n{}",
        String::from_utf8_lossy(&scan.stderr)
    );

    // ExecReload= (sshd -t, then kill -HUP $MAINPID) keeps the same daemon.
    let main = ssh["main_pid"].as_u64().unwrap();
    sandbox.ctl_ok(&["reload", "ssh.service"]);
    let after = sandbox.status("ssh.service");
    assert_eq!(after["active_state"], "active", "{after}");
    assert_eq!(after["main_pid"].as_u64().unwrap(), main);

    let (status, log) = sandbox.poweroff();
    assert!(status.success(), "{log}");
    assert!(
        log.contains("stopping redis-server.service") && log.contains("stopping ssh.service"),
        "{log}"
    );
}
