//! Real Debian 12 unit files load with only the expected warnings.

use relive_units::exec::expand_argv;
use relive_units::sandbox::{ProtectHome, ProtectSystem};
use relive_units::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn loader() -> Loader {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    Loader::with_context([data], SpecifierContext::default())
}

#[test]
fn ssh_service() {
    let u = loader().load("ssh.service").unwrap();
    assert!(u.warnings.is_empty(), "{:?}", u.warnings);
    assert_eq!(
        u.unit.description.as_deref(),
        Some("OpenBSD Secure Shell server")
    );
    assert_eq!(u.unit.documentation, ["man:sshd(8)", "man:sshd_config(5)"]);
    assert_eq!(
        u.unit.after,
        [
            "network.target",
            "auditd.service",
            "sysinit.target",
            "basic.target"
        ]
    );
    let c = &u.unit.conditions[0];
    assert_eq!(
        (c.kind, c.negate, c.value.as_str()),
        (
            ConditionKind::PathExists,
            true,
            "/etc/ssh/sshd_not_to_be_run"
        )
    );
    assert_eq!(u.aliases, ["sshd.service"]);
    assert_eq!(u.install.wanted_by, ["multi-user.target"]);
    assert_eq!(u.live_upgrade.mode, UpgradeMode::Preserve);

    let s = u.service.unwrap();
    assert_eq!(
        (s.service_type, s.notify_access),
        (ServiceType::Notify, NotifyAccess::Main)
    );
    assert_eq!(
        s.environment_files,
        [(PathBuf::from("/etc/default/ssh"), true)]
    );
    assert_eq!(s.exec_start_pre[0].argv, ["/usr/sbin/sshd", "-t"]);
    assert_eq!(s.exec_start[0].argv, ["/usr/sbin/sshd", "-D", "$SSHD_OPTS"]);
    assert_eq!(s.exec_reload.len(), 2);
    assert_eq!(s.exec_reload[1].argv, ["/bin/kill", "-HUP", "$MAINPID"]);
    assert_eq!(
        (s.kill_mode, s.restart),
        (KillMode::Process, RestartPolicy::OnFailure)
    );
    assert_eq!(s.restart_prevent_exit_status, [255]);
    assert_eq!(
        (s.runtime_directory.as_slice(), s.runtime_directory_mode),
        (&["sshd".to_string()][..], 0o755)
    );

    // $SSHD_OPTS from /etc/default/ssh: split into words, or gone if unset.
    let argv = &s.exec_start[0].argv;
    assert_eq!(expand_argv(argv, &|_| None), ["/usr/sbin/sshd", "-D"]);
    let opts = |n: &str| (n == "SSHD_OPTS").then(|| "-o 'Banner none' -4".to_string());
    assert_eq!(
        expand_argv(argv, &opts),
        ["/usr/sbin/sshd", "-D", "-o", "Banner none", "-4"]
    );
}

#[test]
fn redis_server_service() {
    let u = loader().load("redis-server.service").unwrap();
    // Every sandboxing directive of Debian's unit is one relive enforces.
    assert!(u.warnings.is_empty(), "{:?}", u.warnings);
    assert!(u.unenforced.is_empty(), "{:?}", u.unenforced);
    let svc = u.service.as_ref().unwrap();
    assert!(svc.process.no_new_privileges);
    let sb = &svc.sandbox;
    assert_eq!(sb.protect_system, ProtectSystem::Yes);
    assert_eq!(sb.protect_home, ProtectHome::Yes);
    assert!(sb.private_tmp && sb.private_devices && sb.memory_deny_write_execute);
    assert!(sb.protect_kernel_modules && sb.protect_kernel_tunables);
    assert!(sb.protect_control_groups && sb.restrict_realtime);
    assert_eq!(sb.allowed_namespaces, Some(0));
    let rw: Vec<(&str, bool)> = sb
        .read_write_paths
        .iter()
        .map(|p| (p.path.as_str(), p.optional))
        .collect();
    assert_eq!(
        rw,
        [
            ("/var/lib/redis", true),
            ("/var/log/redis", true),
            ("/run/redis", true),
            ("/etc/redis", true)
        ]
    );
    let families = sb.restrict_address_families.as_ref().unwrap();
    assert!(families.allow_list);
    assert_eq!(
        families.families,
        [libc::AF_UNIX, libc::AF_INET, libc::AF_INET6].into()
    );
    assert_eq!(
        u.unit.documentation,
        ["http://redis.io/documentation,", "man:redis-server(1)"]
    );
    assert_eq!(u.aliases, ["redis.service"]);

    let s = u.service.unwrap();
    assert_eq!(s.service_type, ServiceType::Notify);
    assert_eq!(s.exec_start[0].argv.len(), 6);
    assert_eq!(
        s.pid_file,
        Some(PathBuf::from("/run/redis/redis-server.pid"))
    );
    assert_eq!(
        (s.timeout_stop, s.timeout_start),
        (Timeout::Infinity, Timeout::Default)
    );
    assert_eq!(s.restart, RestartPolicy::Always);
    assert_eq!(s.restart_sec, Duration::from_millis(100));
    assert_eq!(
        (s.user.as_deref(), s.group.as_deref()),
        (Some("redis"), Some("redis"))
    );
    assert_eq!((s.runtime_directory_mode, s.umask), (0o2755, 0o007));
    assert_eq!(s.limit_nofile, Some((65535, 65535)));
}
