//! The sandbox a unit asks for, seen from inside the service: what it
//! cannot write, see or call (systemd.exec(5)'s ProtectSystem=,
//! PrivateTmp=, SystemCallFilter= and friends). Each check is a shell
//! command whose outcome the service prints; the same commands succeed
//! in an unconfined twin of the service, so each refusal is the sandbox's.

use relive_tests::{require_sandbox, Sandbox};
use std::time::Duration;

/// `name=ok` when `command` succeeds, `name=refused` when it fails.
fn check(name: &str, command: &str) -> String {
    format!("if {command} >/dev/null 2>&1; then echo {name}=ok; else echo {name}=refused; fi; ")
}

/// The checks, as one shell script; `state` is the StateDirectory=.
fn script(state: &str) -> String {
    [
        check("write-usr", "touch /usr/relive-sandbox-probe"),
        check("write-etc", "touch /etc/relive-sandbox-probe"),
        check("write-state", &format!("touch /var/lib/{state}/probe")),
        check("read-home", "sh -c 'ls -A /root | grep -q .'"),
        check(
            "tmp-private",
            "test ! -e /tmp/relive-host-marker && touch /tmp/x",
        ),
        check("dev-kmsg", "test -e /dev/kmsg"),
        check("dev-null", "echo hi > /dev/null"),
        check("proc-hidepid", "grep -q hidepid=invisible /proc/self/mountinfo"),
        // The sandbox has its own UTS namespace: these change nothing of
        // the host's.
        check("write-sysctl", "sh -c 'echo relive > /proc/sys/kernel/hostname'"),
        check("hostname", "hostname relive-sandbox-probe"),
        // adjtimex(2) with no mode only reads the clock.
        check(
            "read-clock-tuning",
            "python3 -c 'import ctypes,sys; b=ctypes.create_string_buffer(512); sys.exit(ctypes.CDLL(None).adjtimex(b) < 0)'",
        ),
        check(
            "inet-socket",
            "python3 -c 'import socket; socket.socket(socket.AF_INET)'",
        ),
        check(
            "wx-mapping",
            "python3 -c 'import mmap; mmap.mmap(-1, 4096, prot=mmap.PROT_WRITE|mmap.PROT_EXEC)'",
        ),
        check("setuid-bit", &format!("chmod u+s /var/lib/{state}/probe")),
        check("unshare", "unshare --uts true"),
    ]
    .concat()
}

fn unit(state: &str, confined: bool) -> String {
    let sandbox = "ProtectSystem=strict\nProtectHome=yes\nPrivateTmp=yes\n\
        PrivateDevices=yes\nProtectProc=invisible\nProtectKernelTunables=yes\n\
        ProtectKernelLogs=yes\nProtectHostname=yes\nProtectClock=yes\n\
        SystemCallFilter=@system-service\nSystemCallErrorNumber=EPERM\n\
        SystemCallArchitectures=native\nRestrictAddressFamilies=AF_UNIX\n\
        MemoryDenyWriteExecute=yes\nRestrictSUIDSGID=yes\nRestrictNamespaces=yes\n";
    format!(
        "[Service]\nType=oneshot\nRemainAfterExit=yes\nStateDirectory={state}\n{}\
         ExecStart=/bin/sh -c '{}'\n",
        if confined { sandbox } else { "" },
        script(state).replace('\'', "'\"'\"'")
    )
}

/// The service's answers, from its output lines `UNIT: name=outcome`.
fn outcomes(sandbox: &Sandbox, unit: &str) -> Vec<(String, String)> {
    sandbox.wait_for("the checks", Duration::from_secs(20), || {
        !sandbox.log_lines(&format!("{unit}: unshare=")).is_empty()
    });
    sandbox
        .log_lines(&format!("{unit}: "))
        .iter()
        .filter_map(|l| {
            let rest = &l[l.find(&format!("{unit}: "))? + unit.len() + 2..];
            let (k, v) = rest.split_once('=')?;
            Some((k.to_string(), v.trim().to_string()))
        })
        .collect()
}

#[test]
fn a_sandboxed_service_cannot_do_what_its_unconfined_twin_can() {
    require_sandbox!();
    let state = format!("relive-sandbox-{}", std::process::id());
    let marker = "/tmp/relive-host-marker";
    std::fs::write(marker, "").unwrap();
    let confined = unit(&state, true);
    let open = unit(&format!("{state}-open"), false);
    let sandbox = Sandbox::boot(
        &[
            ("confined.service", confined.as_str()),
            ("open.service", open.as_str()),
            ("multi-user.target", "[Unit]\n"),
        ],
        "",
    );
    sandbox.ctl_ok(&["start", "confined.service"]);
    sandbox.ctl_ok(&["start", "open.service"]);
    let confined = outcomes(&sandbox, "confined.service");
    let open = outcomes(&sandbox, "open.service");
    let security = sandbox.ctl_ok(&["--json", "security", "confined"]);
    let text = sandbox.ctl_ok(&["security", "open.service"]);
    let _ = sandbox.poweroff();
    for p in [
        "/usr/relive-sandbox-probe",
        "/etc/relive-sandbox-probe",
        marker,
    ] {
        let _ = std::fs::remove_file(p);
    }
    let _ = std::fs::remove_dir_all(format!("/var/lib/{state}"));
    let _ = std::fs::remove_dir_all(format!("/var/lib/{state}-open"));
    let _ = std::fs::remove_file("/tmp/x");

    let expected = [
        ("write-usr", "refused"),
        ("write-etc", "refused"),
        ("write-state", "ok"),
        ("read-home", "refused"),
        ("tmp-private", "ok"),
        ("dev-kmsg", "refused"),
        ("dev-null", "ok"),
        ("proc-hidepid", "ok"),
        ("write-sysctl", "refused"),
        ("hostname", "refused"),
        ("read-clock-tuning", "refused"),
        ("inet-socket", "refused"),
        ("wx-mapping", "refused"),
        ("setuid-bit", "refused"),
        ("unshare", "refused"),
    ];
    let got: Vec<(&str, &str)> = confined
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(got, expected, "confined");
    // relivectl security says the same as the service saw.
    let checks: Vec<serde_json::Value> = serde_json::from_str(&security).unwrap();
    let state = |setting: &str| {
        checks
            .iter()
            .find(|c| c["setting"] == setting)
            .map(|c| c["protection"].as_str().unwrap().to_string())
            .unwrap_or_default()
    };
    for on in [
        "ProtectSystem",
        "PrivateTmp",
        "SystemCallFilter",
        "RestrictNamespaces",
    ] {
        assert_eq!(state(on), "on", "{on}: {security}");
    }
    assert_eq!(state("User"), "off", "{security}");
    assert_eq!(state("PrivateNetwork"), "off", "{security}");
    assert!(text.contains("✗ ProtectSystem"), "{text}");
    assert!(text.contains("0 of "), "{text}");
    // The twin shows each refusal is the sandbox's: everything works but
    // what only the sandbox has (a private /tmp, the host's holding the
    // marker; /proc's hidepid=).
    for (k, v) in &open {
        let want = if matches!(k.as_str(), "tmp-private" | "proc-hidepid") {
            "refused"
        } else {
            "ok"
        };
        assert_eq!(
            (k.as_str(), v.as_str()),
            (k.as_str(), want),
            "open: {open:?}"
        );
    }
}

/// A sandbox path that does not exist fails the start (226/NAMESPACE's
/// message names it); with `-` it is skipped.
#[test]
fn a_missing_sandbox_path_fails_the_start_unless_optional() {
    require_sandbox!();
    let missing = "[Service]\nExecStart=/bin/sleep 300\nReadOnlyPaths=/nonexistent/relive\n";
    let optional = "[Service]\nExecStart=/bin/sleep 300\nReadOnlyPaths=-/nonexistent/relive\n";
    let sandbox = Sandbox::boot(
        &[
            ("missing.service", missing),
            ("optional.service", optional),
            ("multi-user.target", "[Unit]\n"),
        ],
        "",
    );
    let _ = sandbox.ctl(&["start", "missing.service"]);
    sandbox.ctl_ok(&["start", "optional.service"]);
    sandbox.wait_state("missing.service", "failed", Duration::from_secs(10));
    sandbox.wait_state("optional.service", "active", Duration::from_secs(10));
    assert!(
        !sandbox
            .log_lines("ReadOnlyPaths=/nonexistent/relive")
            .is_empty(),
        "{}",
        sandbox.log()
    );
    let _ = sandbox.poweroff();
}

/// LoadCredential= and SetCredential=: the service reads its secrets from
/// $CREDENTIALS_DIRECTORY, files of its user only it can read, on a
/// read-only ramfs; a name found in no credential store is left out; the
/// directory goes with the stop.
#[test]
fn credentials_are_in_the_services_own_directory() {
    require_sandbox!();
    let secret = std::env::temp_dir().join(format!("relive-secret-{}", std::process::id()));
    std::fs::write(&secret, "from a file").unwrap();
    let unit_name = format!("creds-{}.service", std::process::id());
    let unit = format!(
        "[Service]\nUser=nobody\nSetCredential=greeting:hello\\x21\n\
         LoadCredential=file:{}\nLoadCredential=relive-nowhere-to-be-found\n\
         ExecStart=/bin/sh -c 'cd $CREDENTIALS_DIRECTORY && echo dir=$CREDENTIALS_DIRECTORY; \
         echo files=$(ls | tr \"\\\\n\" \" \"); echo greeting=$(cat greeting); echo file=$(cat file); \
         echo modes=$(stat -c %%U:%%a . greeting); \
         if touch x 2>/dev/null; then echo writable=yes; else echo writable=no; fi; \
         echo fs=$(stat -f -c %%T .); exec sleep 300'\n",
        secret.display()
    );
    let sandbox = Sandbox::boot(
        &[
            (unit_name.as_str(), unit.as_str()),
            ("multi-user.target", "[Unit]\n"),
        ],
        "",
    );
    sandbox.ctl_ok(&["start", &unit_name]);
    sandbox.wait_for("the output", Duration::from_secs(10), || {
        !sandbox.log_lines(&format!("{unit_name}: fs=")).is_empty()
    });
    let line = |key: &str| {
        let prefix = format!("{unit_name}: {key}=");
        sandbox
            .log_lines(&prefix)
            .first()
            .map(|l| {
                l[l.find(&prefix).unwrap() + prefix.len()..]
                    .trim()
                    .to_string()
            })
            .unwrap_or_default()
    };
    let dir = format!("/run/credentials/{unit_name}");
    assert_eq!(line("dir"), dir);
    assert_eq!(line("files"), "file greeting");
    assert_eq!(line("greeting"), "hello!");
    assert_eq!(line("file"), "from a file");
    assert_eq!(line("modes"), "nobody:500 nobody:400");
    assert_eq!(line("writable"), "no");
    assert_eq!(line("fs"), "ramfs");
    sandbox.ctl_ok(&["stop", &unit_name]);
    let gone = !std::path::Path::new(&dir).exists();
    let _ = std::fs::remove_file(&secret);
    let _ = sandbox.poweroff();
    assert!(gone, "{dir} is still there after the stop");
}

/// A protection relive does not implement keeps the unit from starting,
/// naming the file and line; one of the best-effort list does not, and
/// status and security say it is not applied.
#[test]
fn an_unimplemented_protection_refuses_the_start_a_best_effort_one_is_shown() {
    require_sandbox!();
    let refused = "[Service]\nExecStart=/bin/sleep 300\nDynamicUser=yes\n";
    let best_effort = "[Service]\nExecStart=/bin/sleep 300\nIPAddressDeny=any\n";
    let sandbox = Sandbox::boot(
        &[
            ("refused.service", refused),
            ("besteffort.service", best_effort),
            ("multi-user.target", "[Unit]\n"),
        ],
        "",
    );
    let out = sandbox.ctl(&["start", "refused.service"]);
    assert!(!out.status.success());
    sandbox.ctl_ok(&["start", "besteffort.service"]);
    sandbox.wait_state("refused.service", "failed", Duration::from_secs(10));
    sandbox.wait_state("besteffort.service", "active", Duration::from_secs(10));
    let why = format!(
        "{}:3: DynamicUser= asks for what relive does not implement",
        sandbox.units.join("refused.service").display()
    );
    assert!(!sandbox.log_lines(&why).is_empty(), "{}", sandbox.log());
    assert!(sandbox.cgroup_pids("refused.service").is_empty());
    let status = sandbox.ctl_ok(&["status", "besteffort.service"]);
    assert!(
        status.contains("IPAddressDeny= is not applied (best effort"),
        "{status}"
    );
    let security = sandbox.ctl_ok(&["security", "besteffort"]);
    assert!(security.contains("! IPAddressDeny"), "{security}");
    assert!(security.contains("not applied"), "{security}");
    let _ = sandbox.poweroff();
}

/// `+` runs a command outside the sandbox; `!` only skips the user
/// switch: the sandbox still holds (systemd.service(5)).
#[test]
fn plus_leaves_the_sandbox_bang_only_the_user() {
    require_sandbox!();
    let probe = |tag: &str| {
        format!(
            "/bin/sh -c 'echo {tag}=$(id -u)-$(touch /usr/relive-{tag}-probe 2>/dev/null && echo writable || echo read-only)'"
        )
    };
    let unit = format!(
        "[Service]\nType=oneshot\nUser=nobody\nProtectSystem=strict\n\
         ExecStart=!{}\nExecStart=+{}\nExecStart={}\n",
        probe("bang"),
        probe("plus"),
        probe("plain")
    );
    let sandbox = Sandbox::boot(
        &[
            ("prefixes.service", unit.as_str()),
            ("multi-user.target", "[Unit]\n"),
        ],
        "",
    );
    sandbox.ctl_ok(&["start", "prefixes.service"]);
    let (_, log) = sandbox.poweroff();
    let _ = std::fs::remove_file("/usr/relive-plus-probe");
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap().uid;
    for wanted in [
        "bang=0-read-only".to_string(),
        "plus=0-writable".to_string(),
        format!("plain={nobody}-read-only"),
    ] {
        assert!(
            log.contains(&format!("prefixes.service: {wanted}")),
            "{wanted}\n{log}"
        );
    }
}
