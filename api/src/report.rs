//! What an upgrade did, unit by unit: `relivectl upgrade-report`, kept in
//! /var/lib/relive/last-upgrade.json and carried across the kexec.
//!
//! The JSON is a compatibility promise (docs/ARCHITECTURE.md, "The
//! handover format"): enums are written as the strings relive 0.1 wrote
//! (`"two-phase"`, `"clean-skip"`, `"state lost: REASON; started
//! afresh"`), and a field that is not set yet is written as the empty
//! string it was, so an older relive or relivectl still reads it.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A unit's [X-LiveUpgrade] Mode=.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnitMode {
    /// Checkpointed before the kexec and restored after it.
    #[default]
    Preserve,
    /// Stopped before the kexec and started after it.
    Restart,
    /// Run again early in the new kernel (network, sysctl).
    Rerun,
}

impl UnitMode {
    pub fn as_str(self) -> &'static str {
        match self {
            UnitMode::Preserve => "preserve",
            UnitMode::Restart => "restart",
            UnitMode::Rerun => "rerun",
        }
    }
}

impl fmt::Display for UnitMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the upgrade snapshotted its units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpgradeMode {
    /// Background pre-dumps, then only what changed in the stoppage.
    TwoPhase,
    /// Everything dumped in the stoppage.
    SinglePhase,
}

impl UpgradeMode {
    pub fn as_str(self) -> &'static str {
        match self {
            UpgradeMode::TwoPhase => "two-phase",
            UpgradeMode::SinglePhase => "single-phase",
        }
    }
}

impl fmt::Display for UpgradeMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a unit's final dump (in the stoppage) had to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FinalDump {
    /// Pre-dumped, and none of its tasks ran since the last pre-dump.
    CleanSkip,
    /// Pre-dumped; its tasks ran: the pages dirtied since.
    Incremental,
    /// No usable pre-dump: everything.
    Full,
}

impl FinalDump {
    pub fn as_str(self) -> &'static str {
        match self {
            FinalDump::CleanSkip => "clean-skip",
            FinalDump::Incremental => "incremental",
            FinalDump::Full => "full",
        }
    }
}

impl fmt::Display for FinalDump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a unit came through the upgrade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Its processes run on, restored from their images.
    Restored,
    /// Mode=restart: stopped and started again.
    Restarted,
    /// Mode=rerun: run again in the new kernel.
    Rerun,
    /// Its state could not be carried: it was started afresh.
    Lost { reason: String },
}

const LOST_PREFIX: &str = "state lost: ";
const LOST_SUFFIX: &str = "; started afresh";

impl Outcome {
    /// Reads the text relive writes; anything unknown is a loss (an
    /// outcome relivectl cannot vouch for).
    pub fn parse(text: &str) -> Outcome {
        match text {
            "restored" => Outcome::Restored,
            "restarted" => Outcome::Restarted,
            "rerun" => Outcome::Rerun,
            other => {
                let reason = other.strip_prefix(LOST_PREFIX).unwrap_or(other);
                let reason = reason.strip_suffix(LOST_SUFFIX).unwrap_or(reason);
                Outcome::Lost {
                    reason: reason.to_owned(),
                }
            }
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Restored => f.write_str("restored"),
            Outcome::Restarted => f.write_str("restarted"),
            Outcome::Rerun => f.write_str("rerun"),
            Outcome::Lost { reason } => write!(f, "{LOST_PREFIX}{reason}{LOST_SUFFIX}"),
        }
    }
}

/// `None` as `""`, as relive 0.1 wrote a field not set yet.
mod empty_as_none {
    use super::*;
    use serde::de::IntoDeserializer;

    pub fn serialize<T: Serialize, S: Serializer>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => v.serialize(s),
            None => s.serialize_str(""),
        }
    }

    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<T>, D::Error> {
        let text = String::deserialize(d)?;
        if text.is_empty() {
            return Ok(None);
        }
        let de: serde::de::value::StringDeserializer<D::Error> = text.into_deserializer();
        T::deserialize(de).map(Some)
    }
}

/// An [`Outcome`] as its text, `None` as `""`.
mod outcome_text {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Option<Outcome>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(o) => s.collect_str(o),
            None => s.serialize_str(""),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Outcome>, D::Error> {
        let text = String::deserialize(d)?;
        Ok((!text.is_empty()).then(|| Outcome::parse(&text)))
    }
}

/// A FIFO a unit's process holds, opened in another service's mount
/// namespace (logind makes an ssh login's session FIFO in its own and
/// hands it to sshd): CRIU cannot name its mount, so it is dumped as an
/// external file and given back at the restore, opened again by its path.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignFifo {
    /// CRIU's name for it: `file[MNT_ID:INODE]`, both in hex.
    pub key: String,
    /// Where it is, relative to /run (carried with the runtime files).
    pub run_path: String,
}

/// A listening socket of a socket unit (Accept=no) that the preserved
/// service was handed (socket activation): it crosses the kexec in the
/// service's images, and PID 1 takes its copy back from the restored
/// process, so that the socket unit listens on it again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CarriedListener {
    pub socket_unit: String,
    /// Its place among the socket unit's Listen*= lines.
    pub index: usize,
    /// Its descriptor in the service's main process.
    pub fd: i32,
}

/// The offsets of the time namespace every service reads its clocks in
/// after a live upgrade (relive_sys::timens): one clock for the system.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockOffsets {
    pub monotonic_ns: i64,
    pub boottime_ns: i64,
}

/// A unix socket's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnixKind {
    #[default]
    Stream,
    Dgram,
    Seqpacket,
}

impl UnixKind {
    pub fn name(self) -> &'static str {
        match self {
            UnixKind::Stream => "stream",
            UnixKind::Dgram => "dgram",
            UnixKind::Seqpacket => "seqpacket",
        }
    }
}

/// What is at the other end of a unix socket a preserved unit holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TiePeer {
    /// A socket of another preserved unit: the two are checkpointed as a
    /// group and connected again at the restore.
    Unit { unit: String, inode: u64 },
    /// A process that does not cross the kexec (a restarted unit, relive,
    /// a passing command): the restored socket's peer is gone, as if the
    /// other side had closed; `why` says who it was.
    Reset { why: String },
}

/// A unix socket of a preserved unit whose other end is not in the unit:
/// CRIU checkpoints one process tree, so it dumps this end as external
/// and relive hands the restored process a socket in its place, from a
/// pair whose other end goes to the peer (or is closed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnixTie {
    /// This end's inode (CRIU's `socket:[INODE]`).
    pub inode: u64,
    pub kind: UnixKind,
    /// The address either end is bound to (a path, `@abstract`), if any.
    pub name: String,
    /// The process's descriptor was non-blocking.
    pub nonblocking: bool,
    pub peer: TiePeer,
    /// Bytes waiting to be read, carried with the images.
    pub queued: u64,
}

/// A pipe or FIFO a preserved unit shares with other preserved units of
/// its group, and with nobody else. Each unit's restore would otherwise
/// make a pipe of its own: relive hands every holder's restore the same
/// new pipe (CRIU's `--inherit-fd pipe:[INODE]`) or keeps the FIFO open
/// across them, and writes what was waiting in it once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipeTie {
    /// The pipe's inode (pipefs), or the FIFO's on its file system.
    pub inode: u64,
    /// The FIFO's path, as relive sees it; `None` for an anonymous pipe.
    pub fifo: Option<String>,
    /// The other preserved units that hold it.
    pub units: Vec<String>,
    /// Its capacity (F_GETPIPE_SZ), given to the new pipe.
    pub capacity: u64,
    /// Bytes waiting in it, carried in the store and written back once.
    pub queued: u64,
}

impl PipeTie {
    /// How relive and CRIU name it: `pipe:[INODE]`, or `fifo:PATH`.
    pub fn key(&self) -> String {
        match &self.fifo {
            None => format!("pipe:[{}]", self.inode),
            Some(path) => format!("fifo:{path}"),
        }
    }

    /// Its file in the store's queue directory.
    pub fn queue_file(&self) -> String {
        match &self.fifo {
            None => format!("pipe-{}", self.inode),
            Some(_) => format!("fifo-{}", self.inode),
        }
    }
}

/// One unit's journey through the upgrade.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UnitRecord {
    pub name: String,
    pub mode: UnitMode,
    #[serde(default)]
    pub priority: u16,
    #[serde(default)]
    pub main_pid: i32,
    /// The root of the tree CRIU checkpointed, where it is not the main
    /// process (a supervisor whose PID file names its child); 0 otherwise.
    #[serde(default)]
    pub tree_root: i32,
    /// The tree's root led no session of its own: CRIU dumped it as a
    /// shell job, and restores it so.
    #[serde(default)]
    pub shell_job: bool,
    #[serde(default)]
    pub pids: Vec<u32>,
    /// Relative to the cgroup2 root.
    #[serde(default)]
    pub cgroup: String,
    /// Inodes of the output pipes its processes wrote to.
    #[serde(default)]
    pub pipes: Vec<u64>,
    /// Its RuntimeDirectory= names and the files under /run it held open,
    /// carried in the store.
    #[serde(default)]
    pub runtime_dirs: Vec<String>,
    /// The files under /dev/shm it held open or mapped, carried in the
    /// store.
    #[serde(default)]
    pub shm_files: Vec<String>,
    /// FIFOs it held that another service's mount namespace opened.
    #[serde(default)]
    pub foreign_fifos: Vec<ForeignFifo>,
    /// Unix sockets whose other end is outside the unit.
    #[serde(default)]
    pub unix_ties: Vec<UnixTie>,
    /// Pipes and FIFOs shared with other units of its group.
    #[serde(default)]
    pub pipe_ties: Vec<PipeTie>,
    /// Its socket units' listening sockets, carried in its images.
    #[serde(default)]
    pub listeners: Vec<CarriedListener>,
    /// The nftables table holding new connections to its TCP listeners
    /// (`inet relive-hold`, shared by the parked units; an older relive
    /// made `inet relive-hold-MAIN_PID`), saved in the store; empty if
    /// none.
    #[serde(default)]
    pub hold_table: String,
    /// The ports held in that table's set (none: the table was the
    /// unit's own).
    #[serde(default)]
    pub hold_ports: Vec<u16>,
    /// Connections to its TCP listeners that the kernel had completed
    /// before the hold but the service had not accepted when it was
    /// frozen: CRIU cannot carry them, their clients see a reset.
    #[serde(default)]
    pub unaccepted_reset: u32,
    #[serde(default)]
    pub image_bytes: u64,
    /// Wall clock (µs since the epoch) when it was frozen.
    #[serde(default)]
    pub frozen_usec: u64,
    #[serde(default)]
    pub dump_ms: f64,
    /// A network-lock table was saved for its connections.
    #[serde(default)]
    pub lock_saved: bool,
    /// Its name (CRIU 4 names it by the dump's run id).
    #[serde(default)]
    pub lock_table: String,
    #[serde(default)]
    pub restore_ms: Option<f64>,
    /// Checking its images against the manifest, before the restore (not
    /// in restore_ms).
    #[serde(default)]
    pub verify_ms: Option<f64>,
    /// Wall clock when it ran again.
    #[serde(default)]
    pub running_usec: Option<u64>,
    /// None until the new kernel has dealt with it.
    #[serde(default, with = "outcome_text")]
    pub outcome: Option<Outcome>,
    /// A unit started afresh (its state lost): its new main PID (`pids`
    /// are the ones it had when frozen).
    #[serde(default)]
    pub new_main_pid: Option<i32>,
    /// Phase 1: the background pre-dump rounds, in order.
    #[serde(default)]
    pub pre_dumps: Vec<PreDumpRound>,
    /// Why the pre-dump rounds stopped (or why there were none).
    #[serde(default)]
    pub convergence: String,
    /// None for a unit that was not dumped.
    #[serde(default, with = "empty_as_none")]
    pub final_dump: Option<FinalDump>,
    /// Bytes CRIU wrote in the final dump, i.e. during the stoppage.
    #[serde(default)]
    pub stoppage_bytes: u64,
    /// OnRestoreFailure=rollback.
    #[serde(default)]
    pub rollback: bool,
    /// To be restored lazily (`upgrade.lazy_restore`, `relivectl
    /// live-upgrade --lazy-restore`): its processes run before their
    /// memory is back, each page served, checked, as they touch it.
    #[serde(default)]
    pub lazy_restore: bool,
    /// How its lazy restore went; None: restored whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lazy: Option<LazyFigures>,
    /// What CRIU 3.17 does not carry, read when the unit was frozen and
    /// set again by relive: the main process's no_new_privs (CRIU restores
    /// with it, and the restored tree inherits it)...
    #[serde(default)]
    pub no_new_privs: bool,
    /// ...and each process's I/O priority other than the default (PID,
    /// ioprio_get(2)'s value), set again once it runs.
    #[serde(default)]
    pub ioprios: Vec<(u32, i32)>,
    /// The main process had a mount namespace of its own (a sandbox):
    /// CRIU dumped it and must rebuild it on the restore.
    #[serde(default)]
    pub own_mount_namespace: bool,
    /// Its mounts' protective flags when it was frozen (mount point, in
    /// mountinfo's order): CRIU 3.17 loses them on the namespace's root
    /// and on the mounts it binds from PID 1's; relive sets them again.
    #[serde(default)]
    pub mount_flags: Vec<(String, Vec<MountFlag>)>,
    /// Why the plan gave it its mode (for a restarted or rerun unit: why
    /// it was not preserved).
    #[serde(default)]
    pub why: String,
}

/// A lazy restore's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LazyFigures {
    /// Bytes of memory left to the page server.
    pub lazy_bytes: u64,
    /// Bytes restored with the processes (the pages a dump keeps eager).
    pub eager_bytes: u64,
    /// Bytes the page server sent, and in how many requests.
    pub served_bytes: u64,
    pub requests: u64,
    /// From the processes running again to the last page served (ms):
    /// the lazy tail. None if none was served.
    pub tail_ms: Option<f64>,
    /// Why the page source failed, when it did: its processes were then
    /// killed and the unit started afresh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

/// A per-mount flag a sandbox sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MountFlag {
    ReadOnly,
    NoExec,
    NoSuid,
    NoDev,
}

impl MountFlag {
    const NAMES: [(MountFlag, &'static str); 4] = [
        (MountFlag::ReadOnly, "ro"),
        (MountFlag::NoExec, "noexec"),
        (MountFlag::NoSuid, "nosuid"),
        (MountFlag::NoDev, "nodev"),
    ];

    /// As mountinfo and mount(8) write it (`ro`).
    pub fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(f, _)| *f == self)
            .map_or("", |(_, n)| n)
    }

    pub fn from_name(name: &str) -> Option<MountFlag> {
        Self::NAMES
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(f, _)| *f)
    }
}

/// One background pre-dump of one unit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PreDumpRound {
    pub round: u32,
    /// Wall clock when it started.
    pub started_usec: u64,
    pub duration_ms: f64,
    /// How long CRIU kept the tasks frozen (its stats), when known.
    pub frozen_ms: Option<f64>,
    /// Pages written in this round: all of them in the first, the ones
    /// dirtied since the previous round afterwards.
    pub pages_written: u64,
    /// Bytes of this round's images.
    pub bytes: u64,
    /// Whether any of the unit's tasks had used the CPU since the previous
    /// round (always true for the first).
    pub ran: bool,
}

impl UnitRecord {
    /// The process whose tree CRIU checkpointed: the main one, or the
    /// supervisor above it.
    pub fn dumped_root(&self) -> i32 {
        if self.tree_root != 0 {
            self.tree_root
        } else {
            self.main_pid
        }
    }

    /// Frozen → running again, in milliseconds (wall clock).
    pub fn stoppage_ms(&self) -> Option<f64> {
        let running = self.running_usec?;
        (self.frozen_usec > 0).then(|| running.saturating_sub(self.frozen_usec) as f64 / 1000.0)
    }

    /// A record for a unit that was not checkpointed (restart, rerun).
    pub fn not_dumped(name: &str, mode: UnitMode, outcome: Outcome) -> UnitRecord {
        UnitRecord {
            name: name.to_owned(),
            mode,
            outcome: Some(outcome),
            ..UnitRecord::default()
        }
    }
}

/// A unit whose state was lost before the stoppage (its process died with
/// a failed pre-dump) and that was started afresh: it went on to be
/// preserved as it then was, so its record's outcome does not show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Loss {
    pub unit: String,
    pub reason: String,
}

impl fmt::Display for Loss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {LOST_PREFIX}{}{LOST_SUFFIX}",
            self.unit, self.reason
        )
    }
}

/// What phase 1 cost the machine (snapshot/src/budget.rs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phase1Cpu {
    pub wall_ms: f64,
    /// CPU time the pre-dumps' CRIU used (its cgroup's cpu.stat); None
    /// when it did not run in its cgroup.
    pub criu_cpu_ms: Option<f64>,
    /// Time in which a service waited for a CPU (system.slice's
    /// cpu.pressure, "some"); None without PSI.
    pub services_cpu_wait_ms: Option<f64>,
    /// The same as a share of time over the 10 s before phase 1 (avg10).
    pub services_cpu_wait_before_percent: Option<f64>,
}

impl Phase1Cpu {
    /// "CRIU used 3.1 s of CPU in 40.2 s; the services waited for a CPU
    /// 12.0 % of the time (10.5 % before)".
    pub fn summary(&self) -> String {
        let mut line = format!("phase 1 took {:.1} s", self.wall_ms / 1000.0);
        if let Some(criu) = self.criu_cpu_ms {
            line += &format!(", CRIU used {:.1} s of CPU", criu / 1000.0);
        }
        if let Some(wait) = self.services_cpu_wait_ms {
            let percent = wait / self.wall_ms.max(1.0) * 100.0;
            line += &format!("; the services waited for a CPU {percent:.1} % of the time");
            if let Some(before) = self.services_cpu_wait_before_percent {
                line += &format!(" ({before:.1} % in the 10 s before)");
            }
        }
        line
    }
}

/// One piece of work done in the new kernel before the first restore.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EarlyStep {
    pub work: EarlyWork,
    /// When it was done, in ms after relive started in the new kernel.
    pub done_ms: f64,
    /// false: it failed (the restores went on; the log says why).
    pub ok: bool,
}

/// What an [`EarlyStep`] was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EarlyWork {
    /// The kernel modules the first steps need, loaded by one modprobe.
    Modules,
    /// systemd's generators run (their unit files written). No longer
    /// before the first restore (they run beside the restores since the
    /// units come from the handover); kept so older reports still read.
    Generators,
    /// The store attached (the memory store's modules loaded) and the
    /// handover read: relive knows what to resume.
    Handover,
    /// The units set up from the handover: the resume starts.
    Units,
    /// CRIU's network lock tables loaded again.
    NetworkLocks,
    /// The interfaces' addresses and routes put back by relive.
    Network,
    /// CRIU's probe of the new kernel (FEATURE_CHECK: its kerndat, cached
    /// for the restores).
    CriuProbe,
    /// A rerun unit, or a mount a restored namespace binds.
    Unit(String),
}

/// "CRIU's probe +4.7 s", " (failed)" after one that failed.
impl std::fmt::Display for EarlyStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} +{:.1} s", self.work, self.done_ms / 1000.0)?;
        if !self.ok {
            f.write_str(" (failed)")?;
        }
        Ok(())
    }
}

impl std::fmt::Display for EarlyWork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EarlyWork::Modules => f.write_str("the modules loaded"),
            EarlyWork::Generators => f.write_str("the generators run"),
            EarlyWork::Handover => f.write_str("the handover read"),
            EarlyWork::Units => f.write_str("the units loaded"),
            EarlyWork::NetworkLocks => f.write_str("network locks"),
            EarlyWork::Network => f.write_str("addresses and routes"),
            EarlyWork::CriuProbe => f.write_str("CRIU's probe"),
            EarlyWork::Unit(name) => f.write_str(name),
        }
    }
}

/// Where the new kernel's boot went, by its own clock (CLOCK_BOOTTIME:
/// ms from its start) and its log: the part of the floor after the
/// kexec that the kernel can see. Before its clock started: the kexec's
/// purgatory and the kernel's decompression.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KernelBoot {
    /// The initramfs unpacked ("Freeing initrd memory").
    #[serde(default)]
    pub initramfs_unpacked_ms: Option<f64>,
    /// The first process ran ("Run /init as init process").
    #[serde(default)]
    pub init_started_ms: Option<f64>,
    /// The first file system from a disk mounted (the root, by the
    /// initramfs).
    #[serde(default)]
    pub root_mounted_ms: Option<f64>,
    /// relive started.
    pub relive_started_ms: f64,
}

impl std::fmt::Display for KernelBoot {
    /// "initramfs unpacked at 1.90 s, /init at 2.10 s, root mounted at
    /// 4.80 s, relive at 6.20 s of the new kernel's clock".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let marks = [
            ("initramfs unpacked", self.initramfs_unpacked_ms),
            ("/init", self.init_started_ms),
            ("root mounted", self.root_mounted_ms),
            ("relive", Some(self.relive_started_ms)),
        ];
        let shown: Vec<String> = marks
            .iter()
            .filter_map(|(what, ms)| Some(format!("{what} at {:.2} s", (*ms)? / 1000.0)))
            .collect();
        write!(f, "{} of the new kernel's clock", shown.join(", "))
    }
}

/// `relivectl upgrade-report`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpgradeReport {
    pub kernel_from: String,
    pub kernel_to: String,
    pub started_usec: u64,
    pub kexec_usec: u64,
    /// relive started in the new kernel.
    pub resumed_usec: u64,
    /// The network locks and the rerun units done: the restores began.
    #[serde(default)]
    pub restores_started_usec: u64,
    /// What ran in the new kernel before the first restore, each with
    /// when it was done: where the time between `resumed_usec` and
    /// `restores_started_usec` went.
    #[serde(default)]
    pub before_restores: Vec<EarlyStep>,
    /// Where the new kernel's boot went, before relive started.
    #[serde(default)]
    pub new_kernel_boot: Option<KernelBoot>,
    pub finished_usec: u64,
    pub units: Vec<UnitRecord>,
    #[serde(default, with = "empty_as_none")]
    pub mode: Option<UpgradeMode>,
    #[serde(default)]
    pub phase1_started_usec: u64,
    #[serde(default)]
    pub phase1_ended_usec: u64,
    /// What phase 1 cost the machine; None for single-phase upgrades.
    #[serde(default)]
    pub phase1_cpu: Option<Phase1Cpu>,
    /// Which store carried the images, and why.
    #[serde(default)]
    pub store: String,
    #[serde(default)]
    pub notes: Vec<String>,
    /// States lost before the stoppage (also in `notes`, as text).
    #[serde(default)]
    pub losses: Vec<Loss>,
    /// Why the upgrade went back to the previous kernel, if it did.
    #[serde(default)]
    pub rolled_back: Option<String>,
    /// Set when the upgrade did not happen: why, and what was undone (the
    /// machine still runs `kernel_from`).
    #[serde(default)]
    pub aborted: Option<String>,
    pub total_image_bytes: u64,
    pub longest_stoppage_ms: f64,
    /// How times across the kexec were measured, and their error.
    pub clock: String,
    /// The offsets of the one time namespace the services read their
    /// clocks in since this upgrade; None where it could not be made
    /// (each restored unit then has CRIU's offsets of its own).
    #[serde(default)]
    pub clock_offsets: Option<ClockOffsets>,
}

impl UpgradeReport {
    /// The units whose state was lost, with why: in the stoppage or the
    /// restore (their outcome), or before (`losses`).
    pub fn lost(&self) -> impl Iterator<Item = (&str, &str)> {
        let restored = self.units.iter().filter_map(|u| match &u.outcome {
            Some(Outcome::Lost { reason }) => Some((u.name.as_str(), reason.as_str())),
            _ => None,
        });
        let before = self
            .losses
            .iter()
            .map(|l| (l.unit.as_str(), l.reason.as_str()));
        restored.chain(before)
    }
}

pub const CLOCK_NOTE: &str =
    "wall clock (CLOCK_REALTIME); across the kexec the new kernel sets it from the RTC, \
so times that span the kexec carry an error of up to about 1 s";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_read_back_from_their_text() {
        for o in [
            Outcome::Restored,
            Outcome::Restarted,
            Outcome::Rerun,
            Outcome::Lost {
                reason: "images refused: pages-1.img does not match".into(),
            },
        ] {
            assert_eq!(Outcome::parse(&o.to_string()), o);
        }
    }

    #[test]
    fn unset_fields_are_written_as_relive_0_1_wrote_them() {
        let record = UnitRecord {
            name: "a.service".into(),
            ..UnitRecord::default()
        };
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["outcome"], "");
        assert_eq!(json["final_dump"], "");
        assert_eq!(json["mode"], "preserve");
        let back: UnitRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back, record);
        let lost = UnitRecord {
            outcome: Some(Outcome::Lost { reason: "x".into() }),
            final_dump: Some(FinalDump::CleanSkip),
            ..record
        };
        let json = serde_json::to_value(&lost).unwrap();
        assert_eq!(json["outcome"], "state lost: x; started afresh");
        assert_eq!(json["final_dump"], "clean-skip");
    }
}
