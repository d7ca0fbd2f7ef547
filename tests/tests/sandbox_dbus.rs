//! The system bus in the namespace sandbox: a dbus-daemon started by
//! socket activation with `--systemd-activation`, as Debian's dbus.service
//! runs it. relive connects once it runs and owns org.freedesktop.systemd1:
//! bus activation starts the unit a D-Bus service file names, a unit that
//! cannot start fails the client's call at once (not after dbus-daemon's
//! 25 s timeout), and Type=dbus services are ready when their name
//! appears.

use relive_tests::{require_sandbox, Sandbox};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const CONFIG: &str = "[manager]\ndefault_timeout_stop_sec = 10\n";

/// Calls the bus driver's StartServiceByName for `name` from the host,
/// through the sandbox's root; returns (success, output, time taken).
fn start_service_by_name(sandbox: &Sandbox, name: &str) -> (bool, String, Duration) {
    let address = format!(
        "unix:path=/proc/{}/root/run/dbus/system_bus_socket",
        sandbox.pid1()
    );
    let started = Instant::now();
    let out = Command::new("busctl")
        .args(["--address", &address, "--timeout=60", "call"])
        .args(["org.freedesktop.DBus", "/org/freedesktop/DBus"])
        .args([
            "org.freedesktop.DBus",
            "StartServiceByName",
            "su",
            name,
            "0",
        ])
        .output()
        .expect("run busctl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.success(),
        text.trim().to_owned(),
        started.elapsed(),
    )
}

#[test]
fn bus_activation_and_type_dbus() {
    require_sandbox!();
    for needed in ["/usr/bin/dbus-daemon", "/usr/bin/busctl"] {
        // scripts/test installs dbus (busctl comes with systemd).
        assert!(Path::new(needed).exists(), "{needed} is missing");
    }
    let owner = relive_tests::workload("bus-name-owner");
    let files = std::env::temp_dir().join(format!("relive-bus-{}", std::process::id()));
    let bus = relive_tests::SystemBus::new(&files);
    let services = bus.services.clone();
    for (name, unit) in [
        ("org.relive.Test1", "bus-test.service"),
        ("org.relive.Missing1", "missing.service"),
    ] {
        std::fs::write(
            services.join(format!("{name}.service")),
            format!(
                "[D-BUS Service]\nName={name}\nExec=/bin/false\nUser=root\nSystemdService={unit}\n"
            ),
        )
        .unwrap();
    }
    let bus_test = format!(
        "[Service]\nType=dbus\nBusName=org.relive.Test1\nExecStart={} org.relive.Test1 500\n",
        owner.display()
    );
    let never_named = "[Service]\nType=dbus\nBusName=org.relive.Never1\nExecStart=/bin/sleep 1000\nTimeoutStartSec=3\n";
    let bus_units = bus.units();
    let sandbox = Sandbox::boot(
        &[
            (bus_units[0].0, bus_units[0].1.as_str()),
            (bus_units[1].0, bus_units[1].1.as_str()),
            (bus_units[2].0, bus_units[2].1.as_str()),
            ("bus-test.service", &bus_test),
            ("never-named.service", never_named),
            (
                "default.target",
                "[Unit]\nWants=dbus.service never-named.service\n",
            ),
        ],
        CONFIG,
    );
    sandbox.wait_state("dbus.service", "active", Duration::from_secs(20));
    sandbox.wait_for("relive on the bus", Duration::from_secs(20), || {
        sandbox
            .log()
            .contains("system bus: connected as org.freedesktop.systemd1")
    });

    // A Type=dbus service whose program never takes its name is not
    // active: it times out and fails.
    assert_eq!(sandbox.active_state("never-named.service"), "activating");
    sandbox.wait_state("never-named.service", "failed", Duration::from_secs(20));

    // Bus activation: the call returns once the unit's program owns the
    // name, and the unit became active only then.
    assert_eq!(sandbox.active_state("bus-test.service"), "inactive");
    let (ok, out, _) = start_service_by_name(&sandbox, "org.relive.Test1");
    assert!(ok && out == "u 1", "{out}\n{}", sandbox.log());
    sandbox.wait_state("bus-test.service", "active", Duration::from_secs(10));
    let log = sandbox.log();
    let owned = log.find("bus-name-owner: owns org.relive.Test1");
    let appeared = log.find("bus-test.service: org.relive.Test1 appeared on the bus");
    assert!(owned.is_some() && appeared.is_some(), "{log}");

    // A unit that cannot start fails the call at once, naming the unit.
    let (ok, out, took) = start_service_by_name(&sandbox, "org.relive.Missing1");
    assert!(!ok, "{out}");
    assert!(out.contains("missing.service"), "{out}");
    assert!(took < Duration::from_secs(10), "took {took:?}: {out}");

    let _ = std::fs::remove_dir_all(&files);
}
