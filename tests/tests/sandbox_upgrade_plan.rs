//! `relivectl live-upgrade --dry-run` in the sandbox: the plan (what is
//! preserved, in which order, restarted, rerun; image size; connections
//! that cannot survive) and a preflight that refuses to kexec the host.

use relive_tests::{require_sandbox, Sandbox};
use std::time::Duration;

const LOOPBACK: &str = "[Unit]\nBefore=network.target\n[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/sbin/ip link set lo up\n";
const SERVER: &str = "[Unit]\nAfter=loopback.service\n[Service]\nExecStart=/usr/bin/python3 -c 'import socket,time\\ns=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((\"127.0.0.1\", 7100)); s.listen()\\nconns=[]\\nwhile True: conns.append(s.accept()[0])'\n[X-LiveUpgrade]\nMode=preserve\nPriority=900\n";
const CLIENT: &str = "[Unit]\nAfter=server.service\n[Service]\nExecStart=/usr/bin/python3 -c 'import socket,time\\nwhile True:\\n  try:\\n    c=socket.create_connection((\"127.0.0.1\", 7100)); break\\n  except OSError: time.sleep(0.1)\\nprint(\"connected\", flush=True)\\ntime.sleep(1000)'\n[X-LiveUpgrade]\nMode=restart\n";
const KEEPER: &str = "[Service]\nExecStart=/usr/bin/python3 -c 'import time; b=bytearray(8<<20); time.sleep(1000)'\n[X-LiveUpgrade]\nPriority=100\n";
/// Its second sleep is orphaned at once (a double fork): not below the
/// main process, so CRIU could not checkpoint the unit as one tree.
const FORKER: &str = "[Service]\nExecStart=/bin/sh -c '(sleep 1000 &); exec sleep 1000'\n[X-LiveUpgrade]\nMode=preserve\nPriority=200\n";
/// Attaches a SysV shared memory segment, as postgres does, in the
/// machine's IPC namespace: CRIU would refuse it in the stoppage.
const SYSV: &str = "[Service]\nExecStart=/usr/bin/python3 -c 'import ctypes,time\\nlibc=ctypes.CDLL(None); libc.shmat.restype=ctypes.c_void_p\\nid=libc.shmget(0, 4096, 0o1600)\\nassert libc.shmat(id, None, 0) != ctypes.c_void_p(-1).value\\nlibc.shmctl(id, 0, None)\\nprint(\"attached\", flush=True); time.sleep(1000)'\n[X-LiveUpgrade]\nMode=preserve\n";
const TARGET: &str =
    "[Unit]\nWants=loopback.service server.service client.service keeper.service forker.service sysv.service\n";

#[test]
fn dry_run_prints_the_plan_and_refuses_to_kexec_the_host() {
    require_sandbox!();
    let sandbox = Sandbox::boot_full(
        &[
            ("loopback.service", LOOPBACK),
            ("server.service", SERVER),
            ("client.service", CLIENT),
            ("keeper.service", KEEPER),
            ("forker.service", FORKER),
            ("sysv.service", SYSV),
            ("multi-user.target", TARGET),
        ],
        "",
        &[],
        true,
    );
    for unit in [
        "server.service",
        "client.service",
        "keeper.service",
        "forker.service",
    ] {
        sandbox.wait_state(unit, "active", Duration::from_secs(20));
    }
    sandbox.wait_for("the client to connect", Duration::from_secs(10), || {
        !sandbox.log_lines("client.service: connected").is_empty()
    });
    sandbox.wait_for(
        "the segment to be attached",
        Duration::from_secs(10),
        || !sandbox.log_lines("sysv.service: attached").is_empty(),
    );

    let out = sandbox.ctl(&["--json", "live-upgrade", "--kernel", "/bin/sh", "--dry-run"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failed preflight fails the command"
    );
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("the plan as JSON");
    let preserved: Vec<&str> = plan["preserved"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    // Ascending priority: the critical server is frozen last.
    assert_eq!(preserved, ["keeper.service", "server.service"], "{plan}");
    // The forker cannot be checkpointed as one tree: it is restarted, and
    // the plan says why, instead of the whole upgrade being refused.
    // So is the unit mapping SysV shared memory in the machine's IPC
    // namespace: found before anything is frozen.
    assert_eq!(
        plan["restarted"],
        serde_json::json!(["client.service", "forker.service", "sysv.service"])
    );
    let why = |unit: &str| {
        plan["why"]
            .as_array()
            .unwrap()
            .iter()
            .find(|entry| entry[0] == unit)
            .map(|entry| entry[1].as_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let forker = why("forker.service");
    assert!(
        forker.contains("are not descendants of main PID") && forker.contains("restarted instead"),
        "{plan}"
    );
    assert!(
        why("sysv.service").contains("maps SysV shared memory (key 0x00000000)"),
        "{plan}"
    );
    assert_eq!(plan["rerun"], serde_json::json!(["loopback.service"]));
    // Ordered before network.target: it brings the network up, so in the
    // new kernel it waits for CRIU's network locks.
    assert_eq!(
        plan["rerun_network"],
        serde_json::json!(["loopback.service"])
    );
    // The keeper holds 8 MiB of anonymous memory.
    assert!(
        plan["estimated_image_bytes"].as_u64().unwrap() >= 8 << 20,
        "{plan}"
    );
    let doomed = plan["doomed_connections"].as_array().unwrap();
    assert_eq!(doomed.len(), 1, "{plan}");
    assert_eq!(doomed[0]["unit"], "server.service");
    assert!(
        doomed[0]["reason"]
            .as_str()
            .unwrap()
            .contains("client.service (not preserved)"),
        "{plan}"
    );
    let check = |name: &str| {
        plan["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(check("init")["ok"], false);
    assert!(check("init")["detail"]
        .as_str()
        .unwrap()
        .contains("would kexec the host"));
    assert_eq!(check("kernel")["ok"], false, "/bin/sh is no kernel");
    assert!(check("kexec")["detail"]
        .as_str()
        .unwrap()
        .starts_with("skipped"));
    // criu check ran over RPC (on this host's kernel it may fail: its reason is shown).
    let criu = check("criu");
    assert!(criu["detail"].as_str().unwrap().contains("CRIU"), "{criu}");
    eprintln!("criu check: {criu}");

    // The same plan for people.
    let text = String::from_utf8_lossy(
        &sandbox
            .ctl(&["live-upgrade", "--kernel", "/bin/sh", "--dry-run"])
            .stdout,
    )
    .into_owned();
    assert!(
        text.contains("Preserved (frozen in this order") && text.contains("FAIL init"),
        "{text}"
    );

    // --check: the verdict, and the reasons why not.
    let out = sandbox.ctl(&["live-upgrade", "--kernel", "/bin/sh", "--check"]);
    assert_eq!(out.status.code(), Some(1), "not possible: exit status 1");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("A live upgrade to /bin/sh is not possible:\n")
            && text.contains("\n  init: relive is not the machine's init")
            && text.contains("\n  kernel: /bin/sh: not an x86 kernel image"),
        "{text}"
    );
    let out = sandbox.ctl(&["--json", "live-upgrade", "--kernel", "/bin/sh", "--check"]);
    let verdict: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(verdict["possible"], false, "{verdict}");
    assert_eq!(
        verdict["preserved"],
        serde_json::json!(["keeper.service", "server.service"])
    );
    assert!(
        verdict["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r.as_str().unwrap().starts_with("init: ")),
        "{verdict}"
    );

    // Without --dry-run: the preflight refuses (this is not the machine's
    // init), and nothing changes.
    let out = sandbox.ctl(&["live-upgrade", "--kernel", "/bin/sh"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("preflight failed") && err.contains("would kexec the host"),
        "{err}"
    );
    // A second attempt is possible: the first one left no upgrade running.
    let again = sandbox.ctl(&["live-upgrade", "--kernel", "/bin/sh"]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("preflight failed"));
    for unit in ["server.service", "client.service", "keeper.service"] {
        assert_eq!(sandbox.active_state(unit), "active");
    }
    // Nothing under way: nothing to cancel, and relivectl says so.
    let out = sandbox.ctl(&["live-upgrade", "--cancel"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "No live upgrade is under way.\n"
    );
    let out = sandbox.ctl(&["--json", "live-upgrade", "--cancel"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "\"no-upgrade\""
    );
    let _ = sandbox.poweroff();
}
