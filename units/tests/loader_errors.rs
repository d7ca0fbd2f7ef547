//! Loading errors: bad values, bad names, bad files.

mod common;

use common::{invalid, one, Tree};
use relive_units::*;

#[test]
fn invalid_values_name_directive_value_and_line() {
    let t = Tree::new();
    let path = t.write(
        "lib/a.service",
        "[Service]\nExecStart=/a\nRestart=sometimes\n",
    );
    let err = t.loader(&["lib"]).load("a.service").unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{}:3: invalid Restart= value \"sometimes\"", path.display())
    );

    for (text, line, needle) in [
        ("[Service]\nType=bogus\nExecStart=/a\n", 2, "Type="),
        ("[Service]\nExecStart=/a\n\nUMask=999\n", 4, "UMask="),
        (
            "[Service]\nExecStart=/a\nRestartSec=abc\n",
            3,
            "RestartSec=",
        ),
        ("[Service]\nExecStart=/a 'open\n", 2, "unbalanced"),
        (
            "[Service]\nExecStart=/a\nKillSignal=SIGNOPE\n",
            3,
            "KillSignal=",
        ),
        (
            "[Service]\nExecStart=/a\nLimitNOFILE=lots\n",
            3,
            "LimitNOFILE=",
        ),
        (
            "[Service]\nExecStart=/a\nSecureBits=noroot keep-all\n",
            3,
            "SecureBits=",
        ),
        (
            "[Service]\nExecStart=/a\nWorkingDirectory=rel\n",
            3,
            "WorkingDirectory=",
        ),
        (
            "[Service]\nExecStart=/a\nEnvironment=NOEQ\n",
            3,
            "Environment=",
        ),
        (
            "[Service]\nExecStart=/a\nRemainAfterExit=perhaps\n",
            3,
            "RemainAfterExit=",
        ),
        (
            "[Unit]\nAfter=not-a-unit\n[Service]\nExecStart=/a\n",
            2,
            "After=",
        ),
        (
            "[Unit]\nDescription=%z\n[Service]\nExecStart=/a\n",
            2,
            "unknown specifier %z",
        ),
        (
            "[Unit]\nConditionPathExists=relative\n[Service]\nExecStart=/a\n",
            2,
            "absolute",
        ),
        (
            "[X-LiveUpgrade]\nPriority=1001\n[Service]\nExecStart=/a\n",
            2,
            "Priority=",
        ),
        (
            "[X-LiveUpgrade]\nMode=freeze\n[Service]\nExecStart=/a\n",
            2,
            "Mode=",
        ),
        (
            "[X-LiveUpgrade]\nPreDumpMaxRounds=0\n[Service]\nExecStart=/a\n",
            2,
            "PreDumpMaxRounds=",
        ),
        (
            "[X-LiveUpgrade]\nOnRestoreFailure=pray\n[Service]\nExecStart=/a\n",
            2,
            "OnRestoreFailure=",
        ),
        (
            "[X-LiveUpgrade]\nPreDump=maybe\n[Service]\nExecStart=/a\n",
            2,
            "PreDump=",
        ),
        ("[Service]\nExecStart=/a\nBusName=no-dots\n", 3, "BusName="),
        (
            "[Service]\nExecStart=/a\nType=notify-reload\nReloadSignal=SIGNOPE\n",
            4,
            "ReloadSignal=",
        ),
        (
            "[X-LiveUpgrade]\nPriorty=5\n[Service]\nExecStart=/a\n",
            2,
            "unknown directive Priorty=",
        ),
    ] {
        let (l, msg) = invalid(text);
        assert_eq!(l, line, "{text:?}: {msg}");
        assert!(msg.contains(needle), "{text:?}: {msg}");
    }
}

#[test]
fn names_errors() {
    let t = Tree::new();
    t.write("lib/a.service", "[Service]\nExecStart=/a\n");
    let l = t.loader(&["lib"]);
    assert_eq!(
        l.load("nope.service").unwrap_err().to_string(),
        "nope.service: unit file not found"
    );
    assert_eq!(
        l.load("bad name").unwrap_err().to_string(),
        "bad name: invalid unit name"
    );
    assert!(matches!(
        l.load("a.bogus"),
        Err(LoadError::InvalidName { .. })
    ));
    let t = Tree::new();
    t.write("lib/s.service", "[Service]\nExecStart=/a\n[Unit\n");
    assert!(
        matches!(t.loader(&["lib"]).load("s.service"), Err(LoadError::Syntax { location, .. }) if location.line == 3)
    );
}
#[test]
fn bad_exec_line_with_dash_is_dropped_with_a_warning() {
    let u = one("[Service]\nExecStart=/a\nExecStartPre=-/x/ y\n").unwrap();
    assert!(u.service.unwrap().exec_start_pre.is_empty());
    assert!(u.warnings[0].message.contains("ExecStartPre= line ignored"));
}

#[test]
fn a_dbus_service_needs_its_bus_name_and_the_bus() {
    let (_, msg) = invalid("[Service]\nType=dbus\nExecStart=/a\n");
    assert!(msg.contains("no D-Bus service name"), "{msg}");
    // BusName= alone makes it Type=dbus, which requires the bus's socket
    // and comes after it; another type with a BusName= does not.
    let u = one("[Service]\nBusName=org.example.A1\nExecStart=/a\n").unwrap();
    let svc = u.service.as_ref().unwrap();
    assert_eq!(svc.service_type, ServiceType::Dbus);
    assert_eq!(svc.bus_name.as_deref(), Some("org.example.A1"));
    assert!(u.unit.after.iter().any(|a| a == "dbus.socket"));
    assert!(u.unit.requires.iter().any(|a| a == "dbus.socket"));
    let u = one("[Service]\nType=notify\nBusName=org.example.A1\nExecStart=/a\n").unwrap();
    assert!(!u.unit.after.iter().any(|a| a == "dbus.socket"));
    assert!(!u.unit.requires.iter().any(|a| a == "dbus.socket"));
}

#[test]
fn an_automount_names_its_mount_point_and_comes_before_its_mount() {
    let t = Tree::new();
    t.write(
        "lib/proc-sys-fs-binfmt_misc.automount",
        "[Automount]\nWhere=/proc/sys/fs/binfmt_misc\nTimeoutIdleSec=30s\n",
    );
    let path = t.write("lib/srv-x.automount", "[Automount]\nWhere=/srv/y\n");
    let loader = t.loader(&["lib"]);
    let u = loader.load("proc-sys-fs-binfmt_misc.automount").unwrap();
    assert_eq!(u.kind, UnitKind::Automount);
    let a = u.automount.as_ref().unwrap();
    assert_eq!(a.where_, std::path::Path::new("/proc/sys/fs/binfmt_misc"));
    assert_eq!(a.timeout_idle, std::time::Duration::from_secs(30));
    assert_eq!(a.directory_mode, 0o755);
    for before in [
        "proc-sys-fs-binfmt_misc.mount",
        "local-fs.target",
        "umount.target",
    ] {
        assert!(u.unit.before.iter().any(|b| b == before), "{before}");
    }
    let err = loader.load("srv-x.automount").unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: Where= setting doesn't match unit name. Refusing.",
            path.display()
        )
    );
}
