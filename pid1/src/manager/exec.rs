//! Turning an Exec*= line into a process: environment, credentials,
//! output, cgroup. Everything is resolved here, before the fork.

use super::Manager;
use relive_sys::process_attrs::ProcessSettings;
use relive_sys::spawn::{SpawnRequest, Stdio};
use relive_units::directories::DirectoryKind;
use relive_units::{ExecCommand, InputSource, OutputTarget, ServiceSection, ServiceType};
use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// systemd's search path for Exec lines without an absolute path.
const EXEC_SEARCH_PATH: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl Manager {
    /// Spawns `cmd` for unit `name` in its cgroup; returns the PID. The
    /// program may not run yet: a failed exec comes later, as the child's
    /// exit (status 203 and its kin) and a logged reason.
    /// `activation`: an ExecStart= command, which gets the descriptors of
    /// socket activation (systemd's EXEC_PASS_FDS).
    pub(super) fn spawn_command(
        &mut self,
        name: &str,
        cmd: &ExecCommand,
        activation: bool,
    ) -> Result<i32, String> {
        let svc = self.service_config(name).ok_or("not a service")?;
        let main_pid = self.state.units[name].main_pid;
        let mut env = self.environment(name, &svc, cmd, main_pid)?;
        let sockets = self.activation_fds(name);
        let socket_stdio = svc.standard_input == InputSource::Socket
            || svc.standard_output == OutputTarget::Socket
            || svc.standard_error == OutputTarget::Socket;
        let socket_fd = if socket_stdio {
            match sockets.as_slice() {
                [(fd, _)] => Some(Arc::new(dup(*fd)?)),
                [] => return Err("StandardInput=/Output=socket, but got no socket".into()),
                _ => {
                    return Err("StandardInput=/Output=socket, but got more than one socket".into())
                }
            }
        } else {
            None
        };
        // With the socket on its standard streams, a service gets no LISTEN_*.
        // The sockets, then the file descriptor store (sd_listen_fds(3)).
        let passed: Vec<(i32, String)> = if activation && !socket_stdio {
            sockets.into_iter().chain(self.stored_fds(name)).collect()
        } else {
            Vec::new()
        };
        let listen_fds: Vec<i32> = passed.iter().map(|(fd, _)| *fd).collect();
        if !listen_fds.is_empty() {
            let names: Vec<&str> = passed.iter().map(|(_, n)| n.as_str()).collect();
            env.push(("LISTEN_FDS".into(), listen_fds.len().to_string()));
            env.push(("LISTEN_FDNAMES".into(), names.join(":")));
        }
        if let Some((ip, port)) = self
            .rt
            .listeners
            .connections
            .get(name)
            .and_then(|c| c.remote)
        {
            env.push(("REMOTE_ADDR".into(), ip.to_string()));
            env.push(("REMOTE_PORT".into(), port.to_string()));
        }
        let lookup = |key: &str| {
            env.iter()
                .rev()
                .find_map(|(k, v)| (k == key).then(|| v.clone()))
        };
        let argv = if cmd.no_env_expand {
            cmd.argv.clone()
        } else {
            relive_units::exec::expand_argv(&cmd.argv, &lookup)
        };
        let path = resolve_program(&cmd.path)?;
        let user = if cmd.privileged || (svc.user.is_none() && svc.group.is_none()) {
            None
        } else {
            Some(
                self.accounts()
                    .resolve(
                        svc.user.as_deref(),
                        svc.group.as_deref(),
                        &svc.supplementary_groups,
                    )
                    .map_err(|e| e.to_string())?,
            )
        };
        // journald's identifier: SyslogIdentifier=, else the program's name.
        let identifier = svc.syslog_identifier.clone().unwrap_or_else(|| {
            Path::new(&path)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
        let (stdout, stderr) = self.output_for(name, &svc, socket_fd.as_ref(), &identifier)?;
        let stdin = match (&socket_fd, svc.standard_input) {
            (Some(fd), InputSource::Socket) => Stdio::Fd(fd.clone()),
            (_, input) if input.is_tty() => Stdio::Tty,
            _ => Stdio::Null,
        };
        let tty = uses_tty(&svc).then(|| tty_request(&svc)).transpose()?;
        let idle_gate = if svc.service_type == ServiceType::Idle && activation {
            self.idle_gate(name)
        } else {
            None
        };
        let uid = user.as_ref().map_or(0, |u| u.credentials.uid);
        let gid = user.as_ref().map_or(0, |u| u.credentials.gid);
        // '+' runs outside the sandbox; '!' only skips the user switch.
        let full_privileges = cmd.privileged && !cmd.credentials_only;
        let confined = super::confine::confinement(name, &svc, full_privileges, uid)?;
        let mut process = process_settings(&svc.process);
        process.no_new_privs = confined.no_new_privs;
        let request = SpawnRequest {
            path: cstring(path.as_os_str().to_string_lossy().as_ref())?,
            argv: argv.iter().map(|a| cstring(a)).collect::<Result<_, _>>()?,
            env: env
                .iter()
                .map(|(k, v)| cstring(&format!("{k}={v}")))
                .collect::<Result<_, _>>()?,
            cgroup: Some(self.process_cgroup(name, &svc.resources)),
            stdout,
            stderr,
            credentials: user.map(|u| u.credentials),
            umask: svc.umask,
            nofile: svc.limit_nofile.map(|limit| grantable_nofile(name, limit)),
            process,
            working_directory: self
                .working_directory(&svc)?
                .map(|d| cstring(&d))
                .transpose()?,
            working_directory_optional: svc.working_directory_optional,
            keep_fds: Vec::new(),
            stdin,
            ignore_sigpipe: svc.ignore_sigpipe,
            same_process_group: false,
            // '+' runs with full privileges, '!' as root (where ambient
            // capabilities mean nothing). They live within the bounding set.
            ambient_caps: if full_privileges {
                0
            } else {
                svc.ambient_capabilities & confined.bounding_set.unwrap_or(u64::MAX)
            },
            bounding_set: confined.bounding_set,
            tty,
            idle_gate,
            listen_fds,
            namespaces: confined.namespaces,
            seccomp: confined.seccomp,
            private_users: (svc.sandbox.private_users && !full_privileges)
                .then(|| relive_sys::userns::UserNsMaps::new(uid, gid)),
        };
        let spawned = self.rt.kernel.spawn(request).map_err(|e| e.to_string())?;
        let pid = spawned.pid;
        self.rt.execs.add(pid, Some(name), spawned.exec);
        tracing::debug!("{name}: spawned {} as PID {pid}", argv.join(" "));
        Ok(pid)
    }

    /// Whether the unit has PAMName= (best effort: not applied).
    fn asks_pam_session(&self, name: &str) -> bool {
        self.unit(name)
            .and_then(|u| u.config.as_ref())
            .is_some_and(|c| c.unenforced.iter().any(|u| u.directive == "PAMName"))
    }

    /// The process environment: a base, the unit's Environment= and
    /// EnvironmentFile= (later wins), the user's identity, and the manager's
    /// variables (NOTIFY_SOCKET, MAINPID).
    fn environment(
        &self,
        name: &str,
        svc: &ServiceSection,
        cmd: &ExecCommand,
        main_pid: Option<i32>,
    ) -> Result<Vec<(String, String)>, String> {
        let mut env: Vec<(String, String)> = vec![split_once_eq(DEFAULT_PATH)];
        if let Some(user) = &svc.user {
            if !cmd.privileged {
                if let Ok(u) = self.accounts().resolve(Some(user), None, &[]) {
                    env.push(("USER".into(), u.name.clone()));
                    env.push(("LOGNAME".into(), u.name));
                    env.push(("HOME".into(), u.home));
                    env.push(("SHELL".into(), u.shell));
                    // What pam_systemd gives a PAMName= service (relive
                    // opens no PAM session): systemd --user refuses to
                    // run without it.
                    let runtime = format!("/run/user/{}", u.credentials.uid);
                    if self.asks_pam_session(name) && Path::new(&runtime).is_dir() {
                        env.push(("XDG_RUNTIME_DIR".into(), runtime));
                    }
                }
            }
        }
        env.extend(svc.environment.iter().cloned());
        for (path, optional) in &svc.environment_files {
            match relive_units::read::read_regular_text(path, relive_units::read::MAX_UNIT_FILE) {
                Ok(text) => env.extend(relive_units::exec::parse_environment_file(&text)),
                Err(_) if *optional => {}
                Err(e) => return Err(format!("EnvironmentFile {}: {e}", path.display())),
            }
        }
        // Each kind's directories, absolute and colon-separated.
        let kinds = DirectoryKind::ALL
            .iter()
            .map(|&k| (k.env(), k.base(), &svc.directories.get(k).names));
        let runtime = std::iter::once(("RUNTIME_DIRECTORY", "/run", &svc.runtime_directory));
        for (var, base, names) in runtime.chain(kinds) {
            if !names.is_empty() {
                let paths: Vec<String> = names.iter().map(|n| format!("{base}/{n}")).collect();
                env.push((var.into(), paths.join(":")));
            }
        }
        if !svc.credentials.is_empty() {
            let dir = super::credentials::directory(name);
            env.push((
                "CREDENTIALS_DIRECTORY".into(),
                dir.to_string_lossy().into_owned(),
            ));
        }
        if self.rt.notify_available {
            env.push((
                "NOTIFY_SOCKET".into(),
                self.rt.notify_socket_path.to_string_lossy().into_owned(),
            ));
        }
        if let Some(pid) = main_pid {
            env.push(("MAINPID".into(), pid.to_string()));
        }
        if let Some(w) = svc.watchdog {
            // No WATCHDOG_PID: the main process's PID is only known after
            // the fork, and sd_watchdog_enabled() accepts its absence.
            env.push(("WATCHDOG_USEC".into(), w.as_micros().to_string()));
        }
        env.push(("RELIVE_UNIT".into(), name.to_owned()));
        if uses_tty(svc) {
            // systemd's $TERM for the terminal, unless the unit sets one.
            let term = relive_sys::tty::default_term(&svc.tty.path);
            env.insert(1, ("TERM".into(), term.into()));
        }
        // UnsetEnvironment=: a name, or one exact assignment.
        env.retain(|(k, v)| {
            !svc.unset_environment
                .iter()
                .any(|u| u == k || *u == format!("{k}={v}"))
        });
        // One entry per key: the last assignment wins.
        let mut seen = std::collections::HashSet::new();
        let mut dedup: Vec<(String, String)> = env
            .into_iter()
            .rev()
            .filter(|(k, _)| seen.insert(k.clone()))
            .collect();
        dedup.reverse();
        Ok(dedup)
    }

    /// WorkingDirectory=, with `~` as the home of User= (root's without one).
    fn working_directory(&self, svc: &ServiceSection) -> Result<Option<String>, String> {
        match &svc.working_directory {
            Some(dir) if dir.as_os_str() == "~" => {
                let user = self
                    .accounts()
                    .resolve(svc.user.as_deref(), None, &[])
                    .map_err(|e| e.to_string())?;
                Ok(Some(user.home))
            }
            Some(dir) => Ok(Some(dir.to_string_lossy().into_owned())),
            None => Ok(None),
        }
    }

    /// StandardOutput=/StandardError= as open descriptors.
    fn output_for(
        &mut self,
        name: &str,
        svc: &ServiceSection,
        socket: Option<&Arc<std::os::fd::OwnedFd>>,
        identifier: &str,
    ) -> Result<(Stdio, Stdio), String> {
        let mut capture: Option<Arc<std::os::fd::OwnedFd>> = None;
        let mut open = |target: &OutputTarget, this: &mut Self| -> Result<Option<Stdio>, String> {
            Ok(Some(match target {
                OutputTarget::Capture | OutputTarget::CaptureForward { .. } => {
                    if capture.is_none() {
                        let (kmsg, console) = match target {
                            OutputTarget::CaptureForward { kmsg, console } => (*kmsg, *console),
                            _ => (false, false),
                        };
                        let header = super::journal::StreamHeader {
                            identifier,
                            unit: name,
                            level_prefix: svc.syslog_level_prefix,
                            to_kmsg: kmsg,
                            to_console: console,
                        };
                        let journald = &this.config.manager.journal_stdout_socket;
                        // A preserved service writes into relive's pipe
                        // even when journald runs (relive relays the lines
                        // to the journal): a stream to journald would break
                        // when journald is restarted by a live upgrade, and
                        // cannot cross the kexec, where relive gives the
                        // restored process a new pipe.
                        let preserved = this.state.units.get(name).is_some_and(|u| {
                            u.config.as_ref().is_some_and(|c| {
                                c.live_upgrade.mode == relive_units::UpgradeMode::Preserve
                            })
                        });
                        let stream = (!preserved)
                            .then(|| super::journal::connect(journald, &header))
                            .flatten();
                        let fd = match stream {
                            Some(stream) => stream,
                            None => this
                                .rt
                                .outputs
                                .open_pipe(name)
                                .map_err(|e| format!("cannot create output pipe: {e}"))?,
                        };
                        capture = Some(Arc::new(fd));
                    }
                    Stdio::Fd(capture.clone().expect("just set"))
                }
                OutputTarget::Inherit => return Ok(None),
                OutputTarget::Null => Stdio::Null,
                // The service's terminal when it reads one, else relive's
                // own output (the console).
                OutputTarget::Tty if svc.standard_input.is_tty() => Stdio::Tty,
                OutputTarget::Tty => Stdio::Inherit,
                OutputTarget::Socket => match socket {
                    Some(fd) => Stdio::Fd(fd.clone()),
                    None => return Err("StandardOutput=socket without a socket".into()),
                },
                OutputTarget::File(p) => open_file(p, false, false)?,
                OutputTarget::Append(p) => open_file(p, true, false)?,
                OutputTarget::Truncate(p) => open_file(p, false, true)?,
            }))
        };
        let stdout = match open(&svc.standard_output, self)? {
            Some(s) => s,
            // inherit for stdout means stdin's target.
            None => match (svc.standard_input, socket) {
                (InputSource::Socket, Some(fd)) => Stdio::Fd(fd.clone()),
                (input, _) if input.is_tty() => Stdio::Tty,
                _ => Stdio::Null,
            },
        };
        let stderr = match open(&svc.standard_error, self)? {
            Some(s) => s,
            None => match &stdout {
                Stdio::Fd(fd) => Stdio::Fd(fd.clone()),
                Stdio::Null => Stdio::Null,
                Stdio::Inherit => Stdio::Inherit,
                Stdio::Tty => Stdio::Tty,
            },
        };
        Ok((stdout, stderr))
    }

    /// Where the unit's processes start: its cgroup, or with Delegate= and
    /// DelegateSubgroup= the subgroup below it.
    fn process_cgroup(&self, name: &str, resources: &relive_units::resources::Resources) -> String {
        let cgroup = self.unit_cgroup(name);
        match (&resources.delegate, &resources.delegate_subgroup) {
            (Some(_), Some(sub)) => format!("{cgroup}/{sub}"),
            _ => cgroup,
        }
    }

    /// The unit's cgroup, with its resource settings and, with Delegate=,
    /// handed to `owner` (the service's user); its path.
    pub(super) fn create_unit_cgroup(
        &mut self,
        name: &str,
        resources: &relive_units::resources::Resources,
        owner: Option<(u32, u32)>,
    ) -> Result<String, String> {
        let cgroup = self.unit_cgroup(name);
        self.rt
            .kernel
            .cgroup_create(&cgroup)
            .map_err(|e| format!("cannot create cgroup: {e}"))?;
        if !resources.is_empty() {
            let settings = resources.cgroup_settings(
                super::conditions::physical_memory().unwrap_or(0),
                task_limit(),
            );
            self.rt
                .kernel
                .cgroup_configure(&cgroup, &settings)
                .map_err(|e| format!("cannot apply resource settings: {e}"))?;
        }
        if resources.devices.restricted() {
            let (rules, unmatched) = relive_sys::device_filter::resolve(&resources.devices.rules());
            for entry in unmatched {
                tracing::info!("{name}: DeviceAllow={entry} matches no device here; ignored");
            }
            self.rt
                .kernel
                .cgroup_devices(&cgroup, &rules)
                .map_err(|e| format!("cannot restrict devices (DeviceAllow=): {e}"))?;
        }
        if let Some(controllers) = &resources.delegate {
            self.rt
                .kernel
                .cgroup_delegate(&cgroup, controllers, owner)
                .map_err(|e| format!("cannot delegate the cgroup (Delegate=): {e}"))?;
            if let Some(sub) = &resources.delegate_subgroup {
                let path = format!("{cgroup}/{sub}");
                self.rt
                    .kernel
                    .cgroup_create(&path)
                    .and_then(|()| self.rt.kernel.cgroup_delegate(&path, &[], owner))
                    .map_err(|e| format!("cannot make {path} (DelegateSubgroup=): {e}"))?;
            }
        }
        Ok(cgroup)
    }

    /// Before a start: the cgroup and RuntimeDirectory=.
    pub fn prepare_unit_resources(
        &mut self,
        name: &str,
        svc: &ServiceSection,
    ) -> Result<(), String> {
        let directories = &svc.directories;
        let none_asked = DirectoryKind::ALL
            .iter()
            .all(|&kind| directories.get(kind).names.is_empty());
        let owned = svc.resources.delegate.is_some()
            || !svc.runtime_directory.is_empty()
            || !none_asked
            || !svc.credentials.is_empty();
        let owner = match &svc.user {
            Some(_) if owned => Some(
                self.accounts()
                    .resolve(svc.user.as_deref(), svc.group.as_deref(), &[])
                    .map_err(|e| e.to_string())?
                    .credentials,
            ),
            _ => None,
        };
        let owner = owner.as_ref().map(|c| (c.uid, c.gid));
        self.create_unit_cgroup(name, &svc.resources, owner)?;
        if svc.sandbox.needs_mount_namespace() {
            // Before a start, and before a restore, whose namespace binds them.
            super::sandbox::prepare_run_dirs()?;
        }
        for dir in &svc.runtime_directory {
            super::rundir::make(Path::new("/run"), dir, svc.runtime_directory_mode, owner)?;
        }
        for kind in DirectoryKind::ALL {
            let setting = directories.get(kind);
            let owner = owner.filter(|_| kind.owned_by_the_service());
            for dir in &setting.names {
                let base = Path::new(kind.base());
                super::rundir::make_in(base, kind.directive(), dir, setting.mode, owner)?;
            }
        }
        if !svc.credentials.is_empty() {
            super::credentials::prepare(name, &svc.credentials, owner)?;
        }
        Ok(())
    }

    /// After a stop: RuntimeDirectory= (unless preserved) and the empty cgroup.
    pub(super) fn release_unit_resources(&mut self, name: &str, svc: &ServiceSection) {
        if !svc.runtime_directory_preserve {
            // remove_dir_all removes a symbolic link, never what it
            // points to; relive's own directory is never removed.
            for dir in &svc.runtime_directory {
                if super::rundir::check_name(dir).is_ok() {
                    let _ = std::fs::remove_dir_all(Path::new("/run").join(dir));
                }
            }
        }
        if !svc.credentials.is_empty() {
            super::credentials::release(name);
        }
        self.rt.kernel.cgroup_remove(&self.unit_cgroup(name));
        if svc.sandbox.remove_ipc {
            self.remove_ipc_after(name, svc);
        }
    }

    /// RemoveIPC=: once no other unit runs as the same user.
    fn remove_ipc_after(&mut self, name: &str, svc: &ServiceSection) {
        let Some(user) = &svc.user else {
            return;
        };
        let same_user_running = self.state.units.iter().any(|(other, u)| {
            other != name
                && !matches!(
                    u.active,
                    super::ActiveState::Inactive | super::ActiveState::Failed
                )
                && u.config
                    .as_ref()
                    .and_then(|c| c.service.as_ref())
                    .is_some_and(|s| s.user.as_ref() == Some(user))
        });
        if same_user_running {
            return;
        }
        let accounts = self.accounts();
        let Ok(resolved) = accounts.resolve(Some(user), svc.group.as_deref(), &[]) else {
            return;
        };
        let c = resolved.credentials;
        let removed = super::remove_ipc::remove_ipc_of(c.uid, c.gid);
        if removed > 0 {
            tracing::info!("{name}: RemoveIPC=: removed {removed} IPC objects of {user}");
        }
    }
}

/// The kernel's limit on tasks, what a TasksMax=N% is of (as systemd:
/// the smaller of pid_max and threads-max).
pub(crate) fn task_limit() -> u64 {
    let read = |p: &str| -> Option<u64> { std::fs::read_to_string(p).ok()?.trim().parse().ok() };
    let pid_max = read("/proc/sys/kernel/pid_max").unwrap_or(4_194_304);
    let threads = read("/proc/sys/kernel/threads-max").unwrap_or(u64::MAX);
    pid_max.min(threads)
}

fn split_once_eq(s: &str) -> (String, String) {
    let (k, v) = s.split_once('=').unwrap_or((s, ""));
    (k.to_owned(), v.to_owned())
}

pub(super) fn cstring(s: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("argument contains a NUL byte: {s:?}"))
}

/// An absolute path as is; a bare name searched like systemd does.
fn resolve_program(program: &str) -> Result<PathBuf, String> {
    if program.starts_with('/') {
        return Ok(PathBuf::from(program));
    }
    EXEC_SEARCH_PATH
        .iter()
        .map(|dir| Path::new(dir).join(program))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("{program}: not found in {}", EXEC_SEARCH_PATH.join(":")))
}

/// StandardOutput=file:/append:/truncate:. Opened without blocking: a
/// FIFO with no reader would hold PID 1's loop in open(2); FIFOs are
/// refused, a terminal or a file is handed to the service as usual.
fn open_file(path: &Path, append: bool, truncate: bool) -> Result<Stdio, String> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let failed = |e: std::io::Error| format!("{}: {e}", path.display());
    let file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(truncate)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(failed)?;
    let kind = file.metadata().map_err(failed)?.file_type();
    if kind.is_fifo() || kind.is_socket() {
        return Err(format!("{}: a FIFO or socket, not a file", path.display()));
    }
    // The service writes to it as to any file: blocking (O_APPEND kept).
    let flags =
        nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_GETFL).map_err(|e| failed(e.into()))?;
    let flags = nix::fcntl::OFlag::from_bits_truncate(flags) - nix::fcntl::OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_SETFL(flags)).map_err(|e| failed(e.into()))?;
    Ok(Stdio::Fd(Arc::new(std::os::fd::OwnedFd::from(file))))
}

/// LimitNOFILE= as far as it can be granted. The child sets it; PID 1's
/// own limits never change (a probe on PID 1 itself once left it with the
/// unit's soft limit). Raising a hard limit above PID 1's needs
/// CAP_SYS_RESOURCE, which a relive in a container may lack: then the
/// service gets PID 1's hard limit (with a warning) instead of failing to
/// start.
fn grantable_nofile(name: &str, (soft, hard): (u64, u64)) -> (u64, u64) {
    let Ok((_, own_hard)) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
    else {
        return (soft, hard);
    };
    let may_raise = caps::has_cap(
        None,
        caps::CapSet::Effective,
        caps::Capability::CAP_SYS_RESOURCE,
    )
    .unwrap_or(false);
    if hard <= own_hard || may_raise {
        return (soft, hard);
    }
    tracing::warn!("{name}: LimitNOFILE={hard} is above the hard limit relive may grant ({own_hard}); using {own_hard}");
    (soft.min(own_hard), own_hard)
}

/// The unit's process attributes, as the child sets them.
fn process_settings(p: &relive_units::process::ProcessAttributes) -> ProcessSettings {
    ProcessSettings {
        rlimits: p
            .limits
            .iter()
            .map(|&(limit, soft, hard)| (limit.resource(), soft, hard))
            .collect(),
        nice: p.nice,
        oom_score_adj: p.oom_score_adjust,
        ioprio: p.ioprio(),
        scheduler: p.scheduler(),
        no_new_privs: p.no_new_privileges,
        secure_bits: p.secure_bits,
    }
}

/// A copy of `fd` (close-on-exec) for a child's standard streams.
fn dup(fd: i32) -> Result<std::os::fd::OwnedFd, String> {
    // SAFETY: the descriptor is open and owned by the socket units' records
    // for the duration of this call.
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    borrowed
        .try_clone_to_owned()
        .map_err(|e| format!("cannot duplicate the socket: {e}"))
}

/// The service reads or writes its own terminal (TTYPath=).
fn uses_tty(svc: &ServiceSection) -> bool {
    svc.standard_input.is_tty()
}

fn tty_request(svc: &ServiceSection) -> Result<relive_sys::tty::TtyRequest, String> {
    Ok(relive_sys::tty::TtyRequest {
        path: cstring(&svc.tty.path.to_string_lossy())?,
        controlling: true,
        force: svc.standard_input == InputSource::TtyForce,
        reset: svc.tty.reset,
        vhangup: svc.tty.vhangup,
        disallocate: svc.tty.vt_disallocate,
    })
}
