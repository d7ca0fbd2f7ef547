//! Checkpointing one unit with CRIU, behind the [`Dumper`] trait: a
//! background pre-dump round, the final dump in the stoppage, and `criu
//! check`. [`CriuDumper`] runs CRIU; tests use a fake.

use crate::budget::{CpuBudget, HeldWatch};
use relive_config::PreDumpMode;
use relive_criu::pid1::{make_idle, timeout_for, BackgroundSpawner, Pid1Spawner};
use relive_criu::{CgroupMode, Criu, CriuError, DumpOptions, LogLevel, NetworkLock, Spawner};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

/// Why a dump or pre-dump failed.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    #[error(transparent)]
    Criu(#[from] CriuError),
    #[error(transparent)]
    Store(#[from] relive_store::StoreError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The lab's fault injection (the text says which).
    #[cfg(feature = "fault-injection")]
    #[error("{0}")]
    Injected(String),
}

/// How a pre-dump's CRIU gets the CPU and the disk
/// (`upgrade.pre_dump_idle_priority`, `upgrade.pre_dump_cpu_share`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreDumpPriority {
    /// The services' own.
    Normal,
    /// SCHED_IDLE and the idle I/O class: nothing of a busy machine.
    Idle,
    /// The idle I/O class, and this percent of a busy machine's CPUs
    /// (`budget.rs`).
    Share(u32),
}

/// One pre-dump round: the unit's memory into `dir`, its tasks frozen
/// only while CRIU collects their mappings.
#[derive(Debug, Clone)]
pub struct PreDumpJob<'a> {
    pub unit: &'a str,
    /// The process whose tree CRIU dumps: the unit's topmost one.
    pub root_pid: i32,
    /// The root leads no session of its own (a supervisor whose start
    /// process, the session's leader, has exited): CRIU dumps it as a
    /// shell job, its session and group taken as outside the tree.
    pub shell_job: bool,
    /// Created empty by the caller.
    pub dir: &'a Path,
    /// The previous round's directory, relative to `dir`.
    pub parent: Option<PathBuf>,
    pub mode: PreDumpMode,
    /// How CRIU gets the CPU and the disk.
    pub priority: PreDumpPriority,
    /// Roughly what CRIU writes: how long it may stay silent.
    pub estimated_bytes: u64,
}

/// The final dump of a frozen unit: CRIU ends its processes.
#[derive(Debug, Clone)]
pub struct DumpJob<'a> {
    pub unit: &'a str,
    /// The process whose tree CRIU dumps: the unit's topmost one.
    pub root_pid: i32,
    /// The root leads no session of its own (a supervisor whose start
    /// process, the session's leader, has exited): CRIU dumps it as a
    /// shell job, its session and group taken as outside the tree.
    pub shell_job: bool,
    pub dir: &'a Path,
    /// The unit's frozen cgroup (CRIU must be told: LAB.md).
    pub cgroup_dir: &'a Path,
    /// The last pre-dump's directory, relative to `dir`: only the pages
    /// dirtied since are written. None: a full dump.
    pub parent: Option<PathBuf>,
    pub estimated_bytes: u64,
    /// CRIU's names of the files to dump as external (`file[MNT:INO]`).
    pub external: Vec<String>,
}

/// CRIU, as the upgrade uses it.
pub trait Dumper: Sync {
    fn pre_dump(&self, job: &PreDumpJob<'_>) -> Result<(), DumpError>;
    fn dump(&self, job: &DumpJob<'_>) -> Result<(), DumpError>;
    /// `criu check`; returns the version of the CRIU that passed it.
    fn check(&self) -> Result<relive_criu::CriuVersion, DumpError>;
}

/// CRIU through its RPC, started by PID 1 (`criu swrk`).
#[derive(Debug, Clone)]
pub struct CriuDumper {
    pub criu: PathBuf,
    /// Where `criu check` keeps its log (tmpfs, root only).
    pub check_dir: PathBuf,
}

impl CriuDumper {
    pub fn new(criu: &Path) -> CriuDumper {
        CriuDumper {
            criu: criu.to_owned(),
            check_dir: "/run/relive/criu-check".into(),
        }
    }

    fn client(&self, bytes: u64) -> Criu {
        Criu {
            path: self.criu.clone(),
            reply_timeout: timeout_for(bytes),
        }
    }
}

/// SIGKILLs a CRIU that did not answer in time (it has not exited: its PID
/// is still its own, a child of relive that only relive's loop reaps) and
/// waits until it has ended, so that it no longer holds any task.
fn kill_and_wait(criu: i32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(criu),
        nix::sys::signal::Signal::SIGKILL,
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let proc = Path::new("/proc");
    while relive_criu::activity::alive(proc, criu as u32) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    if relive_criu::activity::alive(proc, criu as u32) {
        tracing::error!("CRIU (PID {criu}) is still running 10 s after SIGKILL");
    }
}

/// The lab's faults for a dump or pre-dump of `unit`: `fails` fails it as
/// CRIU would, `kills` also kills its main process.
#[cfg(feature = "fault-injection")]
fn injected_failure(
    fails: relive_host::fault::Fault,
    kills: relive_host::fault::Fault,
    unit: &str,
    main_pid: i32,
) -> Result<(), DumpError> {
    use relive_host::fault;
    if fault::injected(fails, unit) {
        let text = format!("injected fault ({})", fault::FAULT_FILE);
        return Err(DumpError::Injected(text));
    }
    if fault::injected(kills, unit) {
        return Err(DumpError::Injected(fault::kill_process(kills, main_pid)));
    }
    Ok(())
}

fn open_dir(dir: &Path) -> Result<std::fs::File, DumpError> {
    std::fs::File::open(dir).map_err(|source| DumpError::Io {
        path: dir.to_owned(),
        source,
    })
}

impl Dumper for CriuDumper {
    fn pre_dump(&self, job: &PreDumpJob<'_>) -> Result<(), DumpError> {
        #[cfg(feature = "fault-injection")]
        {
            use relive_host::fault::Fault;
            injected_failure(
                Fault::PreDumpFail,
                Fault::PreDumpKills,
                job.unit,
                job.root_pid,
            )?;
        }
        let dir = open_dir(job.dir)?;
        let mut options = DumpOptions::new(job.root_pid, dir.as_fd());
        options.shell_job = job.shell_job;
        options.track_mem = true;
        options.parent_img = job.parent.clone();
        options.pre_dump_mode = Some(match job.mode {
            PreDumpMode::Read => relive_criu::PreDumpMode::Read,
            PreDumpMode::Splice => relive_criu::PreDumpMode::Splice,
        });
        options.log_file = Some("pre-dump.log".into());
        options.log_level = LogLevel::Info;
        let plain = Pid1Spawner::default();
        // Set up each round (a few cgroup files beside CRIU's seconds), so
        // that the weight follows the cgroups populated now.
        let budget = match job.priority {
            PreDumpPriority::Share(share) => CpuBudget::set_up(share)
                .inspect_err(|e| {
                    tracing::warn!(
                        "cannot set up the pre-dumps' CPU share ({e}): CRIU runs at SCHED_IDLE"
                    )
                })
                .ok(),
            _ => None,
        };
        let budgeted = budget
            .clone()
            .map(|b| BackgroundSpawner(move |pid| b.take_in(pid)));
        let idle = BackgroundSpawner(make_idle);
        let spawner: &dyn Spawner = match (&budgeted, job.priority) {
            (Some(budgeted), _) => budgeted,
            (None, PreDumpPriority::Normal) => &plain,
            (None, _) => &idle,
        };
        // CRIU waits for another PRE_DUMP or the DUMP after a pre-dump; the
        // session is dropped instead, which ends it: the final dump runs in a
        // CRIU of its own, at normal priority, reading this chain.
        let mut session = self.client(job.estimated_bytes).start(spawner)?;
        #[cfg(feature = "fault-injection")]
        {
            use relive_host::fault::{self, Fault};
            if fault::injected(Fault::CriuKillPreDump, job.unit) {
                fault::kill_with_parasite_in(session.pid(), job.root_pid);
            }
        }
        // Until CRIU lets go of the tasks, it gets the CPU first.
        let _held = budget.as_ref().map(|b| HeldWatch::start(b, job.root_pid));
        if let Err(e) = session.pre_dump(&options, |_| {}) {
            if matches!(e, CriuError::Timeout { .. }) {
                // A CRIU that timed out still holds the tasks: it goes.
                kill_and_wait(session.pid());
            }
            return Err(e.into());
        }
        Ok(())
    }

    fn dump(&self, job: &DumpJob<'_>) -> Result<(), DumpError> {
        #[cfg(feature = "fault-injection")]
        {
            use relive_host::fault::Fault;
            injected_failure(Fault::DumpFail, Fault::DumpKills, job.unit, job.root_pid)?;
        }
        let dir = open_dir(job.dir)?;
        let mut options = DumpOptions::new(job.root_pid, dir.as_fd());
        options.shell_job = job.shell_job;
        options.leave_running = false;
        options.tcp_established = true;
        // A connection the kernel completed on a listener but the service
        // had not accepted would fail the whole dump; relive held new ones
        // before the freeze (relive_restore::syn_hold) and counts the rest
        // in the report, reset.
        options.tcp_skip_in_flight = true;
        options.ext_unix_sk = true;
        options.file_locks = true;
        options.freeze_cgroup = Some(job.cgroup_dir.to_owned());
        options.manage_cgroups = Some(CgroupMode::Soft);
        options.network_lock = Some(NetworkLock::Nftables);
        options.log_file = Some("dump.log".into());
        options.log_level = LogLevel::Info;
        options.parent_img = job.parent.clone();
        options.track_mem = job.parent.is_some();
        options.external = job.external.clone();
        let session = self
            .client(job.estimated_bytes)
            .start(&Pid1Spawner::default())?;
        #[cfg(feature = "fault-injection")]
        {
            use relive_host::fault::{self, Fault};
            if fault::injected(Fault::CriuKillDump, job.unit) {
                fault::kill_with_parasite_in(session.pid(), job.root_pid);
            }
            if fault::injected(Fault::DumpHangs, job.unit) {
                tracing::warn!(
                    "injected fault dump-hangs: stopping CRIU (PID {})",
                    session.pid()
                );
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(session.pid()),
                    nix::sys::signal::Signal::SIGSTOP,
                );
            }
        }
        let criu = session.pid();
        if let Err(e) = session.dump(&options, |_| {}) {
            if matches!(e, CriuError::Timeout { .. }) {
                // A CRIU that timed out still holds the tasks (ptrace,
                // maybe its parasite inside): it goes, and is gone, before
                // anyone retries, thaws or restores them.
                kill_and_wait(criu);
            }
            return Err(e.into());
        }
        Ok(())
    }

    fn check(&self) -> Result<relive_criu::CriuVersion, DumpError> {
        relive_criu::pid1::check(&self.criu, &self.check_dir).map_err(|e| match e {
            relive_criu::pid1::CheckError::Criu(e) => DumpError::Criu(e),
            relive_criu::pid1::CheckError::Io { path, source } => DumpError::Io { path, source },
        })
    }
}
