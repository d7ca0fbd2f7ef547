//! Real Debian 12 unit files load with only the expected warnings.

use relive_units::exec::expand_argv;
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
    let unsupported: Vec<&str> = u
        .warnings
        .iter()
        .map(|w| {
            w.message
                .split('=')
                .next()
                .unwrap_or("")
                .trim_start_matches("unsupported directive ")
        })
        .collect();
    // NoNewPrivileges= is enforced; the sandboxing directives are not yet.
    assert_eq!(u.warnings.len(), 16, "{unsupported:?}");
    assert!(u.service.as_ref().unwrap().process.no_new_privileges);
    assert!(u
        .warnings
        .iter()
        .all(|w| w.message.contains("relive does not implement it")));
    assert_eq!(
        unsupported
            .iter()
            .filter(|k| **k == "ReadWriteDirectories")
            .count(),
        4
    );
    assert_eq!(u.warnings[0].location.line, 18);
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
