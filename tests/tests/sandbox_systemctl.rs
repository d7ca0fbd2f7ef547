//! Debian's own systemctl against relive, in the namespace sandbox:
//! relive serves systemd's D-Bus API (org.freedesktop.systemd1) on
//! /run/systemd/private for root and on the system bus for everyone, and
//! systemctl's commands do what they do under systemd. What systemctl
//! reports is checked against what relive itself reports (relivectl) and
//! against the processes.

use relive_tests::{require_sandbox, Sandbox};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

const CONFIG: &str = "[manager]\ndefault_timeout_stop_sec = 10\n";

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// systemctl's stdout, asserting it exited 0.
fn ok(sandbox: &Sandbox, args: &[&str]) -> String {
    let out = sandbox.systemctl(args);
    assert!(
        out.status.success(),
        "systemctl {args:?} failed ({}): {}\n--- relive log ---\n{}",
        out.status,
        text(&out),
        sandbox.log()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn main_pid(sandbox: &Sandbox, unit: &str) -> u64 {
    sandbox.status(unit)["main_pid"].as_u64().unwrap_or(0)
}

#[test]
fn debian_systemctl_manages_relives_units() {
    require_sandbox!();
    for needed in [
        "/usr/bin/systemctl",
        "/usr/bin/dbus-daemon",
        "/usr/bin/setpriv",
    ] {
        // scripts/test installs systemd and dbus (the tools, not as init).
        assert!(Path::new(needed).exists(), "{needed} is missing");
    }
    let files = std::env::temp_dir().join(format!("relive-systemctl-{}", std::process::id()));
    let bus = relive_tests::SystemBus::new(&files);
    let reloads = files.join("reloads");
    let signals = files.join("signals");
    let hello = format!(
        "[Unit]\nDescription=Hello from relive\n[Service]\nExecStart=/bin/sh -c 'trap \"echo USR1 >> {signals}\" USR1; while :; do sleep 0.1; done'\nExecReload=/bin/sh -c 'echo reload >> {reloads}'\n[Install]\nWantedBy=default.target\n",
        signals = signals.display(),
        reloads = reloads.display()
    );
    // hello.service is a vendor unit (a second, lower search dir, as
    // /lib/systemd/system is to /etc/systemd/system): the sandbox's own
    // units dir is the configuration where enable and mask make links.
    let vendor = files.join("vendor");
    std::fs::create_dir_all(&vendor).unwrap();
    let fragment = vendor.join("hello.service");
    std::fs::write(&fragment, &hello).unwrap();
    let vendor_arg = format!("--units-dir={}", vendor.display());
    let bus_units = bus.units();
    let sandbox = Sandbox::boot_with_args(
        &[
            (bus_units[0].0, bus_units[0].1.as_str()),
            (bus_units[1].0, bus_units[1].1.as_str()),
            (bus_units[2].0, bus_units[2].1.as_str()),
            (
                "broken.service",
                "[Unit]\nDescription=Always fails\n[Service]\nType=oneshot\nExecStart=/bin/false\n",
            ),
            (
                "tick.timer",
                "[Unit]\nDescription=A timer\n[Timer]\nOnActiveSec=1h\nUnit=hello.service\n",
            ),
            (
                "echo.socket",
                "[Unit]\nDescription=A socket\n[Socket]\nListenStream=/run/echo.sock\n",
            ),
            ("echo.service", "[Service]\nExecStart=/bin/cat\nStandardInput=socket\n"),
            (
                "default.target",
                "[Unit]\nDescription=Default\nWants=dbus.service hello.service tick.timer echo.socket\n",
            ),
        ],
        CONFIG,
        &[&vendor_arg],
    );
    sandbox.wait_state("hello.service", "active", Duration::from_secs(20));
    sandbox.wait_state("dbus.service", "active", Duration::from_secs(20));

    // Reading: list-units, is-active, status and show agree with relive.
    let units = ok(&sandbox, &["list-units", "--all"]);
    let line = units
        .lines()
        .find(|l| l.contains("hello.service"))
        .unwrap_or_else(|| panic!("hello.service not listed:\n{units}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        words[..4],
        ["hello.service", "loaded", "active", "running"],
        "{line}"
    );
    assert!(line.ends_with("Hello from relive"), "{line}");
    assert_eq!(
        ok(&sandbox, &["is-active", "hello.service"]).trim(),
        "active"
    );
    let pid = main_pid(&sandbox, "hello.service");
    assert!(pid > 0);
    let status = ok(&sandbox, &["status", "hello.service"]);
    for expected in [
        "● hello.service - Hello from relive".to_string(),
        format!(
            "Loaded: loaded ({}; disabled; preset: enabled)",
            fragment.display()
        ),
        "Active: active (running) since".to_string(),
        format!("Main PID: {pid} (sh)"),
        "CGroup: /system.slice/hello.service".to_string(),
    ] {
        assert!(status.contains(&expected), "no {expected:?} in:\n{status}");
    }
    let shown = ok(
        &sandbox,
        &[
            "show",
            "-p",
            "Id,LoadState,ActiveState,SubState,MainPID,Type,Restart,UnitFileState",
            "hello.service",
        ],
    );
    // In systemd's order: the service's interface, then the unit's.
    assert_eq!(
        shown,
        format!("Type=simple\nRestart=no\nMainPID={pid}\nId=hello.service\nLoadState=loaded\nActiveState=active\nSubState=running\nUnitFileState=disabled\n")
    );
    let out = sandbox.systemctl(&["is-enabled", "hello.service"]);
    assert_eq!(
        (out.status.code(), text(&out).trim()),
        (Some(1), "disabled")
    );
    let files_listed = ok(&sandbox, &["list-unit-files"]);
    for (unit, state) in [("hello.service", "disabled"), ("broken.service", "static")] {
        assert!(
            files_listed
                .lines()
                .any(|l| l.split_whitespace().take(2).eq([unit, state])),
            "{unit} {state} not in:\n{files_listed}"
        );
    }
    let timers = ok(&sandbox, &["list-timers"]);
    assert!(
        timers
            .lines()
            .any(|l| l.contains("tick.timer") && l.contains("hello.service")),
        "{timers}"
    );
    let sockets = ok(&sandbox, &["list-sockets"]);
    assert!(
        sockets
            .lines()
            .any(|l| l.contains("/run/echo.sock") && l.contains("echo.socket")),
        "{sockets}"
    );

    // Unit files: enable, disable, mask and unmask make and remove the
    // links systemd would, and print them as systemd does.
    let config = &sandbox.units;
    let link = config.join("default.target.wants/hello.service");
    let out = sandbox.systemctl(&["enable", "hello.service"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        text(&out).trim(),
        format!(
            "Created symlink {} → {}.",
            link.display(),
            fragment.display()
        )
    );
    assert_eq!(std::fs::read_link(&link).unwrap(), fragment);
    assert_eq!(
        ok(&sandbox, &["is-enabled", "hello.service"]).trim(),
        "enabled"
    );
    // --full lists the links (GetUnitFileLinks; Ansible asks this way).
    assert_eq!(
        ok(&sandbox, &["is-enabled", "--full", "hello.service"]),
        format!("enabled\n  {}\n", link.display())
    );
    let out = sandbox.systemctl(&["disable", "hello.service"]);
    assert_eq!(
        text(&out).trim(),
        format!("Removed \"{}\".", link.display())
    );
    assert!(!link.exists());
    ok(&sandbox, &["mask", "hello.service"]);
    assert_eq!(
        std::fs::read_link(config.join("hello.service")).unwrap(),
        Path::new("/dev/null")
    );
    let out = sandbox.systemctl(&["is-enabled", "hello.service"]);
    assert_eq!(text(&out).trim(), "masked");
    ok(&sandbox, &["unmask", "hello.service"]);
    assert!(!config.join("hello.service").exists());
    let out = sandbox.systemctl(&["enable", "nope.service"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("Unit file nope.service does not exist."),
        "{}",
        text(&out)
    );

    // Jobs: each is waited for, and relive's state follows.
    ok(&sandbox, &["stop", "hello.service"]);
    assert_eq!(sandbox.active_state("hello.service"), "inactive");
    let out = sandbox.systemctl(&["is-active", "hello.service"]);
    assert_eq!(
        (out.status.code(), text(&out).trim()),
        (Some(3), "inactive")
    );
    ok(&sandbox, &["start", "hello.service"]);
    assert_eq!(sandbox.active_state("hello.service"), "active");
    let started = main_pid(&sandbox, "hello.service");
    ok(&sandbox, &["restart", "hello.service"]);
    let restarted = main_pid(&sandbox, "hello.service");
    assert!(
        restarted > 0 && restarted != started,
        "{started} -> {restarted}"
    );
    ok(&sandbox, &["reload", "hello.service"]);
    assert_eq!(std::fs::read_to_string(&reloads).unwrap(), "reload\n");
    ok(&sandbox, &["kill", "-s", "USR1", "hello.service"]);
    sandbox.wait_for("the USR1 trap", Duration::from_secs(10), || {
        std::fs::read_to_string(&signals).is_ok_and(|s| s.contains("USR1"))
    });
    assert_eq!(sandbox.active_state("hello.service"), "active");

    // A failing start fails systemctl, as under systemd, and is-failed,
    // reset-failed follow it.
    let out = sandbox.systemctl(&["start", "broken.service"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("Job for broken.service failed"),
        "{}",
        text(&out)
    );
    assert_eq!(
        ok(&sandbox, &["is-failed", "broken.service"]).trim(),
        "failed"
    );
    ok(&sandbox, &["reset-failed", "broken.service"]);
    assert_eq!(sandbox.active_state("broken.service"), "inactive");
    let out = sandbox.systemctl(&["start", "nope.service"]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert!(
        text(&out).contains("Unit nope.service not found."),
        "{}",
        text(&out)
    );

    // daemon-reload picks up an edited unit file.
    std::fs::write(&fragment, hello.replace("Hello from relive", "Hello again")).unwrap();
    ok(&sandbox, &["daemon-reload"]);
    let shown = ok(&sandbox, &["show", "-p", "Description", "hello.service"]);
    assert_eq!(shown.trim(), "Description=Hello again");
    let cat = ok(&sandbox, &["cat", "hello.service"]);
    assert!(cat.contains("Description=Hello again"), "{cat}");

    // Everyone may read, through the system bus; only root may change.
    sandbox.wait_for("relive on the bus", Duration::from_secs(20), || {
        sandbox
            .log()
            .contains("system bus: connected as org.freedesktop.systemd1")
    });
    let out = sandbox.systemctl_as(65534, &["is-active", "hello.service"]);
    assert_eq!(text(&out).trim(), "active", "{}", sandbox.log());
    let out = sandbox.systemctl_as(65534, &["list-units", "hello.service"]);
    assert!(text(&out).contains("Hello again"), "{}", text(&out));
    // A user's questions about units relive does not know make it keep
    // nothing (a unit per name would let anyone grow PID 1's memory).
    let out = sandbox.systemctl_as(65534, &["status", "ghost-of-a-unit.service"]);
    assert!(text(&out).contains("could not be found"), "{}", text(&out));
    let known = sandbox.ctl_ok(&["list-units", "--all"]);
    assert!(!known.contains("ghost-of-a-unit"), "{known}");
    let out = sandbox.systemctl_as(65534, &["stop", "hello.service"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("Access denied"), "{}", text(&out));
    assert_eq!(sandbox.active_state("hello.service"), "active");

    // relive's own interface on systemd's name and object, for any D-Bus
    // client (busctl here) and for relivectl --bus.
    let bus_address = format!(
        "unix:path=/proc/{}/root/run/dbus/system_bus_socket",
        sandbox.pid1()
    );
    let busctl = |args: &[&str]| {
        std::process::Command::new("busctl")
            .arg(format!("--address={bus_address}"))
            .args([
                "call",
                "org.freedesktop.systemd1",
                "/org/freedesktop/systemd1",
                "org.relive.Manager1",
            ])
            .args(args)
            .output()
            .expect("run busctl")
    };
    let out = busctl(&["GetUnit", "s", "hello.service"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("\"Hello again\""), "{}", text(&out));
    let out = busctl(&["UpgradeReport"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("no live upgrade has completed"),
        "{}",
        text(&out)
    );
    let out = std::process::Command::new(relive_tests::binary("relivectl"))
        .args(["--bus", "is-active", "hello.service"])
        .env("DBUS_SYSTEM_BUS_ADDRESS", &bus_address)
        .output()
        .unwrap();
    assert_eq!(text(&out).trim(), "active", "{}", sandbox.log());

    // poweroff ends the sandbox's PID 1. systemctl itself may not see
    // its end: it runs inside the namespace, and the shutdown's last step
    // sends SIGTERM to every process left (nsenter passes the signal on).
    let out = sandbox.systemctl(&["poweroff"]);
    assert!(
        out.status.success() || out.status.signal() == Some(libc::SIGTERM),
        "{}: {}",
        out.status,
        text(&out)
    );
    let mut sandbox = sandbox;
    let status = sandbox.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "{status}\n{}", sandbox.log());
    let _ = std::fs::remove_dir_all(&files);
}
