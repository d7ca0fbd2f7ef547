//! Starting a service process from a multi-threaded PID 1.
//!
//! Everything is prepared before the fork (argv, environment, credentials,
//! open files): after `clone3` the child may only make async-signal-safe
//! calls until `execve`, because another thread of PID 1 may hold a lock
//! (the allocator's, say) that the child would inherit locked. `clone3` with
//! CLONE_INTO_CGROUP puts the child in its unit's cgroup atomically, so no
//! process of a unit ever runs outside it. An exec-status pipe (close-on-exec)
//! tells the parent whether the exec worked, and if not, which step failed.
//!
//! [`spawn`] returns as soon as the child exists: the child may take long
//! to exec (a working directory or program on a hung NFS mount, a frozen
//! cgroup), and PID 1's loop must not wait for it. The loop polls the
//! [`ExecStatus`] it gets back; other threads may [`ExecStatus::wait`].

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Where one of the child's standard streams goes.
#[derive(Debug)]
pub enum Stdio {
    /// /dev/null.
    Null,
    /// PID 1's own (the console).
    Inherit,
    /// An open file or pipe end.
    Fd(std::sync::Arc<OwnedFd>),
    /// The terminal of `SpawnRequest::tty`, opened by the child.
    Tty,
}

/// Credentials a service runs with (User=/Group=), resolved beforehand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

#[derive(Debug)]
pub struct SpawnRequest {
    /// Absolute path of the program.
    pub path: CString,
    pub argv: Vec<CString>,
    /// `KEY=VALUE` strings, the whole environment.
    pub env: Vec<CString>,
    /// cgroup path relative to the cgroup2 root; None: stay in PID 1's.
    pub cgroup: Option<String>,
    pub stdout: Stdio,
    pub stderr: Stdio,
    pub credentials: Option<Credentials>,
    pub umask: u32,
    /// RLIMIT_NOFILE (soft, hard).
    pub nofile: Option<(u64, u64)>,
    /// The other limits, nice level, OOM score, scheduling, no_new_privs.
    pub process: crate::process_attrs::ProcessSettings,
    pub working_directory: Option<CString>,
    /// A missing working directory is not an error (WorkingDirectory=-/x).
    pub working_directory_optional: bool,
    /// Descriptors the program inherits under their own numbers (e.g. the
    /// socket `criu swrk FD` talks over); all others close at exec.
    pub keep_fds: Vec<RawFd>,
    /// Standard input: /dev/null, or a connection (StandardInput=socket).
    pub stdin: Stdio,
    /// IgnoreSIGPIPE= (systemd's default for services: yes).
    pub ignore_sigpipe: bool,
    /// Stay in PID 1's process group instead of a session of its own:
    /// mount(8) for a mount an automount waits for, whose lookups of the
    /// mount point the kernel then lets through (autofs's "daemon" is a
    /// process group) instead of making them wait for that very mount.
    pub same_process_group: bool,
    /// AmbientCapabilities= as bits (1 << CAP_*): kept across the switch
    /// to `credentials`' user and raised into the ambient set.
    pub ambient_caps: u64,
    /// CapabilityBoundingSet= as bits; None keeps PID 1's.
    pub bounding_set: Option<u64>,
    /// The terminal to set up (TTYPath= and company).
    pub tty: Option<crate::tty::TtyRequest>,
    /// A pipe (read end, write end) to wait on (up to 5 s) before the
    /// exec: Type=idle's gate, whose write end PID 1 closes once the
    /// boot's jobs are done. The child closes its own copy of the write
    /// end first, or it would wait on itself.
    pub idle_gate: Option<(RawFd, RawFd)>,
    /// Socket activation (sd_listen_fds(3)): these descriptors become 3,
    /// 4, ... in the child, and `LISTEN_PID` its own PID, which only the
    /// child knows. The caller puts `LISTEN_FDS`/`LISTEN_FDNAMES` in `env`.
    pub listen_fds: Vec<RawFd>,
    /// The service's own namespaces and mounts (ProtectSystem= and
    /// friends); entered before the switch of user.
    pub namespaces: crate::namespace::NamespacePlan,
    /// seccomp filters, installed last before the exec.
    pub seccomp: Vec<crate::seccomp::Program>,
    /// PrivateUsers=: a user namespace of its own, with these maps.
    pub private_users: Option<crate::userns::UserNsMaps>,
}

impl SpawnRequest {
    /// A plain program: root, PID 1's cgroup, no input, output to
    /// /dev/null, umask 077, nothing inherited. Callers change what they
    /// need with `..` syntax.
    pub fn program(path: CString, argv: Vec<CString>, env: Vec<CString>) -> SpawnRequest {
        SpawnRequest {
            path,
            argv,
            env,
            cgroup: None,
            stdout: Stdio::Null,
            stderr: Stdio::Null,
            credentials: None,
            umask: 0o077,
            nofile: None,
            process: Default::default(),
            working_directory: None,
            working_directory_optional: false,
            keep_fds: Vec::new(),
            stdin: Stdio::Null,
            ignore_sigpipe: false,
            same_process_group: false,
            ambient_caps: 0,
            bounding_set: None,
            tty: None,
            idle_gate: None,
            listen_fds: Vec::new(),
            namespaces: Default::default(),
            seccomp: Vec::new(),
            private_users: None,
        }
    }
}

/// The step of the child's setup that failed, as systemd numbers them in
/// exit statuses (EXIT_CHDIR=200 ...), so `status` output reads familiar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum ChildStep {
    Chdir = 200,
    Nice = 201,
    Limits = 205,
    OomAdjust = 206,
    IoPriority = 211,
    SecureBits = 213,
    SetScheduler = 214,
    NoNewPrivileges = 227,
    Network = 225,
    Namespace = 226,
    Seccomp = 228,
    Setsid = 220,
    Stdio = 208,
    Group = 216,
    User = 217,
    Capabilities = 218,
    Exec = 203,
}

impl ChildStep {
    /// systemd's name for a setup step's exit status (`203/EXEC`).
    pub fn name_of(code: i32) -> Option<&'static str> {
        Some(match code {
            200 => "CHDIR",
            201 => "NICE",
            203 => "EXEC",
            205 => "LIMITS",
            206 => "OOM_ADJUST",
            211 => "IOPRIO",
            213 => "SECUREBITS",
            214 => "SETSCHEDULER",
            227 => "NO_NEW_PRIVILEGES",
            225 => "NETWORK",
            226 => "NAMESPACE",
            228 => "SECCOMP",
            208 => "STDIN",
            216 => "GROUP",
            217 => "USER",
            218 => "CAPABILITIES",
            220 => "SETSID",
            _ => return None,
        })
    }

    /// What the step does, for messages.
    pub fn describe_code(code: i32) -> &'static str {
        match code {
            200 => "changing to the working directory",
            201 => "setting the nice level",
            205 => "setting resource limits",
            206 => "setting the OOM score adjustment",
            211 => "setting the I/O scheduling",
            213 => "setting the secure bits",
            214 => "setting the CPU scheduling",
            227 => "setting no_new_privs",
            225 => "setting up the private network",
            226 => "setting up the mount namespace",
            228 => "installing the seccomp filter",
            220 => "creating a session",
            208 => "setting up standard input/output",
            216 => "setting the group",
            217 => "setting the user",
            218 => "setting the capabilities",
            _ => "executing the program",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The unit's cgroup could not be opened.
    #[error("cannot open cgroup {path}: {source}")]
    Cgroup { path: String, source: io::Error },
    /// fork/clone3 or the status pipe failed in PID 1 itself.
    #[error("cannot fork: {0}")]
    Fork(io::Error),
    /// The child reported a failed setup step.
    #[error("{program}: failed {step}{detail}: {source}")]
    Child {
        program: String,
        step: &'static str,
        /// Which part of the step, as ` (…)`, or empty.
        detail: String,
        source: io::Error,
    },
}

/// CLONE_INTO_CGROUP (linux/sched.h); libc's constant is a deprecated c_int.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// The kernel's `struct clone_args` (linux/sched.h), version 2 (with cgroup).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// A child just started: its PID, and how to learn whether it exec'd.
#[derive(Debug)]
pub struct Spawned {
    pub pid: i32,
    pub exec: ExecStatus,
}

/// Where a child's exec stands.
#[derive(Debug)]
pub enum ExecOutcome {
    /// The child is still setting up (or blocked doing so).
    Pending,
    /// The program runs.
    Running,
    /// A setup step failed; the child exits with the step's code.
    Failed(SpawnError),
}

/// The parent's end of a child's exec-status pipe (non-blocking). EOF
/// means the exec closed the child's end (close-on-exec); eight bytes are
/// the failed step and its errno.
#[derive(Debug)]
pub struct ExecStatus {
    fd: OwnedFd,
    program: String,
    /// The mount steps of the child's namespace, described, so that a
    /// failed one can be named.
    mount_steps: Vec<String>,
}

impl ExecStatus {
    /// For test kernels: a status already settled, as `failure` says
    /// (None: the exec worked).
    pub fn settled(program: &str, failure: Option<(ChildStep, i32)>) -> io::Result<ExecStatus> {
        let (read, write) = status_pipe()?;
        if let Some((step, errno)) = failure {
            nix::unistd::write(&write, &report_bytes(step as i32, errno, -1))?;
        }
        Ok(ExecStatus {
            fd: read,
            program: program.to_owned(),
            mount_steps: Vec::new(),
        })
    }

    /// The descriptor to poll for readability.
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.fd)
    }

    /// Reads what the child reported so far, without blocking. Once the
    /// child has exited, the answer is never `Pending`.
    pub fn check(&self) -> ExecOutcome {
        let mut report = [0u8; REPORT_LEN];
        // The child writes its report at once (less than PIPE_BUF:
        // atomic), so a read gets all of it or none.
        let read = loop {
            match nix::unistd::read(&self.fd, &mut report) {
                Err(nix::errno::Errno::EINTR) => continue,
                other => break other,
            }
        };
        match read {
            Ok(0) => ExecOutcome::Running,
            Ok(REPORT_LEN) => {
                let word = |i: usize| {
                    i32::from_ne_bytes([report[i], report[i + 1], report[i + 2], report[i + 3]])
                };
                let (step, errno, index) = (word(0), word(4), word(8));
                let detail = usize::try_from(index)
                    .ok()
                    .and_then(|i| self.mount_steps.get(i))
                    .map(|s| format!(" ({s})"))
                    .unwrap_or_default();
                ExecOutcome::Failed(SpawnError::Child {
                    program: self.program.clone(),
                    step: ChildStep::describe_code(step),
                    detail,
                    source: io::Error::from_raw_os_error(errno),
                })
            }
            Ok(n) => ExecOutcome::Failed(SpawnError::Fork(io::Error::other(format!(
                "short exec-status report ({n} bytes)"
            )))),
            Err(nix::errno::Errno::EAGAIN) => ExecOutcome::Pending,
            Err(e) => ExecOutcome::Failed(SpawnError::Fork(e.into())),
        }
    }

    /// Blocks until the child has exec'd or failed. Only for threads other
    /// than the manager's loop (CRIU's helpers, which wait for CRIU anyway).
    pub fn wait(self) -> Result<(), SpawnError> {
        loop {
            match self.check() {
                ExecOutcome::Running => return Ok(()),
                ExecOutcome::Failed(e) => return Err(e),
                ExecOutcome::Pending => {
                    let mut fds = [nix::poll::PollFd::new(
                        self.fd(),
                        nix::poll::PollFlags::POLLIN,
                    )];
                    match nix::poll::poll(&mut fds, nix::poll::PollTimeout::NONE) {
                        Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                        Err(e) => return Err(SpawnError::Fork(e.into())),
                    }
                }
            }
        }
    }
}

fn status_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    nix::fcntl::fcntl(
        &read,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )?;
    Ok((read, write))
}

/// The failed step, its errno, and which mount step (-1: none).
const REPORT_LEN: usize = 12;

fn report_bytes(step: i32, errno: i32, index: i32) -> [u8; REPORT_LEN] {
    let mut report = [0u8; REPORT_LEN];
    report[..4].copy_from_slice(&step.to_ne_bytes());
    report[4..8].copy_from_slice(&errno.to_ne_bytes());
    report[8..].copy_from_slice(&index.to_ne_bytes());
    report
}

/// Starts the process and returns at once: its PID, and the status of its
/// exec to poll or wait for.
pub fn spawn(request: &SpawnRequest, cgroup_dir: Option<&OwnedFd>) -> Result<Spawned, SpawnError> {
    let program = request.path.to_string_lossy().into_owned();
    let (status_read, status_write) = status_pipe().map_err(SpawnError::Fork)?;
    let devnull = nix::fcntl::open(
        "/dev/null",
        nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| SpawnError::Fork(e.into()))?;

    // Raw pointers for the child, built now: the child must not allocate.
    let mut argv: Vec<*const libc::c_char> = request.argv.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = request.env.iter().map(|e| e.as_ptr()).collect();
    // LISTEN_PID=, its digits written by the child into its copy of this buffer.
    let mut listen_pid = *b"LISTEN_PID=\0\0\0\0\0\0\0\0\0\0\0\0";
    let listen_pid = listen_pid.as_mut_ptr();
    if !request.listen_fds.is_empty() {
        envp.push(listen_pid.cast_const().cast());
    }
    envp.push(std::ptr::null());
    let oom_text = request
        .process
        .oom_score_adj
        .map(|n| n.to_string().into_bytes());
    // Every service reads the system's one clock, once an upgrade made it.
    let time_ns = crate::timens::open_pinned();
    let plan = ChildPlan {
        path: request.path.as_ptr(),
        argv: argv.as_ptr(),
        envp: envp.as_ptr(),
        stdin: stdio_fd(&request.stdin, devnull.as_raw_fd()),
        stdout: stdio_fd(&request.stdout, devnull.as_raw_fd()),
        stderr: stdio_fd(&request.stderr, devnull.as_raw_fd()),
        credentials: request.credentials.as_ref(),
        umask: request.umask,
        nofile: request.nofile,
        process: &request.process,
        oom_text: oom_text.as_deref(),
        cwd: request.working_directory.as_ref().map(|c| c.as_ptr()),
        cwd_optional: request.working_directory_optional,
        keep_fds: &request.keep_fds,
        ignore_sigpipe: request.ignore_sigpipe,
        same_process_group: request.same_process_group,
        ambient_caps: request.ambient_caps,
        bounding_set: request.bounding_set,
        tty: request.tty.as_ref(),
        idle_gate: request.idle_gate.unwrap_or((-1, -1)),
        listen_fds: &request.listen_fds,
        // SAFETY: within the 23-byte buffer above.
        listen_pid_digits: unsafe { listen_pid.add(LISTEN_PID_PREFIX) },
        namespaces: &request.namespaces,
        seccomp: &request.seccomp,
        private_users: request.private_users.as_ref(),
        devnull: devnull.as_raw_fd(),
        status_fd: status_write.as_raw_fd(),
        time_ns: time_ns.as_ref().map_or(-1, |fd| fd.as_raw_fd()),
    };

    let pid = clone_into(cgroup_dir.map(|fd| fd.as_raw_fd()), &plan)?;
    // Only the child holds the write end now: EOF comes with its exec or exit.
    drop(status_write);
    Ok(Spawned {
        pid,
        exec: ExecStatus {
            fd: status_read,
            program,
            mount_steps: request
                .namespaces
                .mounts
                .iter()
                .map(|m| m.to_string())
                .collect(),
        },
    })
}

fn stdio_fd(stdio: &Stdio, devnull: RawFd) -> RawFd {
    match stdio {
        Stdio::Null => devnull,
        Stdio::Inherit => -1,
        Stdio::Fd(fd) => fd.as_raw_fd(),
        Stdio::Tty => TTY,
    }
}

/// In a plan's stdio: the terminal the child opens.
const TTY: RawFd = -2;

/// The length of `LISTEN_PID=`.
const LISTEN_PID_PREFIX: usize = 11;

/// What the child needs, as raw values prepared by the parent.
struct ChildPlan<'a> {
    path: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    /// -1: keep PID 1's.
    stdin: RawFd,
    stdout: RawFd,
    stderr: RawFd,
    credentials: Option<&'a Credentials>,
    umask: u32,
    nofile: Option<(u64, u64)>,
    process: &'a crate::process_attrs::ProcessSettings,
    /// `process.oom_score_adj` in decimal.
    oom_text: Option<&'a [u8]>,
    cwd: Option<*const libc::c_char>,
    cwd_optional: bool,
    keep_fds: &'a [RawFd],
    ignore_sigpipe: bool,
    same_process_group: bool,
    ambient_caps: u64,
    bounding_set: Option<u64>,
    tty: Option<&'a crate::tty::TtyRequest>,
    /// (-1, -1): none.
    idle_gate: (RawFd, RawFd),
    listen_fds: &'a [RawFd],
    /// Where the child writes its PID in decimal (room for 11 bytes and a NUL).
    listen_pid_digits: *mut u8,
    namespaces: &'a crate::namespace::NamespacePlan,
    seccomp: &'a [crate::seccomp::Program],
    private_users: Option<&'a crate::userns::UserNsMaps>,
    /// PID 1's /dev/null, which the plan's Null streams are.
    devnull: RawFd,
    status_fd: RawFd,
    /// The system's time namespace (crate::timens), -1: the kernel's.
    time_ns: RawFd,
}

/// clone3 into the cgroup; falls back to fork + joining the cgroup from the
/// child on kernels without clone3/CLONE_INTO_CGROUP (before 5.7).
fn clone_into(cgroup_dir: Option<RawFd>, plan: &ChildPlan) -> Result<i32, SpawnError> {
    let mut args = CloneArgs {
        exit_signal: libc::SIGCHLD as u64,
        ..CloneArgs::default()
    };
    if let Some(fd) = cgroup_dir {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd as u64;
    }
    // SAFETY: clone3 without CLONE_VM and without a stack behaves like fork:
    // the child gets a copy of the address space. `args` is a valid
    // clone_args of the size passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    let pid = if rc < 0 {
        let err = io::Error::last_os_error();
        if !matches!(err.raw_os_error(), Some(libc::ENOSYS) | Some(libc::E2BIG)) {
            return Err(SpawnError::Fork(err));
        }
        let procs = match cgroup_dir {
            Some(fd) => Some(open_procs_file(fd).map_err(SpawnError::Fork)?),
            None => None,
        };
        // SAFETY: the child only runs `child_main`, which is async-signal-safe.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            if let Some(procs) = &procs {
                // SAFETY: write(2) of a static buffer to an open fd.
                unsafe { libc::write(procs.as_raw_fd(), b"0".as_ptr().cast(), 1) };
            }
            child_main(plan);
        }
        if pid < 0 {
            return Err(SpawnError::Fork(io::Error::last_os_error()));
        }
        pid
    } else {
        if rc == 0 {
            child_main(plan);
        }
        rc as i32
    };
    Ok(pid)
}

fn open_procs_file(cgroup_dir: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: openat with a valid dirfd and a NUL-terminated literal path.
    let fd = unsafe {
        libc::openat(
            cgroup_dir,
            c"cgroup.procs".as_ptr(),
            libc::O_WRONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by openat and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The child between fork and exec: only async-signal-safe calls, no
/// allocation, no locks. Never returns.
fn child_main(plan: &ChildPlan) -> ! {
    // SAFETY: every call below is an async-signal-safe system call on values
    // prepared by the parent before the fork (see `ChildPlan`); pointers in
    // the plan point into the parent's memory, copied into this child.
    unsafe {
        // Signal handlers are reset by exec, but ignored signals are not:
        // Rust ignores SIGPIPE, which services must not inherit.
        for sig in 1..32 {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        if plan.ignore_sigpipe {
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        // First, while no user namespace is in the way; a service that
        // cannot enter it reads the kernel's clock rather than not start.
        if plan.time_ns >= 0 {
            libc::setns(plan.time_ns, libc::CLONE_NEWTIME);
        }

        if !plan.same_process_group && libc::setsid() < 0 {
            fail(plan, ChildStep::Setsid);
        }
        let tty = match plan.tty {
            Some(t) => {
                let fd = crate::tty::open_in_child(t);
                if fd < 0 {
                    fail(plan, ChildStep::Stdio);
                }
                fd
            }
            None => -1,
        };
        let target = |fd: RawFd| if fd == TTY { tty } else { fd };
        if (plan.stdin != -1 && libc::dup2(target(plan.stdin), 0) < 0)
            || (plan.stdout != -1 && libc::dup2(target(plan.stdout), 1) < 0)
            || (plan.stderr != -1 && libc::dup2(target(plan.stderr), 2) < 0)
        {
            fail(plan, ChildStep::Stdio);
        }
        // Every other descriptor closes at exec (the status pipe must live until then).
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
        for fd in plan.keep_fds {
            if libc::fcntl(*fd, libc::F_SETFD, 0) < 0 {
                fail(plan, ChildStep::Stdio);
            }
        }
        if !plan.listen_fds.is_empty() && !place_listen_fds(plan) {
            fail(plan, ChildStep::Stdio);
        }
        if !plan.namespaces.is_empty() {
            if let Err((step, index)) = crate::namespace::enter(plan.namespaces) {
                fail_at(plan, step, index);
            }
            // Streams on /dev/null are opened again in the new mount
            // namespace: PID 1's /dev may not be visible in it
            // (PrivateDevices=), and CRIU can only dump an open file on a
            // mount the service's namespace has.
            if !reopen_null(plan) {
                fail(plan, ChildStep::Stdio);
            }
        }

        if let Some((soft, hard)) = plan.nofile {
            let limit = libc::rlimit {
                rlim_cur: soft,
                rlim_max: hard,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) < 0 {
                fail(plan, ChildStep::Limits);
            }
        }
        if let Err(step) = crate::process_attrs::apply_privileged(plan.process, plan.oom_text) {
            fail(plan, step);
        }
        libc::umask(plan.umask as libc::mode_t);
        if let Some(creds) = plan.credentials {
            // The raw system calls, not glibc's wrappers: those apply the
            // change to every thread of the process (a signal to each and
            // a wait under a lock), and this child of a multi-threaded
            // relive inherited glibc's list of threads that do not exist
            // here, and maybe a lock another relive thread held at the
            // clone: it waited for ever, and relive for its exec with it.
            // This child has one thread; the kernel's calls are per thread.
            if libc::syscall(
                libc::SYS_setgroups,
                creds.groups.len(),
                creds.groups.as_ptr(),
            ) < 0
                || libc::syscall(libc::SYS_setresgid, creds.gid, creds.gid, creds.gid) < 0
            {
                fail(plan, ChildStep::Group);
            }
        }
        // After the groups (setgroups is denied inside), before the
        // bounding set and the secure bits, which a new user namespace
        // starts full and empty.
        if let Some(maps) = plan.private_users {
            if !crate::userns::enter(maps, plan.namespaces.unshare) {
                fail(plan, ChildStep::User);
            }
            // /dev/null again, from the mount namespace made anew: CRIU
            // finds an open file's mount only in the process's own.
            if plan.namespaces.unshare & libc::CLONE_NEWNS != 0 && !reopen_null(plan) {
                fail(plan, ChildStep::Stdio);
            }
            if plan.namespaces.loopback_up && !crate::namespace::loopback_up() {
                fail(plan, ChildStep::Network);
            }
        }
        if let Some(keep) = plan.bounding_set {
            // Needs CAP_SETPCAP, so before the switch of user.
            for cap in 0..64 {
                if keep & (1 << cap) == 0
                    && libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) < 0
                    && *libc::__errno_location() != libc::EINVAL
                {
                    fail(plan, ChildStep::Capabilities);
                }
            }
        }
        if let Some(creds) = plan.credentials {
            // Capabilities kept through the switch of user, for the
            // ambient set or for setting secure bits (CAP_SETPCAP).
            let keep = (plan.ambient_caps != 0 || plan.process.secure_bits != 0) && creds.uid != 0;
            if keep && libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0 {
                fail(plan, ChildStep::Capabilities);
            }
            if libc::syscall(libc::SYS_setresuid, creds.uid, creds.uid, creds.uid) < 0 {
                fail(plan, ChildStep::User);
            }
            if plan.ambient_caps != 0 && creds.uid != 0 && !raise_ambient(plan.ambient_caps) {
                fail(plan, ChildStep::Capabilities);
            }
        }
        let cwd = plan.cwd.unwrap_or(c"/".as_ptr());
        if libc::chdir(cwd) < 0 && !plan.cwd_optional {
            fail(plan, ChildStep::Chdir);
        }
        if plan.idle_gate.0 >= 0 {
            // Type=idle: until PID 1 closes the gate, at most 5 s.
            libc::close(plan.idle_gate.1);
            let mut gate = libc::pollfd {
                fd: plan.idle_gate.0,
                events: libc::POLLIN,
                revents: 0,
            };
            libc::poll(&mut gate, 1, 5000);
        }
        if let Err(step) = crate::process_attrs::apply_last(plan.process) {
            fail(plan, step);
        }
        if !crate::seccomp::install(plan.seccomp) {
            fail(plan, ChildStep::Seccomp);
        }
        libc::execve(plan.path, plan.argv, plan.envp);
        fail(plan, ChildStep::Exec);
    }
}

/// Opens /dev/null again onto every standard stream that was PID 1's.
unsafe fn reopen_null(plan: &ChildPlan) -> bool {
    // SAFETY: open/dup2/close of a literal path and small integers.
    unsafe {
        let fd = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
        if fd < 0 {
            return false;
        }
        for (stream, target) in [(plan.stdin, 0), (plan.stdout, 1), (plan.stderr, 2)] {
            if stream == plan.devnull && libc::dup2(fd, target) < 0 {
                return false;
            }
        }
        libc::close(fd);
    }
    true
}

/// `struct __user_cap_header_struct` and `__user_cap_data_struct`
/// (linux/capability.h), version 3: two data words of 32 bits.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// After the switch to the service's user (with PR_SET_KEEPCAPS): keep
/// only `caps` in the permitted, effective and inheritable sets, and
/// raise each into the ambient set, so that they survive the exec.
/// Raw system calls only, as everything in the child.
fn raise_ambient(caps: u64) -> bool {
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let word = |shift: u32| (caps >> shift) as u32;
    let mut data = [CapData::default(); 2];
    for (i, d) in data.iter_mut().enumerate() {
        let w = word(32 * i as u32);
        *d = CapData {
            effective: w,
            permitted: w,
            inheritable: w,
        };
    }
    // SAFETY: capset(2) reads a header and two data words of the layout
    // above; prctl(2) takes integers.
    unsafe {
        if libc::syscall(libc::SYS_capset, &mut header, data.as_mut_ptr()) < 0 {
            return false;
        }
        for cap in 0..64 {
            if caps & (1 << cap) != 0
                && libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0
            {
                return false;
            }
        }
        libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0);
    }
    true
}

/// CAP_SETPCAP into the effective set, if it is in the permitted one
/// (root's, or kept through the switch of user); true if it is there.
pub(crate) fn gain_cap_setpcap() -> bool {
    const CAP_SETPCAP: u32 = 8;
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget(2)/capset(2) read and write a header and two data
    // words of the layout above.
    unsafe {
        if libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) < 0 {
            return false;
        }
        let bit = 1 << CAP_SETPCAP;
        if data[0].permitted & bit == 0 {
            return false;
        }
        if data[0].effective & bit != 0 {
            return true;
        }
        data[0].effective |= bit;
        libc::syscall(libc::SYS_capset, &mut header, data.as_mut_ptr()) == 0
    }
}

/// Moves the listening descriptors to 3, 4, ... (not close-on-exec) and
/// writes this child's PID into LISTEN_PID. Async-signal-safe, no
/// allocation: first every descriptor is copied above the target range
/// (so that no move overwrites one still to be moved), then each copy is
/// moved into place.
///
/// # Safety
/// Only in the child between clone and exec, with the plan the parent built.
unsafe fn place_listen_fds(plan: &ChildPlan) -> bool {
    const MAX: usize = 253;
    let n = plan.listen_fds.len().min(MAX);
    let mut high = [0 as RawFd; MAX];
    let floor = 3 + n as RawFd;
    for (i, fd) in plan.listen_fds.iter().take(n).enumerate() {
        // SAFETY: fcntl on a descriptor number; errors are returned.
        high[i] = unsafe { libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, floor) };
        if high[i] < 0 {
            return false;
        }
    }
    for (i, fd) in high.iter().take(n).enumerate() {
        let target = 3 + i as RawFd;
        // SAFETY: dup2 of an open descriptor; the copy is not close-on-exec.
        if unsafe { libc::dup2(*fd, target) } < 0 {
            return false;
        }
        // Services expect blocking descriptors (systemd clears O_NONBLOCK
        // unless NonBlocking=yes; PID 1 only polls its copy).
        // SAFETY: fcntl flag calls on an open descriptor.
        unsafe {
            let flags = libc::fcntl(target, libc::F_GETFL);
            if flags >= 0 {
                libc::fcntl(target, libc::F_SETFL, flags & !libc::O_NONBLOCK);
            }
        }
    }
    // SAFETY: getpid(2) takes nothing.
    let pid = unsafe { libc::getpid() } as u32;
    let (digits, len) = decimal(pid);
    for (i, digit) in digits[..len].iter().enumerate() {
        // SAFETY: the buffer has room for 12 bytes after its prefix, and
        // this child writes its own copy of the parent's memory.
        unsafe { *plan.listen_pid_digits.add(i) = *digit };
    }
    // SAFETY: as above; the terminating NUL.
    unsafe { *plan.listen_pid_digits.add(len) = 0 };
    true
}

/// `n` in decimal, in a stack buffer, and its length: formatting without
/// allocating, for the child between fork and exec.
pub(crate) fn decimal(mut n: u32) -> ([u8; 10], usize) {
    let mut reversed = [0u8; 10];
    let mut len = 0;
    loop {
        reversed[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let mut out = [0u8; 10];
    for i in 0..len {
        out[i] = reversed[len - 1 - i];
    }
    (out, len)
}

/// Reports the failed step and errno on the status pipe, then exits with the
/// step's code.
fn fail(plan: &ChildPlan, step: ChildStep) -> ! {
    fail_at(plan, step, -1)
}

/// `fail`, naming the mount step `index` of the plan.
fn fail_at(plan: &ChildPlan, step: ChildStep, index: i32) -> ! {
    // SAFETY: errno read, write(2) of a stack buffer, _exit(2): all
    // async-signal-safe.
    unsafe {
        let errno = *libc::__errno_location();
        let report = report_bytes(step as i32, errno, index);
        libc::write(plan.status_fd, report.as_ptr().cast(), report.len());
        libc::_exit(step as i32)
    }
}

#[cfg(test)]
mod decimal_tests {
    use super::decimal;

    #[test]
    fn digits_are_decimal() {
        let (buf, len) = decimal(4194304);
        assert_eq!(&buf[..len], b"4194304");
        let (buf, len) = decimal(0);
        assert_eq!(&buf[..len], b"0");
    }
}
