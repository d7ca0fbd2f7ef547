//! Typed options for CHECK, PRE_DUMP/DUMP and RESTORE, and their mapping to
//! `criu_opts`.
//!
//! Every flag is sent explicitly (true or false) so that a CRIU config file
//! on the machine (`/etc/criu/default.conf`) cannot change what relive asked
//! for behind its back; optional settings are sent only when set, leaving
//! CRIU's own default otherwise.
//!
//! The images directory is passed as an open descriptor: in RPC mode CRIU
//! does not receive it through the socket but opens
//! `/proc/<client pid>/fd/<images_dir_fd>`, where the client pid is the
//! socket's SO_PEERCRED (the process that made the socket pair). So the
//! descriptor must stay open in the caller until the answer arrives, and
//! CRIU must be able to see the caller in its /proc (same pid namespace,
//! ptrace access: root). Any open descriptor of the directory will do, as
//! CRIU reopens it by that path. CRIU then works in that directory, which
//! must be writable even for a restore: the log file (`log_file`, no `/`
//! allowed, default `criu.log`) and `parent_img` are relative to it.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::{CriuError, Request};
use super::proto::{self, CriuOpts};

/// CRIU's log verbosity (`-v0` .. `-v4`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogLevel {
    /// Only messages CRIU always prints.
    Msg,
    Error,
    /// CRIU's default.
    #[default]
    Warn,
    Info,
    /// What a failed dump or restore needs to be understood.
    Debug,
}

impl LogLevel {
    fn as_criu(self) -> i32 {
        match self {
            LogLevel::Msg => 0,
            LogLevel::Error => 1,
            LogLevel::Warn => 2,
            LogLevel::Info => 3,
            LogLevel::Debug => 4,
        }
    }
}

/// How CRIU handles cgroups (`--manage-cgroups=MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupMode {
    Ignore,
    None,
    Props,
    /// Put the tasks back into their cgroups, creating missing ones; set
    /// properties only on the cgroups CRIU created. relive recreates the
    /// unit's cgroup before a restore, so its own settings stay.
    Soft,
    Full,
    Strict,
    Default,
}

impl CgroupMode {
    fn as_criu(self) -> proto::CriuCgMode {
        match self {
            CgroupMode::Ignore => proto::CriuCgMode::Ignore,
            CgroupMode::None => proto::CriuCgMode::CgNone,
            CgroupMode::Props => proto::CriuCgMode::Props,
            CgroupMode::Soft => proto::CriuCgMode::Soft,
            CgroupMode::Full => proto::CriuCgMode::Full,
            CgroupMode::Strict => proto::CriuCgMode::Strict,
            CgroupMode::Default => proto::CriuCgMode::Default,
        }
    }
}

/// How established TCP connections are locked during a dump. Fixed at dump
/// time: CRIU 3.17 has no "skip". With nftables CRIU makes a table
/// `inet CRIU-<root pid>`, which relive must re-create after a kexec before
/// the address comes up (see LAB.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkLock {
    Iptables,
    Nftables,
}

/// How a pre-dump reads memory (`--pre-dump-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreDumpMode {
    /// vmsplice the pages into pipes (CRIU's default): fast, but pins the
    /// task's memory until it is written out.
    Splice,
    /// process_vm_readv: no pinning, a little slower.
    Read,
}

/// Options of a PRE_DUMP or DUMP request.
#[derive(Debug, Clone)]
pub struct DumpOptions<'fd> {
    /// Root of the process tree to dump. Must be > 0: without it CRIU
    /// dumps the requesting process, which is relive itself.
    pub pid: i32,
    /// The directory the images are written to, open in this process.
    pub images_dir: BorrowedFd<'fd>,
    /// The previous (pre-)dump's images directory, relative to
    /// `images_dir` (e.g. `../pre-1`), for an incremental dump
    /// (`--prev-images-dir`).
    pub parent_img: Option<PathBuf>,
    /// Track dirty memory (soft-dirty) so the next dump writes only pages
    /// changed since this one.
    pub track_mem: bool,
    /// Let the tasks run on after the dump instead of killing them.
    pub leave_running: bool,
    pub tcp_established: bool,
    /// Dump established connections even with data in flight (dropped).
    pub tcp_skip_in_flight: bool,
    /// Allow unix sockets whose peer is outside the tree.
    pub ext_unix_sk: bool,
    pub file_locks: bool,
    pub shell_job: bool,
    /// Pass a pty master of an orphaned pts to the client (it arrives with
    /// the "orphan-pts-master" notification).
    pub orphan_pts_master: bool,
    /// Full path of the tree's cgroup v2 directory (e.g.
    /// `/sys/fs/cgroup/x.service`). Needed when relive froze the cgroup
    /// itself: without it a dump of a frozen tree hangs (LAB.md).
    pub freeze_cgroup: Option<PathBuf>,
    pub manage_cgroups: Option<CgroupMode>,
    pub network_lock: Option<NetworkLock>,
    /// Only read by PRE_DUMP.
    pub pre_dump_mode: Option<PreDumpMode>,
    /// Largest deleted-but-open file CRIU copies into the images, in bytes.
    pub ghost_limit: Option<u32>,
    /// CRIU's own limit on freezing the tree (`--timeout`), whole seconds,
    /// rounded up.
    pub timeout: Option<Duration>,
    /// `--external` entries, e.g. `mnt[/path]:key`, passed through.
    pub external: Vec<String>,
    /// Log file name inside `images_dir` (no `/`).
    pub log_file: Option<String>,
    pub log_level: LogLevel,
    /// Ask CRIU for NOTIFY messages at each script hook ("network-lock",
    /// "post-dump" ...); the request's callback sees them.
    pub notify_scripts: bool,
}

impl<'fd> DumpOptions<'fd> {
    /// Dump `pid`'s tree into `images_dir`, everything else off/default.
    pub fn new(pid: i32, images_dir: BorrowedFd<'fd>) -> DumpOptions<'fd> {
        DumpOptions {
            pid,
            images_dir,
            parent_img: None,
            track_mem: false,
            leave_running: false,
            tcp_established: false,
            tcp_skip_in_flight: false,
            ext_unix_sk: false,
            file_locks: false,
            shell_job: false,
            orphan_pts_master: false,
            freeze_cgroup: None,
            manage_cgroups: None,
            network_lock: None,
            pre_dump_mode: None,
            ghost_limit: None,
            timeout: None,
            external: Vec::new(),
            log_file: None,
            log_level: LogLevel::default(),
            notify_scripts: false,
        }
    }

    pub(crate) fn to_proto(&self, request: Request) -> Result<CriuOpts, CriuError> {
        if self.pid <= 0 {
            return Err(invalid(
                request,
                "pid",
                format!("{} is not a process", self.pid),
            ));
        }
        let mut o = base(
            request,
            self.images_dir,
            self.log_file.as_deref(),
            self.log_level,
            self.notify_scripts,
        )?;
        o.pid = Some(self.pid);
        o.parent_img = self
            .parent_img
            .as_deref()
            .map(|p| utf8(request, "parent_img", p))
            .transpose()?;
        o.track_mem = Some(self.track_mem);
        o.leave_running = Some(self.leave_running);
        o.tcp_established = Some(self.tcp_established);
        o.tcp_skip_in_flight = Some(self.tcp_skip_in_flight);
        o.ext_unix_sk = Some(self.ext_unix_sk);
        o.file_locks = Some(self.file_locks);
        o.shell_job = Some(self.shell_job);
        o.orphan_pts_master = Some(self.orphan_pts_master);
        if let Some(cg) = &self.freeze_cgroup {
            if !cg.is_absolute() {
                // CRIU would resolve it inside the images directory.
                return Err(invalid(
                    request,
                    "freeze_cgroup",
                    "not an absolute path".into(),
                ));
            }
            o.freeze_cgroup = Some(utf8(request, "freeze_cgroup", cg)?);
        }
        set_cgroup_mode(&mut o, self.manage_cgroups);
        if let Some(lock) = self.network_lock {
            o.set_network_lock(match lock {
                NetworkLock::Iptables => proto::CriuNetworkLockMethod::Iptables,
                NetworkLock::Nftables => proto::CriuNetworkLockMethod::Nftables,
            });
        }
        if let Some(mode) = self.pre_dump_mode {
            o.set_pre_dump_mode(match mode {
                PreDumpMode::Splice => proto::CriuPreDumpMode::Splice,
                PreDumpMode::Read => proto::CriuPreDumpMode::VmRead,
            });
        }
        o.ghost_limit = self.ghost_limit;
        o.timeout = self.timeout.map(whole_seconds);
        o.external = self.external.clone();
        Ok(o)
    }
}

/// A cgroup root remap for restore (`--cgroup-root [CTRL:]PATH`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupRoot {
    /// A v1 controller, or None for all (the only case on cgroup v2).
    pub controller: Option<String>,
    pub path: String,
}

/// A descriptor CRIU hands to the restored tree in place of an external
/// resource (`--inherit-fd fd[N]:KEY`), e.g. KEY `pipe:[12345]`.
#[derive(Debug, Clone)]
pub struct InheritFd<'fd> {
    pub key: String,
    /// Must have been passed to `Criu::start_keeping`, so that CRIU has it
    /// at the same number.
    pub fd: BorrowedFd<'fd>,
}

/// Options of a RESTORE request.
#[derive(Debug, Clone)]
pub struct RestoreOptions<'fd> {
    /// The directory holding the images, open in this process.
    pub images_dir: BorrowedFd<'fd>,
    /// Make the restored root a child of the caller (CLONE_PARENT from
    /// `criu swrk`) rather than of CRIU. On by default: relive supervises
    /// and reaps what it restores.
    pub rst_sibling: bool,
    pub tcp_established: bool,
    pub ext_unix_sk: bool,
    pub file_locks: bool,
    pub shell_job: bool,
    /// Soft by default: the tasks go back into the unit's cgroup, which
    /// relive recreated before the restore.
    pub manage_cgroups: Option<CgroupMode>,
    pub cgroup_roots: Vec<CgroupRoot>,
    pub inherit_fds: Vec<InheritFd<'fd>>,
    /// `--external` entries, passed through.
    pub external: Vec<String>,
    /// `--root`: where a dumped mount namespace is rebuilt (CRIU
    /// requires it for one).
    pub root: Option<PathBuf>,
    pub log_file: Option<String>,
    pub log_level: LogLevel,
    /// Ask CRIU for NOTIFY messages at each script hook ("setup-namespaces",
    /// "post-restore" with the root pid, "network-unlock" ...).
    pub notify_scripts: bool,
    /// `--join-ns time:PATH`: the restored tree enters this time
    /// namespace instead of one CRIU makes for it.
    pub join_time_ns: Option<PathBuf>,
    /// `--lazy-pages`: the pages a dump marked lazy are left to CRIU's
    /// lazy-pages daemon, which must listen in the work directory (the
    /// images directory) before the restore starts.
    pub lazy_pages: bool,
}

impl<'fd> RestoreOptions<'fd> {
    /// Restore from `images_dir` as a child of the caller into the saved
    /// cgroups (soft); everything else off/default.
    pub fn new(images_dir: BorrowedFd<'fd>) -> RestoreOptions<'fd> {
        RestoreOptions {
            images_dir,
            rst_sibling: true,
            tcp_established: false,
            ext_unix_sk: false,
            file_locks: false,
            shell_job: false,
            manage_cgroups: Some(CgroupMode::Soft),
            cgroup_roots: Vec::new(),
            inherit_fds: Vec::new(),
            external: Vec::new(),
            root: None,
            log_file: None,
            log_level: LogLevel::default(),
            notify_scripts: false,
            join_time_ns: None,
            lazy_pages: false,
        }
    }

    pub(crate) fn to_proto(&self) -> Result<CriuOpts, CriuError> {
        let request = Request::Restore;
        let mut o = base(
            request,
            self.images_dir,
            self.log_file.as_deref(),
            self.log_level,
            self.notify_scripts,
        )?;
        o.rst_sibling = Some(self.rst_sibling);
        o.root = self
            .root
            .as_deref()
            .map(|p| utf8(request, "root", p))
            .transpose()?;
        o.tcp_established = Some(self.tcp_established);
        o.ext_unix_sk = Some(self.ext_unix_sk);
        o.file_locks = Some(self.file_locks);
        o.shell_job = Some(self.shell_job);
        o.lazy_pages = self.lazy_pages.then_some(true);
        set_cgroup_mode(&mut o, self.manage_cgroups);
        o.cg_root = self
            .cgroup_roots
            .iter()
            .map(|r| proto::CgroupRoot {
                ctrl: r.controller.clone(),
                path: r.path.clone(),
            })
            .collect();
        for i in &self.inherit_fds {
            if i.key.is_empty() {
                return Err(invalid(request, "inherit_fds", "empty key".into()));
            }
        }
        o.inherit_fd = self
            .inherit_fds
            .iter()
            .map(|i| proto::InheritFd {
                key: i.key.clone(),
                fd: i.fd.as_raw_fd(),
            })
            .collect();
        o.external = self.external.clone();
        if let Some(path) = &self.join_time_ns {
            o.join_ns.push(proto::JoinNamespace {
                ns: "time".into(),
                ns_file: utf8(request, "join_time_ns", path)?,
                extra_opt: None,
            });
        }
        Ok(o)
    }
}

/// Options of a CHECK request. CRIU 3.17.1 sets up its working directory
/// and log for CHECK as for a dump, so it needs an images directory too.
#[derive(Debug, Clone)]
pub struct CheckOptions<'fd> {
    /// Where CRIU writes its log.
    pub images_dir: BorrowedFd<'fd>,
    pub log_file: Option<String>,
    pub log_level: LogLevel,
}

impl<'fd> CheckOptions<'fd> {
    pub fn new(images_dir: BorrowedFd<'fd>) -> CheckOptions<'fd> {
        CheckOptions {
            images_dir,
            log_file: None,
            log_level: LogLevel::default(),
        }
    }

    pub(crate) fn to_proto(&self) -> Result<CriuOpts, CriuError> {
        base(
            Request::Check,
            self.images_dir,
            self.log_file.as_deref(),
            self.log_level,
            false,
        )
    }
}

/// The part every request shares: images directory, log, notifications.
fn base(
    request: Request,
    images_dir: BorrowedFd<'_>,
    log_file: Option<&str>,
    log_level: LogLevel,
    notify_scripts: bool,
) -> Result<CriuOpts, CriuError> {
    if let Some(name) = log_file {
        // CRIU refuses sub-directories; an empty name or a NUL (which C
        // would cut the name at) would name another file than asked.
        if name.is_empty() || name.contains('/') || name.contains('\0') || name == ".." {
            return Err(invalid(
                request,
                "log_file",
                format!("{name:?} is not a plain file name"),
            ));
        }
    }
    Ok(CriuOpts {
        images_dir_fd: images_dir.as_raw_fd(),
        log_file: log_file.map(str::to_owned),
        log_level: Some(log_level.as_criu()),
        notify_scripts: Some(notify_scripts),
        // A sandboxed service's mount namespace holds copies of PID 1's
        // mounts (the root file system, /dev's nodes, /run, /sys): CRIU
        // finds each among its own mounts and binds it again on the
        // restore (`--ext-mount-map auto`), rather than failing on mounts
        // it cannot make. Nothing changes for a process in PID 1's
        // namespace.
        auto_ext_mnt: Some(true),
        ..CriuOpts::default()
    })
}

fn set_cgroup_mode(o: &mut CriuOpts, mode: Option<CgroupMode>) {
    if let Some(mode) = mode {
        // manage_cgroups is CRIU's older switch (true = soft); the mode
        // overrides it, but both are set so that either reading agrees.
        o.manage_cgroups = Some(mode != CgroupMode::Ignore);
        o.set_manage_cgroups_mode(mode.as_criu());
    }
}

fn whole_seconds(d: Duration) -> u32 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    u32::try_from(secs).unwrap_or(u32::MAX)
}

fn utf8(request: Request, option: &'static str, p: &Path) -> Result<String, CriuError> {
    match p.to_str() {
        Some(s) if !s.is_empty() && !s.contains('\0') => Ok(s.to_owned()),
        _ => Err(invalid(
            request,
            option,
            format!("{} is empty, not UTF-8 or holds a NUL", p.display()),
        )),
    }
}

fn invalid(request: Request, option: &'static str, reason: String) -> CriuError {
    CriuError::InvalidOption {
        request,
        option,
        reason,
    }
}

#[cfg(test)]
#[path = "options_tests.rs"]
mod tests;
