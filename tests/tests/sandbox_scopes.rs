//! Transient units through systemd's API, in the namespace sandbox:
//! Debian's `systemd-run --scope` puts a command in a scope of its own
//! (its cgroup, its limits, gone when the command ends), `systemd-run`
//! without --scope runs a transient service, and slices nest as systemd
//! nests them.

use relive_tests::{require_sandbox, Sandbox};
use std::process::Output;
use std::time::Duration;

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn boot() -> Sandbox {
    // /run is the sandbox's own: transient units go where systemd puts them.
    Sandbox::boot_with_args(
        &[
            ("multi-user.target", "[Unit]\nDescription=Multi-User\n"),
            ("user.slice", "[Unit]\nDescription=User and Session Slice\n"),
        ],
        "[manager]\ndefault_timeout_stop_sec = 5\n",
        &["--units-dir", "/run/systemd/transient"],
    )
}

#[test]
fn systemd_run_scope_puts_the_command_in_a_scope_until_it_ends() {
    require_sandbox!();
    let sandbox = boot();
    sandbox.wait_state("multi-user.target", "active", Duration::from_secs(10));
    let out = sandbox.sh(
        "exec systemd-run --scope --unit=probe --description='Probe 100%' --slice=user-7.slice \
         -- sh -c 'cat /proc/self/cgroup; systemctl show -p ActiveState,SubState,Slice,Description probe.scope; \
         cat /run/systemd/transient/probe.scope'",
    );
    let output = text(&out);
    assert!(
        out.status.success(),
        "{output}\n--- relive ---\n{}",
        sandbox.log()
    );
    // The command ran in the scope's cgroup, below the slice it asked for.
    assert!(
        output.contains("/user.slice/user-7.slice/probe.scope\n"),
        "{output}"
    );
    for line in [
        "ActiveState=active",
        "SubState=running",
        "Slice=user-7.slice",
        "Description=Probe 100%",
        "Description=Probe 100%%",
    ] {
        assert!(output.contains(line), "{line} missing: {output}");
    }
    // Its limit is in force, and the slices are units of their own.
    let slice_cgroup = sandbox.cgroup_dir("user.slice/user-7.slice");
    assert!(slice_cgroup.is_dir());
    let user7 = sandbox.systemctl(&["show", "-p", "ActiveState,ControlGroup", "user-7.slice"]);
    assert_eq!(
        text(&user7),
        // (systemd's order: the slice's own properties come first.)
        "ControlGroup=/user.slice/user-7.slice\nActiveState=active\n"
    );
    // The command is over: the scope and its file are gone.
    sandbox.wait_for("the scope to go", Duration::from_secs(5), || {
        !sandbox
            .cgroup_dir("user.slice/user-7.slice/probe.scope")
            .exists()
            && text(&sandbox.systemctl(&["show", "-p", "LoadState", "probe.scope"]))
                == "LoadState=not-found\n"
    });
    let file = sandbox.sh("test -e /run/systemd/transient/probe.scope; echo $?");
    assert_eq!(text(&file), "1\n");
}

#[test]
fn a_scope_can_be_stopped_and_its_processes_get_sigterm_and_sighup() {
    require_sandbox!();
    let sandbox = boot();
    sandbox.wait_state("multi-user.target", "active", Duration::from_secs(10));
    // The scope's process traps both signals and ends once it has seen
    // both: relive sends SIGTERM and right after it SIGHUP, so a process
    // that exited on SIGTERM at once could miss the second (and which
    // trap the shell runs first depends on when its sleep dies).
    let script = "systemd-run --scope --unit=held -p SendSIGHUP=yes -p TimeoutStopSec=5 -- \
                  sh -c 'trap \"echo HUP >> /run/held.log; h=1\" HUP; trap \"echo TERM >> /run/held.log; t=1\" TERM; \
                  while :; do sleep 0.1; [ -n \"$t\" ] && [ -n \"$h\" ] && exit 0; done' >/run/held.err 2>&1 & \
                  for i in $(seq 50); do systemctl is-active -q held.scope && break; sleep 0.1; done; \
                  systemctl stop held.scope; echo stop=$?; sort /run/held.log; cat /run/held.err; systemctl is-active held.scope";
    let out = sandbox.sh(script);
    let output = text(&out);
    assert!(
        output.contains("stop=0\nHUP\nTERM\n"),
        "{output}\n{}",
        sandbox.log()
    );
    assert!(output.trim_end().ends_with("inactive"), "{output}");
}

#[test]
fn systemd_run_starts_a_transient_service() {
    require_sandbox!();
    let sandbox = boot();
    sandbox.wait_state("multi-user.target", "active", Duration::from_secs(10));
    let out = sandbox.sh(
        "systemd-run --unit=hello -p RemainAfterExit=yes --setenv=WHO=relive \
         sh -c 'echo \"hello $WHO; a $$ dollar\" > /run/hello.out' && \
         for i in $(seq 50); do test -s /run/hello.out && break; sleep 0.1; done; \
         cat /run/hello.out; systemctl show -p ActiveState,SubState,Type hello.service; \
         systemctl stop hello.service; systemctl show -p LoadState hello.service",
    );
    let output = text(&out);
    assert!(out.status.success(), "{output}\n{}", sandbox.log());
    // $WHO came from --setenv, $$ is the shell's own PID: the command
    // line reached sh as systemd-run gave it.
    let pid = output
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("hello relive; a "))
        .and_then(|l| l.strip_suffix(" dollar"))
        .and_then(|n| n.parse::<u32>().ok());
    assert!(pid.is_some(), "{output}");
    assert!(
        output.contains("Type=simple\nActiveState=active\nSubState=exited\n"),
        "{output}"
    );
    assert!(output.contains("LoadState=not-found\n"), "{output}");
}

#[test]
fn a_start_relive_cannot_honour_is_refused_at_once_and_fails_nothing() {
    require_sandbox!();
    // DynamicUser= asks for what relive does not implement: StartUnit
    // (as logind or systemctl call it) gets an error, as systemd gives for
    // a bad setting, and the system does not become degraded.
    let sandbox = Sandbox::boot_with_args(
        &[
            ("multi-user.target", "[Unit]\nDescription=Multi-User\n"),
            (
                "dynamic@.service",
                "[Service]\nDynamicUser=yes\nExecStart=/bin/sleep 100\n",
            ),
        ],
        "",
        &[],
    );
    sandbox.wait_state("multi-user.target", "active", Duration::from_secs(10));
    let out = sandbox.systemctl(&["start", "dynamic@0.service"]);
    let output = text(&out);
    assert!(!out.status.success(), "{output}");
    assert!(
        output.contains("bad unit file setting")
            && output.contains("dynamic@.service:2: DynamicUser="),
        "{output}"
    );
    let state = sandbox.systemctl(&["is-failed", "dynamic@0.service"]);
    assert_eq!(text(&state), "inactive\n");
    let system = sandbox.systemctl(&["is-system-running"]);
    assert_eq!(text(&system), "running\n");
}
