//! Loading single units: defaults, values, errors and warnings.

mod common;

use common::{invalid, one, Tree};
use relive_units::*;
use std::path::PathBuf;
use std::time::Duration;

#[test]
fn simple_service_gets_systemd_defaults() {
    let u = one("[Unit]\nDescription=A\n[Service]\nExecStart=/bin/a\n").unwrap();
    assert_eq!(u.name, "a.service");
    assert_eq!(u.kind, UnitKind::Service);
    assert_eq!(u.unit.description.as_deref(), Some("A"));
    let s = u.service.as_ref().unwrap();
    assert_eq!(s.service_type, ServiceType::Simple);
    assert_eq!(s.restart, RestartPolicy::No);
    assert_eq!(s.restart_sec, Duration::from_millis(100));
    assert_eq!(
        (s.timeout_start, s.timeout_stop),
        (Timeout::Default, Timeout::Default)
    );
    assert_eq!(
        (s.kill_mode, s.kill_signal, s.send_sigkill),
        (KillMode::ControlGroup, 15, true)
    );
    assert_eq!((s.umask, s.runtime_directory_mode), (0o022, 0o755));
    assert_eq!(
        (&s.standard_output, &s.standard_error),
        (&OutputTarget::Capture, &OutputTarget::Inherit)
    );
    assert_eq!(s.notify_access, NotifyAccess::None);
    assert_eq!(u.unit.after, ["sysinit.target", "basic.target"]);
    assert_eq!(u.unit.before, ["shutdown.target"]);
    assert_eq!(u.unit.conflicts, ["shutdown.target"]);
    assert!(
        u.unit.requires.is_empty(),
        "no Requires=sysinit.target in relive"
    );
    assert_eq!(
        u.live_upgrade,
        LiveUpgrade {
            mode: UpgradeMode::Preserve,
            priority: 500,
            mode_explicit: false,
            pre_dump: true,
            pre_dump_max_rounds: None,
            rollback_on_restore_failure: false,
        }
    );
    assert!(u.warnings.is_empty(), "{:?}", u.warnings);
}

#[test]
fn no_default_dependencies() {
    let u = one("[Unit]\nDefaultDependencies=no\nAfter=x.service\n[Service]\nExecStart=/bin/a\n")
        .unwrap();
    assert_eq!(u.unit.after, ["x.service"]);
    assert!(u.unit.before.is_empty() && u.unit.conflicts.is_empty());
}

#[test]
fn every_supported_directive() {
    let u = one(
        "[Unit]\nDocumentation=man:a(8) https://x\nRequires=r.service\nWants=w.service w2.service\nBindsTo=b.service\n\
         Conflicts=c.service\nBefore=z.target\nStartLimitIntervalSec=1min 30s\nStartLimitBurst=7\n\
         [Service]\nType=forking\nPIDFile=/var/run/a.pid\nExecStartPre=-/bin/pre\nExecStart=@/bin/a a0 --x\n\
         ExecStartPost=/bin/post\nExecStop=/bin/stop $MAINPID\nExecStopPost=+/bin/stoppost\nExecReload=/bin/kill -HUP $MAINPID\n\
         RemainAfterExit=yes\nRestart=on-abnormal\nRestartSec=5s\nTimeoutSec=90\nTimeoutStopSec=infinity\n\
         RestartPreventExitStatus=255 SIGKILL\nSuccessExitStatus=1 DATAERR SIGUSR1\nKillMode=mixed\nKillSignal=INT\n\
         SendSIGKILL=off\nUser=www\nGroup=www\nSupplementaryGroups=a b\nUMask=0077\nLimitNOFILE=1024:4096\n\
         WorkingDirectory=-/srv\nEnvironment=\"A=1 2\" B=x\nEnvironmentFile=-/etc/default/a\nEnvironmentFile=/etc/a.env\n\
         RuntimeDirectory=a a/sub\nRuntimeDirectoryMode=0750\nRuntimeDirectoryPreserve=yes\n\
         StandardOutput=append:/var/log/a.log\nStandardError=null\nNotifyAccess=all\n\
         [Install]\nWantedBy=multi-user.target\nRequiredBy=x.target\nAlias=b.service\nAlso=c.service\n",
    )
    .unwrap();
    assert_eq!(u.warnings.len(), 1, "{:?}", u.warnings);
    assert!(u.warnings[0].message.contains("/run/a.pid"));
    assert_eq!(u.unit.documentation, ["man:a(8)", "https://x"]);
    assert_eq!(u.unit.wants, ["w.service", "w2.service"]);
    assert_eq!(u.unit.start_limit_interval, Some(Duration::from_secs(90)));
    assert_eq!(u.unit.start_limit_burst, Some(7));
    let s = u.service.unwrap();
    assert_eq!(s.service_type, ServiceType::Forking);
    assert_eq!(s.pid_file, Some(PathBuf::from("/run/a.pid")));
    assert!(s.exec_start_pre[0].ignore_failure);
    assert_eq!(
        (s.exec_start[0].path.as_str(), &s.exec_start[0].argv[..]),
        ("/bin/a", &["a0".to_string(), "--x".to_string()][..])
    );
    assert!(s.exec_stop_post[0].privileged);
    assert_eq!(s.exec_reload[0].argv, ["/bin/kill", "-HUP", "$MAINPID"]);
    assert!(s.remain_after_exit);
    assert_eq!(s.restart, RestartPolicy::OnAbnormal);
    assert_eq!(s.restart_sec, Duration::from_secs(5));
    assert_eq!(s.timeout_start, Timeout::After(Duration::from_secs(90)));
    assert_eq!(s.timeout_stop, Timeout::Infinity);
    assert_eq!(
        (s.restart_prevent_exit_status, s.restart_prevent_signals),
        (vec![255], vec![9])
    );
    assert_eq!(
        (s.success_exit_status, s.success_signals),
        (vec![1, 65], vec![10])
    );
    assert_eq!(
        (s.kill_mode, s.kill_signal, s.send_sigkill),
        (KillMode::Mixed, 2, false)
    );
    assert_eq!(
        (s.user.as_deref(), s.group.as_deref()),
        (Some("www"), Some("www"))
    );
    assert_eq!(s.supplementary_groups, ["a", "b"]);
    assert_eq!(s.umask, 0o077);
    assert_eq!(s.limit_nofile, Some((1024, 4096)));
    assert_eq!(
        (s.working_directory, s.working_directory_optional),
        (Some(PathBuf::from("/srv")), true)
    );
    assert_eq!(
        s.environment,
        [
            ("A".to_string(), "1 2".to_string()),
            ("B".to_string(), "x".to_string())
        ]
    );
    assert_eq!(
        s.environment_files,
        [
            (PathBuf::from("/etc/default/a"), true),
            (PathBuf::from("/etc/a.env"), false)
        ]
    );
    assert_eq!(s.runtime_directory, ["a", "a/sub"]);
    assert_eq!(
        (s.runtime_directory_mode, s.runtime_directory_preserve),
        (0o750, true)
    );
    assert_eq!(
        s.standard_output,
        OutputTarget::Append("/var/log/a.log".into())
    );
    assert_eq!(
        (s.standard_error, s.notify_access),
        (OutputTarget::Null, NotifyAccess::All)
    );
    assert_eq!(u.install.wanted_by, ["multi-user.target"]);
    assert_eq!(u.aliases, ["b.service"]);
}

#[test]
fn service_types_and_exec_start_rules() {
    let notify = one("[Service]\nType=notify\nExecStart=/bin/a\n").unwrap();
    assert_eq!(notify.service.unwrap().notify_access, NotifyAccess::Main);
    // Pings and stored descriptors need the socket too (logind: Type=dbus,
    // WatchdogSec=, FileDescriptorStoreMax=), as under systemd.
    for extra in ["WatchdogSec=3min", "FileDescriptorStoreMax=512"] {
        let text = format!("[Service]\nType=dbus\nBusName=a.b\nExecStart=/bin/a\n{extra}\n");
        let u = one(&text).unwrap();
        assert_eq!(
            u.service.unwrap().notify_access,
            NotifyAccess::Main,
            "{extra}"
        );
    }

    let u =
        one("[Service]\nExecStart=/bin/a\nExecStart=/bin/b\nType=oneshot\nRestart=on-failure\n")
            .unwrap();
    let s = u.service.unwrap();
    assert_eq!(
        (s.exec_start.len(), s.timeout_start),
        (2, Timeout::Infinity)
    );
    assert_eq!(u.live_upgrade.mode, UpgradeMode::Rerun);

    // No ExecStart=: Type defaults to oneshot, which then needs ExecStop= and RemainAfterExit=.
    let u = one("[Service]\nExecStop=/bin/s\nRemainAfterExit=yes\n").unwrap();
    assert_eq!(u.service.unwrap().service_type, ServiceType::Oneshot);
    assert!(invalid("[Service]\nExecStop=/bin/s\n")
        .1
        .contains("RemainAfterExit=yes"));
    assert!(invalid("[Service]\nUser=x\n")
        .1
        .starts_with("Service has no ExecStart=, ExecStop=, or SuccessAction="));
    // SuccessAction= alone is enough (systemd-poweroff.service).
    let u = one("[Unit]\nSuccessAction=poweroff-force\n[Service]\nType=oneshot\n").unwrap();
    assert_eq!(u.warnings.len(), 1);

    let (line, msg) = invalid("[Service]\nType=simple\n");
    assert_eq!(line, 0);
    assert!(
        msg.starts_with("Service has no ExecStart= setting"),
        "{msg}"
    );
    assert!(invalid("[Service]\nExecStart=/a\nExecStart=/b\n")
        .1
        .contains("more than one ExecStart="));
    assert!(
        invalid("[Service]\nType=oneshot\nExecStart=/a\nRestart=always\n")
            .1
            .contains("Restart=")
    );
    // An empty ExecStart= resets the list.
    let u = one("[Service]\nExecStart=/a\nExecStart=\nExecStart=/b\n").unwrap();
    assert_eq!(u.service.unwrap().exec_start[0].path, "/b");
}

#[test]
fn dbus_and_idle_are_types_of_their_own() {
    let u = one("[Service]\nType=dbus\nBusName=a.b\nExecStart=/a\n").unwrap();
    assert_eq!(u.service.unwrap().service_type, ServiceType::Dbus);
    assert!(u.warnings.is_empty(), "{:?}", u.warnings);
    let u = one("[Service]\nType=idle\nExecStart=/a\n").unwrap();
    assert_eq!(u.service.unwrap().service_type, ServiceType::Idle);
    assert!(u.warnings.is_empty(), "{:?}", u.warnings);
}

#[test]
fn terminal_settings_as_a_getty_has_them() {
    let u = one(
        "[Service]\nType=idle\nExecStart=-/sbin/agetty - $TERM\nUtmpIdentifier=ttyS0\n\
         StandardInput=tty\nTTYPath=/dev/ttyS0\nTTYReset=yes\nTTYVHangup=yes\nSendSIGHUP=yes\n\
         IgnoreSIGPIPE=no\nUnsetEnvironment=LANG LANGUAGE\n",
    )
    .unwrap();
    assert!(u.warnings.is_empty(), "{:?}", u.warnings);
    let s = u.service.unwrap();
    assert_eq!(s.standard_input, InputSource::Tty);
    // Output follows the terminal unless set.
    assert_eq!(s.standard_output, OutputTarget::Inherit);
    assert_eq!(
        (
            s.tty.path.to_str(),
            s.tty.reset,
            s.tty.vhangup,
            s.tty.vt_disallocate
        ),
        (Some("/dev/ttyS0"), true, true, false)
    );
    assert_eq!(s.utmp_identifier.as_deref(), Some("ttyS0"));
    assert!(s.send_sighup && !s.ignore_sigpipe);
    assert_eq!(s.unset_environment, ["LANG", "LANGUAGE"]);
}

#[test]
fn unsupported_directives_and_sections_warn_once_each() {
    let u = one(
        "[Unit]\nPartOf=x.service\n[Service]\nExecStart=/a\nIPAddressDeny=any\nAllowedCPUs=0-1\nAllowedCPUs=\n\
         X-Custom=1\n[Foo]\nA=1\nB=2\n[X-Mine]\nC=3\n",
    )
    .unwrap();
    let msgs: Vec<String> = u.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(msgs.len(), 4, "{msgs:?}");
    assert!(
        msgs[1].contains(":5: IPAddressDeny= is not applied (best effort: "),
        "{}",
        msgs[1]
    );
    assert!(
        msgs[2].ends_with(":6: AllowedCPUs= is not implemented by relive: the unit will not start"),
        "{}",
        msgs[2]
    );
    assert!(
        msgs[3].ends_with(":9: unknown section [Foo] ignored"),
        "{}",
        msgs[3]
    );
    // The empty AllowedCPUs= took the request back; IPAddressDeny= stays, best effort.
    let unenforced: Vec<(&str, usize, bool)> = u
        .unenforced
        .iter()
        .map(|e| (e.directive.as_str(), e.location.line, e.best_effort))
        .collect();
    assert_eq!(unenforced, [("IPAddressDeny", 5, true)]);
}

/// Every protection relive does not implement is recorded, so that the
/// unit does not start; none of them is one the loader handles.
#[test]
fn every_unimplemented_protection_is_recorded_as_refused() {
    for key in relive_units::enforcement::NOT_IMPLEMENTED {
        let u = one(&format!("[Service]\nExecStart=/a\n{key}=1\n")).unwrap();
        let refused: Vec<&str> = u
            .unenforced
            .iter()
            .filter(|e| !e.best_effort)
            .map(|e| e.directive.as_str())
            .collect();
        assert_eq!(refused, [*key], "{key}");
    }
}

#[test]
fn sandbox_directives_parse_with_systemds_syntax() {
    use relive_units::sandbox::*;
    let u = one(
        "[Service]\nExecStart=/a\nProtectSystem=strict\nProtectHome=read-only\n\
         ProtectProc=invisible\nProcSubset=pid\nReadWritePaths=-/var/lib/a /run/b/\n\
         InaccessiblePaths=/x\nTemporaryFileSystem=/var:ro,size=1M\n\
         BindReadOnlyPaths=-/etc/a:/etc/b:norbind\n\
         SystemCallFilter=@system-service @clock\nSystemCallFilter=~@clock:EPERM\n\
         SystemCallErrorNumber=EACCES\nRestrictAddressFamilies=~AF_PACKET\n\
         RestrictNamespaces=~user net\nSystemCallArchitectures=native\n",
    )
    .unwrap();
    assert!(u.warnings.is_empty(), "{:?}", u.warnings);
    let sb = u.service.unwrap().sandbox;
    assert_eq!(sb.protect_system, ProtectSystem::Strict);
    assert_eq!(sb.protect_home, ProtectHome::ReadOnly);
    assert_eq!(sb.protect_proc, ProtectProc::Invisible);
    assert!(sb.proc_subset_pid);
    let rw: Vec<(&str, bool)> = sb
        .read_write_paths
        .iter()
        .map(|p| (p.path.as_str(), p.optional))
        .collect();
    assert_eq!(rw, [("/var/lib/a", true), ("/run/b", false)]);
    assert_eq!(sb.temporary_file_systems[0].options, "ro,size=1M");
    let bind = &sb.bind_paths[0];
    assert_eq!(
        (
            bind.source.as_str(),
            bind.target.as_str(),
            bind.optional,
            bind.read_only,
            bind.recursive
        ),
        ("/etc/a", "/etc/b", true, true, false)
    );
    let filter = sb.system_call_filter.unwrap();
    assert!(filter.allow_list);
    // @default is always in an allow-list; the later ~@clock took @clock out.
    assert!(filter.calls.contains_key("execve"));
    assert!(filter.calls.contains_key("openat"));
    assert!(!filter.calls.contains_key("clock_settime"));
    assert_eq!(
        sb.system_call_error,
        Some(SyscallAction::Errno(libc::EACCES))
    );
    let families = sb.restrict_address_families.unwrap();
    assert!(!families.allow_list);
    assert_eq!(families.families, [libc::AF_PACKET].into());
    let all: u64 = NAMESPACES.iter().map(|(_, f)| f).sum();
    let denied = (libc::CLONE_NEWUSER | libc::CLONE_NEWNET) as u64;
    assert_eq!(sb.allowed_namespaces, Some(all & !denied));
    assert_eq!(sb.system_call_architectures, ["native"]);
}

#[test]
fn bad_sandbox_values_name_file_and_line() {
    for (line, why) in [
        ("ProtectSystem=sometimes", "not a boolean"),
        ("SystemCallFilter=@nonsense", "unknown group @nonsense"),
        ("SystemCallErrorNumber=EWHATEVER", "errno"),
        (
            "RestrictAddressFamilies=AF_WHATEVER",
            "unknown address family",
        ),
        ("RestrictNamespaces=moon", "unknown namespace type"),
        ("ReadOnlyPaths=relative/path", "not an absolute"),
        ("SystemCallArchitectures=arm", "unknown architecture"),
    ] {
        let err = one(&format!("[Service]\nExecStart=/a\n{line}\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains(":3: invalid "), "{line}: {err}");
        assert!(err.contains(why), "{line}: {err}");
    }
}

#[test]
fn conditions_with_prefixes_and_reset() {
    let u = one(
        "[Unit]\nConditionPathExists=!/etc/x\nConditionPathExists=|!/y\nConditionPathIsDirectory=| /d\n\
         AssertFileNotEmpty=/f\n[Service]\nExecStart=/a\n",
    )
    .unwrap();
    let c = &u.unit.conditions;
    assert_eq!(c.len(), 4);
    assert_eq!(
        (c[0].kind, c[0].negate, c[0].trigger, c[0].value.clone()),
        (ConditionKind::PathExists, true, false, "/etc/x".to_owned())
    );
    assert!(c[1].negate && c[1].trigger);
    assert_eq!(
        (c[2].kind, c[2].value.as_str()),
        (ConditionKind::PathIsDirectory, "/d")
    );
    assert!(c[3].assert && c[3].kind == ConditionKind::FileNotEmpty);
    assert_eq!(c[3].location.line, 5);
    assert_eq!(c[1].to_string(), "ConditionPathExists=|!/y");
    // Not a path: any value systemd would take.
    let u = one("[Unit]\nConditionVirtualization=!container\nAssertKernelCommandLine=quiet\n[Service]\nExecStart=/a\n").unwrap();
    assert_eq!(
        u.unit
            .conditions
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>(),
        [
            "ConditionVirtualization=!container",
            "AssertKernelCommandLine=quiet"
        ]
    );
    assert!(u.warnings.is_empty(), "{:?}", u.warnings);
    let u = one("[Unit]\nConditionPathExists=/a\nAssertPathExists=/b\nConditionPathExists=\n[Service]\nExecStart=/a\n").unwrap();
    assert_eq!(u.unit.conditions.len(), 1);
    assert!(u.unit.conditions[0].assert);
}

#[test]
fn dependencies_are_not_reset_by_empty_values() {
    let u =
        one("[Unit]\nWants=a.service\nWants=\nWants=b.service\n[Service]\nExecStart=/a\n").unwrap();
    assert_eq!(u.unit.wants, ["a.service", "b.service"]);
}

#[test]
fn specifiers_everywhere_but_live_upgrade() {
    let t = Tree::new();
    t.write(
        "lib/web@.service",
        "[Unit]\nDescription=Web %i on %H\n[Service]\nExecStart=/bin/web --name=%n %I\nUser=%i\n\
         Environment=INST=%I\nRuntimeDirectory=web/%i\n[X-LiveUpgrade]\nPriority=900\n",
    );
    let u = t.loader(&["lib"]).load("web@a\\x20b.service").unwrap();
    assert_eq!(
        u.unit.description.as_deref(),
        Some("Web a\\x20b on host.example")
    );
    let s = u.service.unwrap();
    assert_eq!(
        s.exec_start[0].argv,
        ["/bin/web", "--name=web@a\\x20b.service", "a b"]
    );
    assert_eq!(s.environment[0].1, "a b");
    assert_eq!(u.live_upgrade.priority, 900);
}

/// systemd.unit(5) of Debian 12's systemd 252: %u "is the name of the
/// user running the service manager instance ... Note that this setting
/// is not influenced by the User= setting". So are %U %g %G %h %s: for
/// the system manager, root's, whatever User= says.
#[test]
fn user_specifiers_name_the_manager_not_user_equals() {
    let u = one("[Service]\nUser=nobody\nGroup=nogroup\n\
         ExecStart=/bin/echo %u %U %g %G %h %s\n")
    .unwrap();
    assert_eq!(
        u.service.unwrap().exec_start[0].argv,
        ["/bin/echo", "root", "0", "root", "0", "/root", "/bin/sh"]
    );
}

#[test]
fn live_upgrade_defaults_and_explicit() {
    let u = one("[Service]\nExecStart=/a\n[X-LiveUpgrade]\nMode=restart\nPriority=0\n").unwrap();
    assert_eq!(
        u.live_upgrade,
        LiveUpgrade {
            mode: UpgradeMode::Restart,
            priority: 0,
            mode_explicit: true,
            pre_dump: true,
            pre_dump_max_rounds: None,
            rollback_on_restore_failure: false,
        }
    );
    let u =
        one("[Service]\nExecStart=/a\n[X-LiveUpgrade]\nPreDump=no\nPreDumpMaxRounds=3\n").unwrap();
    assert!(!u.live_upgrade.pre_dump);
    assert_eq!(u.live_upgrade.pre_dump_max_rounds, Some(3));
    let u = one("[Service]\nExecStart=/a\n[X-LiveUpgrade]\nOnRestoreFailure=rollback\n").unwrap();
    assert!(u.live_upgrade.rollback_on_restore_failure);
    let t = Tree::new();
    t.write("lib/x.target", "[Unit]\nDescription=X\n");
    t.write(
        "lib/y.slice",
        "[Unit]\nDescription=Y\n[Slice]\nCPUWeight=10\n[Install]\nWantedBy=local-fs.target\n",
    );
    let l = t.loader(&["lib"]);
    let x = l.load("x.target").unwrap();
    assert_eq!(
        (x.kind, x.live_upgrade.mode, x.service.is_none()),
        (UnitKind::Target, UpgradeMode::Restart, true)
    );
    assert_eq!(x.unit.before, ["shutdown.target"]);
    let y = l.load("y.slice").unwrap();
    assert_eq!(y.kind, UnitKind::Slice);
    assert!(y.warnings.is_empty(), "{:?}", y.warnings);
    let weight = y.slice_section.as_ref().map(|s| s.resources.cpu_weight);
    assert_eq!(weight, Some(Some(10)));
    assert_eq!(y.live_upgrade.mode, UpgradeMode::Restart);
    assert_eq!(y.install.wanted_by, ["local-fs.target"]);
}

/// relive starts a preserved postgres cluster in an IPC namespace of its
/// own (its System V segment crosses the kexec only with it); restarted,
/// the cluster starts as its unit says.
#[test]
fn a_preserved_postgres_cluster_gets_its_own_ipc_namespace() {
    let t = Tree::new();
    let unit = "[Service]\nType=forking\nExecStart=/usr/bin/pg_ctlcluster --skip-systemctl-redirect %i start\n";
    t.write("lib/postgresql@.service", unit);
    t.write(
        "etc/postgresql@16-old.service.d/restart.conf",
        "[X-LiveUpgrade]\nMode=restart\n",
    );
    t.write("lib/other@.service", unit);
    let l = t.loader(&["etc", "lib"]);
    let private_ipc = |name: &str| l.load(name).unwrap().service.unwrap().sandbox.private_ipc;
    assert!(private_ipc("postgresql@15-main.service"));
    assert!(!private_ipc("postgresql@16-old.service"));
    assert!(!private_ipc("other@15-main.service"));
}

#[test]
fn journald_socket_as_debian_ships_it() {
    let t = Tree::new();
    t.write(
        "lib/systemd-journald.socket",
        "[Unit]\nDescription=Journal Socket\nDefaultDependencies=no\nBefore=sockets.target\n\
         IgnoreOnIsolate=yes\n[Socket]\nListenDatagram=/run/systemd/journal/socket\n\
         ListenStream=/run/systemd/journal/stdout\nPassCredentials=yes\nPassSecurity=yes\n\
         ReceiveBuffer=8M\nService=systemd-journald.service\nSocketMode=0666\nTimestamping=us\n",
    );
    let u = t.loader(&["lib"]).load("systemd-journald.socket").unwrap();
    assert_eq!(u.kind, UnitKind::Socket);
    let s = u.socket.unwrap();
    assert_eq!(
        s.listen
            .iter()
            .map(|l| l.listen.clone())
            .collect::<Vec<_>>(),
        [
            socket::Listen::Socket {
                socket_type: socket::SocketType::Datagram,
                address: socket::SocketAddress::Unix("/run/systemd/journal/socket".into()),
            },
            socket::Listen::Socket {
                socket_type: socket::SocketType::Stream,
                address: socket::SocketAddress::Unix("/run/systemd/journal/stdout".into()),
            },
        ]
    );
    assert!(s.pass_credentials && s.pass_security && !s.accept);
    assert_eq!(s.receive_buffer, Some(8 << 20));
    assert_eq!(s.service.as_deref(), Some("systemd-journald.service"));
    assert_eq!(s.timestamping, socket::Timestamping::Microseconds);
    // DefaultDependencies=no: only its own ordering, and the service's.
    assert_eq!(
        u.unit.before,
        ["sockets.target", "systemd-journald.service"]
    );
    assert!(u.unit.after.is_empty());
}

#[test]
fn socket_defaults_and_its_service() {
    let t = Tree::new();
    t.write("lib/ssh.socket", "[Socket]\nListenStream=22\nAccept=no\n");
    t.write(
        "lib/echo.socket",
        "[Socket]\nListenStream=127.0.0.1:7\nAccept=yes\n",
    );
    let ssh = t.loader(&["lib"]).load("ssh.socket").unwrap();
    let s = ssh.socket.as_ref().unwrap();
    assert_eq!(s.service.as_deref(), Some("ssh.service"));
    assert_eq!(
        (s.socket_mode, s.directory_mode, s.backlog),
        (0o666, 0o755, i32::MAX as u32)
    );
    assert_eq!((s.max_connections, s.trigger_limit_burst), (64, 20));
    assert_eq!(ssh.unit.after, ["sysinit.target"]);
    assert_eq!(
        ssh.unit.before,
        ["ssh.service", "sockets.target", "shutdown.target"]
    );
    assert_eq!(ssh.unit.conflicts, ["shutdown.target"]);
    let echo = t.loader(&["lib"]).load("echo.socket").unwrap();
    let s = echo.socket.as_ref().unwrap();
    assert_eq!(s.service.as_deref(), Some("echo@.service"));
    assert_eq!(s.trigger_limit_burst, 200);
    assert!(!echo.unit.before.contains(&"echo@.service".to_string()));
}

#[test]
fn bad_sockets_are_refused_with_file_and_line() {
    let t = Tree::new();
    for (name, text, line, needle) in [
        (
            "a.socket",
            "[Socket]\nListenStream=localhost:80\n",
            2,
            "ListenStream=",
        ),
        (
            "b.socket",
            "[Socket]\nAccept=yes\nListenDatagram=/run/b\n",
            0,
            "non-accepting",
        ),
        (
            "c.socket",
            "[Unit]\nDescription=c\n",
            0,
            "no Listen setting",
        ),
        ("d.socket", "[Socket]\nListenStream=0\n", 2, "port 0"),
        (
            "e.socket",
            "[Socket]\nListenNetlink=nosuch 1\n",
            2,
            "netlink",
        ),
    ] {
        t.write(&format!("lib/{name}"), text);
        match t.loader(&["lib"]).load(name) {
            Err(LoadError::Invalid { location, message }) => {
                assert_eq!(location.line, line, "{name}: {message}");
                assert!(location.file.ends_with(name), "{name}: {location}");
                assert!(message.contains(needle), "{name}: {message}");
            }
            other => panic!("{name}: expected Invalid, got {other:?}"),
        }
    }
}

#[test]
fn timers_as_debian_ships_them() {
    let t = Tree::new();
    t.write(
        "lib/apt-daily.timer",
        "[Unit]\nDescription=Daily apt download activities\n[Timer]\n\
         OnCalendar=*-*-* 6,18:00\nRandomizedDelaySec=12h\nPersistent=true\n\
         [Install]\nWantedBy=timers.target\n",
    );
    t.write(
        "lib/systemd-tmpfiles-clean.timer",
        "[Unit]\nDefaultDependencies=no\nBefore=timers.target\n[Timer]\n\
         OnBootSec=15min\nOnUnitActiveSec=1d\n",
    );
    let apt = t.loader(&["lib"]).load("apt-daily.timer").unwrap();
    assert_eq!(apt.kind, UnitKind::Timer);
    let timer = apt.timer.as_ref().unwrap();
    assert_eq!(timer.unit.as_deref(), Some("apt-daily.service"));
    assert!(timer.persistent && timer.remain_after_elapse);
    assert_eq!(timer.randomized_delay, Duration::from_secs(12 * 3600));
    assert_eq!(timer.calendar[0].text, "*-*-* 6,18:00");
    assert_eq!(
        apt.unit.after,
        ["sysinit.target", "time-set.target", "time-sync.target"]
    );
    assert_eq!(
        apt.unit.before,
        ["apt-daily.service", "timers.target", "shutdown.target"]
    );
    let clean = t
        .loader(&["lib"])
        .load("systemd-tmpfiles-clean.timer")
        .unwrap();
    assert_eq!(
        clean.timer.unwrap().monotonic,
        [
            (timer::TimerBase::Boot, Duration::from_secs(900)),
            (timer::TimerBase::UnitActive, Duration::from_secs(86400)),
        ]
    );
}

#[test]
fn a_bad_calendar_is_refused_at_its_line() {
    let t = Tree::new();
    t.write(
        "lib/bad.timer",
        "[Timer]\nOnBootSec=5\nOnCalendar=*-13-01\n",
    );
    t.write("lib/none.timer", "[Timer]\nPersistent=yes\n");
    match t.loader(&["lib"]).load("bad.timer") {
        Err(LoadError::Invalid { location, message }) => {
            assert_eq!(location.line, 3);
            assert!(message.contains("month out of range"), "{message}");
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    match t.loader(&["lib"]).load("none.timer") {
        Err(LoadError::Invalid { message, .. }) => {
            assert_eq!(message, "Timer unit lacks value setting. Refusing.")
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn device_units_come_from_their_names_and_escapes_stay_in_names() {
    let t = Tree::new();
    t.write(
        "lib/a.service",
        "[Unit]\nBindsTo=dev-disk-by\\x2duuid-ab\\x2dcd.device\n[Service]\nExecStart=/a\n",
    );
    let l = t.loader(&["lib"]);
    let a = l.load("a.service").unwrap();
    assert_eq!(a.unit.binds_to, ["dev-disk-by\\x2duuid-ab\\x2dcd.device"]);
    let dev = l.load("dev-disk-by\\x2duuid-ab\\x2dcd.device").unwrap();
    assert_eq!(dev.kind, UnitKind::Device);
    assert_eq!(
        dev.unit.description.as_deref(),
        Some("/dev/disk/by-uuid/ab-cd")
    );
    assert!(matches!(
        l.load("nothing.socket"),
        Err(LoadError::NotFound { .. })
    ));
}

#[test]
fn path_units_as_debian_ships_them() {
    let t = Tree::new();
    t.write(
        "lib/systemd-ask-password-wall.path",
        "[Unit]\nDefaultDependencies=no\nBefore=paths.target\n[Path]\n\
         DirectoryNotEmpty=/run/systemd/ask-password\nMakeDirectory=yes\n",
    );
    t.write("lib/none.path", "[Path]\nMakeDirectory=yes\n");
    let l = t.loader(&["lib"]);
    let u = l.load("systemd-ask-password-wall.path").unwrap();
    assert_eq!(u.kind, UnitKind::Path);
    let p = u.path.unwrap();
    assert_eq!(p.unit.as_deref(), Some("systemd-ask-password-wall.service"));
    assert!(p.make_directory);
    assert_eq!(p.specs[0].condition, path::PathCondition::DirectoryNotEmpty);
    assert!(u.warnings.is_empty(), "{:?}", u.warnings);
    match l.load("none.path") {
        Err(LoadError::Invalid { message, .. }) => {
            assert_eq!(message, "Path unit lacks path setting. Refusing.")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn process_attributes_are_read_and_bad_values_refused_at_their_line() {
    use relive_units::process::{CpuPolicy, IoClass, Rlimit};
    let t = Tree::new();
    t.write(
        "lib/p.service",
        "[Service]\nExecStart=/bin/true\nNice=5\nOOMScoreAdjust=-900\nLimitCORE=infinity\n\
         LimitMEMLOCK=64K:1M\nLimitCORE=0\nIOSchedulingClass=idle\nCPUSchedulingPolicy=fifo\n\
         CPUSchedulingPriority=10\nNoNewPrivileges=yes\n",
    );
    let p = t
        .loader(&["lib"])
        .load("p.service")
        .unwrap()
        .service
        .unwrap()
        .process;
    assert_eq!((p.nice, p.oom_score_adjust), (Some(5), Some(-900)));
    // A later assignment of the same limit replaces the earlier one.
    assert_eq!(
        p.limits,
        [(Rlimit::Memlock, 64 << 10, 1 << 20), (Rlimit::Core, 0, 0)]
    );
    assert_eq!(p.io_class, Some(IoClass::Idle));
    assert_eq!(
        (p.cpu_policy, p.cpu_priority),
        (Some(CpuPolicy::Fifo), Some(10))
    );
    assert!(p.no_new_privileges);
    for (name, text) in [
        ("a.service", "[Service]\nExecStart=/bin/true\nNice=20\n"),
        (
            "b.service",
            "[Service]\nExecStart=/bin/true\nOOMScoreAdjust=-1001\n",
        ),
        (
            "c.service",
            "[Service]\nExecStart=/bin/true\nLimitNPROC=20:10\n",
        ),
        (
            "d.service",
            "[Service]\nExecStart=/bin/true\nIOSchedulingClass=urgent\n",
        ),
        (
            "e.service",
            "[Service]\nExecStart=/bin/true\nNoNewPrivileges=maybe\n",
        ),
    ] {
        t.write(&format!("lib/{name}"), text);
        match t.loader(&["lib"]).load(name) {
            Err(LoadError::Invalid { location, message }) => {
                assert_eq!(location.line, 3, "{name}: {message}");
                assert!(location.file.ends_with(name), "{name}: {location}");
            }
            other => panic!("{name}: expected Invalid, got {other:?}"),
        }
    }
}

#[test]
fn exec_directories_are_read_with_their_modes() {
    use relive_units::directories::DirectoryKind;
    let t = Tree::new();
    t.write(
        "lib/d.service",
        "[Service]\nExecStart=/bin/true\nStateDirectory=d d/sub\nLogsDirectory=d\n\
         LogsDirectoryMode=0750\nConfigurationDirectory=d\nCacheDirectory=x\nCacheDirectory=\n",
    );
    let d = t
        .loader(&["lib"])
        .load("d.service")
        .unwrap()
        .service
        .unwrap()
        .directories;
    assert_eq!(d.get(DirectoryKind::State).names, ["d", "d/sub"]);
    assert_eq!(
        (
            d.get(DirectoryKind::Logs).names.as_slice(),
            d.get(DirectoryKind::Logs).mode
        ),
        (["d".to_string()].as_slice(), 0o750)
    );
    assert_eq!(d.get(DirectoryKind::Configuration).mode, 0o755);
    assert!(
        d.get(DirectoryKind::Cache).names.is_empty(),
        "an empty value resets"
    );
    t.write(
        "lib/e.service",
        "[Service]\nExecStart=/bin/true\nStateDirectory=../etc\n",
    );
    match t.loader(&["lib"]).load("e.service") {
        Err(LoadError::Invalid { location, message }) => {
            assert_eq!(location.line, 3, "{message}");
            assert!(message.contains("relative, normalized"), "{message}");
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn resource_directives_become_cgroup_settings() {
    let u = one(
        "[Service]\nExecStart=/a\nMemoryMax=64M\nMemoryHigh=50%\nMemoryLow=infinity\n\
         CPUWeight=idle\nCPUQuota=150%\nIOWeight=200\nTasksMax=12.5%\n",
    )
    .unwrap();
    assert!(u.warnings.is_empty(), "{:?}", u.warnings);
    let r = u.service.unwrap().resources;
    let files: Vec<(&str, String)> = r
        .cgroup_settings(1 << 30, 8000)
        .into_iter()
        .map(|s| (s.file, s.value))
        .collect();
    assert_eq!(
        files,
        [
            ("memory.low", "max".to_string()),
            ("memory.high", (1u64 << 29).to_string()),
            ("memory.max", (64u64 << 20).to_string()),
            ("cpu.idle", "1".to_string()),
            ("cpu.max", "150000 100000".to_string()),
            ("io.weight", "default 200".to_string()),
            ("pids.max", "1000".to_string()),
        ]
    );
    for bad in [
        "MemoryMax=lots",
        "CPUWeight=0",
        "CPUQuota=1.234%",
        "TasksMax=200%",
    ] {
        let err = one(&format!("[Service]\nExecStart=/a\n{bad}\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains(":3: invalid "), "{bad}: {err}");
    }
}

/// systemd.exec(5): an empty CapabilityBoundingSet= is the empty set.
#[test]
fn an_empty_capability_bounding_set_holds_no_capability() {
    let u = one(
        "[Service]\nExecStart=/a\nCapabilityBoundingSet=CAP_NET_ADMIN\nCapabilityBoundingSet=\n",
    )
    .unwrap();
    assert_eq!(u.service.unwrap().capability_bounding_set, Some(0));
}

/// Debian 13's systemd 257 units: an ordering against a template is
/// ignored with a warning, as systemd does; PrivateTmp=disconnected is
/// a private /tmp (relive's always is a tmpfs of its own).
#[test]
fn systemd_257_forms_load() {
    let u = one(
        "[Unit]\nBefore=sshd@.service ssh.service\n[Service]\nExecStart=/a\nPrivateTmp=disconnected\n",
    )
    .unwrap();
    assert_eq!(u.unit.before, ["ssh.service", "shutdown.target"]);
    let msgs: Vec<String> = u.warnings.iter().map(|w| w.to_string()).collect();
    assert!(
        msgs.iter()
            .any(|m| m.contains("Before=: 'sshd@.service' is a template, not a unit: ignored")),
        "{msgs:?}"
    );
    assert!(u.service.unwrap().sandbox.private_tmp);
}
