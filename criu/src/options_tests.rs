//! Every typed option lands in its `criu_opts` field.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd};
use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::proto::{CriuCgMode, CriuNetworkLockMethod, CriuPreDumpMode};

fn dir() -> File {
    File::open("/").unwrap()
}

#[test]
fn dump_defaults_send_explicit_flags_and_nothing_else() {
    let d = dir();
    let o = DumpOptions::new(42, d.as_fd())
        .to_proto(Request::Dump)
        .unwrap();
    assert_eq!(o.images_dir_fd, d.as_raw_fd());
    assert_eq!(o.pid, Some(42));
    for flag in [
        o.track_mem,
        o.leave_running,
        o.tcp_established,
        o.tcp_skip_in_flight,
        o.ext_unix_sk,
        o.file_locks,
        o.shell_job,
        o.orphan_pts_master,
        o.notify_scripts,
    ] {
        assert_eq!(flag, Some(false));
    }
    assert_eq!(o.log_level, Some(2));
    assert_eq!(o.log_file, None);
    assert_eq!(o.parent_img, None);
    assert_eq!(o.freeze_cgroup, None);
    assert_eq!(o.manage_cgroups, None);
    assert_eq!(o.manage_cgroups_mode, None);
    assert_eq!(o.network_lock, None);
    assert_eq!(o.pre_dump_mode, None);
    assert_eq!(o.ghost_limit, None);
    assert_eq!(o.timeout, None);
    assert!(o.external.is_empty());
    // Restore-only fields stay unset on a dump.
    assert_eq!(o.rst_sibling, None);
    assert!(o.inherit_fd.is_empty());
}

#[test]
fn every_dump_option_lands_in_its_field() {
    let d = dir();
    let mut opts = DumpOptions::new(4242, d.as_fd());
    opts.parent_img = Some(PathBuf::from("../pre-1"));
    opts.track_mem = true;
    opts.leave_running = true;
    opts.tcp_established = true;
    opts.tcp_skip_in_flight = true;
    opts.ext_unix_sk = true;
    opts.file_locks = true;
    opts.shell_job = true;
    opts.orphan_pts_master = true;
    opts.freeze_cgroup = Some(PathBuf::from("/sys/fs/cgroup/redis.service"));
    opts.manage_cgroups = Some(CgroupMode::Full);
    opts.network_lock = Some(NetworkLock::Nftables);
    opts.pre_dump_mode = Some(PreDumpMode::Read);
    opts.ghost_limit = Some(1 << 24);
    opts.timeout = Some(Duration::from_millis(2500));
    opts.external = vec!["mnt[/data]:data".into()];
    opts.log_file = Some("dump.log".into());
    opts.log_level = LogLevel::Debug;
    opts.notify_scripts = true;
    let o = opts.to_proto(Request::PreDump).unwrap();
    assert_eq!(o.pid, Some(4242));
    assert_eq!(o.parent_img.as_deref(), Some("../pre-1"));
    for flag in [
        o.track_mem,
        o.leave_running,
        o.tcp_established,
        o.tcp_skip_in_flight,
        o.ext_unix_sk,
        o.file_locks,
        o.shell_job,
        o.orphan_pts_master,
        o.notify_scripts,
    ] {
        assert_eq!(flag, Some(true));
    }
    assert_eq!(
        o.freeze_cgroup.as_deref(),
        Some("/sys/fs/cgroup/redis.service")
    );
    assert_eq!(o.manage_cgroups, Some(true));
    assert_eq!(o.manage_cgroups_mode, Some(CriuCgMode::Full as i32));
    assert_eq!(o.network_lock, Some(CriuNetworkLockMethod::Nftables as i32));
    assert_eq!(o.pre_dump_mode, Some(CriuPreDumpMode::VmRead as i32));
    assert_eq!(o.ghost_limit, Some(1 << 24));
    assert_eq!(o.timeout, Some(3), "rounded up to whole seconds");
    assert_eq!(o.external, vec!["mnt[/data]:data".to_owned()]);
    assert_eq!(o.log_file.as_deref(), Some("dump.log"));
    assert_eq!(o.log_level, Some(4));
}

#[test]
fn enum_options_map_one_to_one() {
    let d = dir();
    let mut opts = DumpOptions::new(1000, d.as_fd());
    let cases = [
        (CgroupMode::Ignore, CriuCgMode::Ignore, false),
        (CgroupMode::None, CriuCgMode::CgNone, true),
        (CgroupMode::Props, CriuCgMode::Props, true),
        (CgroupMode::Soft, CriuCgMode::Soft, true),
        (CgroupMode::Full, CriuCgMode::Full, true),
        (CgroupMode::Strict, CriuCgMode::Strict, true),
        (CgroupMode::Default, CriuCgMode::Default, true),
    ];
    for (mode, criu, managed) in cases {
        opts.manage_cgroups = Some(mode);
        let o = opts.to_proto(Request::Dump).unwrap();
        assert_eq!(o.manage_cgroups_mode, Some(criu as i32), "{mode:?}");
        assert_eq!(o.manage_cgroups, Some(managed), "{mode:?}");
    }
    opts.network_lock = Some(NetworkLock::Iptables);
    opts.pre_dump_mode = Some(PreDumpMode::Splice);
    let o = opts.to_proto(Request::Dump).unwrap();
    assert_eq!(o.network_lock, Some(CriuNetworkLockMethod::Iptables as i32));
    assert_eq!(o.pre_dump_mode, Some(CriuPreDumpMode::Splice as i32));
    for (level, n) in [
        (LogLevel::Msg, 0),
        (LogLevel::Error, 1),
        (LogLevel::Warn, 2),
        (LogLevel::Info, 3),
        (LogLevel::Debug, 4),
    ] {
        opts.log_level = level;
        assert_eq!(opts.to_proto(Request::Dump).unwrap().log_level, Some(n));
    }
}

#[test]
fn bad_dump_options_are_refused_before_sending() {
    let d = dir();
    let refused = |f: &dyn Fn(&mut DumpOptions<'_>)| {
        let mut opts = DumpOptions::new(100, d.as_fd());
        f(&mut opts);
        match opts.to_proto(Request::Dump) {
            Err(CriuError::InvalidOption { option, .. }) => option,
            other => panic!("accepted: {other:?}"),
        }
    };
    assert_eq!(refused(&|o| o.pid = 0), "pid");
    assert_eq!(refused(&|o| o.pid = -5), "pid");
    assert_eq!(
        refused(&|o| o.log_file = Some("logs/dump.log".into())),
        "log_file"
    );
    assert_eq!(refused(&|o| o.log_file = Some(String::new())), "log_file");
    assert_eq!(refused(&|o| o.log_file = Some("a\0b".into())), "log_file");
    assert_eq!(
        refused(&|o| o.freeze_cgroup = Some("relative/cg".into())),
        "freeze_cgroup"
    );
    assert_eq!(
        refused(&|o| o.parent_img = Some(PathBuf::new())),
        "parent_img"
    );
    {
        use std::os::unix::ffi::OsStrExt;
        let not_utf8 = std::ffi::OsStr::from_bytes(b"../pre-\xff");
        assert_eq!(
            refused(&|o| o.parent_img = Some(PathBuf::from(not_utf8))),
            "parent_img"
        );
    }
}

#[test]
fn huge_timeout_saturates() {
    let d = dir();
    let mut opts = DumpOptions::new(100, d.as_fd());
    opts.timeout = Some(Duration::from_secs(u64::MAX));
    assert_eq!(
        opts.to_proto(Request::Dump).unwrap().timeout,
        Some(u32::MAX)
    );
}

#[test]
fn restore_defaults_make_children_of_the_caller_in_soft_cgroups() {
    let d = dir();
    let o = RestoreOptions::new(d.as_fd()).to_proto().unwrap();
    assert_eq!(o.images_dir_fd, d.as_raw_fd());
    assert_eq!(o.rst_sibling, Some(true));
    assert_eq!(o.manage_cgroups, Some(true));
    assert_eq!(o.manage_cgroups_mode, Some(CriuCgMode::Soft as i32));
    for flag in [
        o.tcp_established,
        o.ext_unix_sk,
        o.file_locks,
        o.shell_job,
        o.notify_scripts,
    ] {
        assert_eq!(flag, Some(false));
    }
    // Nothing says which process: CRIU restores what the images hold.
    assert_eq!(o.pid, None);
    assert_eq!(o.leave_running, None);
    assert_eq!(o.track_mem, None);
    assert_eq!(o.lazy_pages, None);
}

#[test]
fn every_restore_option_lands_in_its_field() {
    let d = dir();
    let f = File::open("/dev/null").unwrap();
    let mut opts = RestoreOptions::new(d.as_fd());
    opts.rst_sibling = false;
    opts.tcp_established = true;
    opts.ext_unix_sk = true;
    opts.file_locks = true;
    opts.shell_job = true;
    opts.manage_cgroups = Some(CgroupMode::Ignore);
    opts.cgroup_roots = vec![CgroupRoot {
        controller: None,
        path: "/relive/redis.service".into(),
    }];
    opts.inherit_fds = vec![InheritFd {
        key: "pipe:[1234]".into(),
        fd: f.as_fd(),
    }];
    opts.external = vec!["veth[eth0]:br0".into()];
    opts.log_file = Some("restore.log".into());
    opts.log_level = LogLevel::Info;
    opts.notify_scripts = true;
    opts.lazy_pages = true;
    let o = opts.to_proto().unwrap();
    assert_eq!(o.rst_sibling, Some(false));
    assert_eq!(o.lazy_pages, Some(true));
    for flag in [
        o.tcp_established,
        o.ext_unix_sk,
        o.file_locks,
        o.shell_job,
        o.notify_scripts,
    ] {
        assert_eq!(flag, Some(true));
    }
    assert_eq!(o.manage_cgroups, Some(false));
    assert_eq!(o.manage_cgroups_mode, Some(CriuCgMode::Ignore as i32));
    assert_eq!(o.cg_root.len(), 1);
    assert_eq!(o.cg_root[0].ctrl, None);
    assert_eq!(o.cg_root[0].path, "/relive/redis.service");
    assert_eq!(o.inherit_fd.len(), 1);
    assert_eq!(o.inherit_fd[0].key, "pipe:[1234]");
    assert_eq!(o.inherit_fd[0].fd, f.as_raw_fd());
    assert_eq!(o.external, vec!["veth[eth0]:br0".to_owned()]);
    assert_eq!(o.log_file.as_deref(), Some("restore.log"));
    assert_eq!(o.log_level, Some(3));
}

#[test]
fn check_options_carry_dir_and_log() {
    let d = dir();
    let mut opts = CheckOptions::new(d.as_fd());
    opts.log_file = Some("check.log".into());
    opts.log_level = LogLevel::Error;
    let o = opts.to_proto().unwrap();
    assert_eq!(o.images_dir_fd, d.as_raw_fd());
    assert_eq!(o.log_file.as_deref(), Some("check.log"));
    assert_eq!(o.log_level, Some(1));
    assert_eq!(o.pid, None);
    opts.log_file = Some("../check.log".into());
    assert!(matches!(
        opts.to_proto(),
        Err(CriuError::InvalidOption {
            request: Request::Check,
            option: "log_file",
            ..
        })
    ));
}
