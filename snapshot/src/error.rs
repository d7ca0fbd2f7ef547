//! Why an upgrade did not happen: one variant per step, each naming the
//! unit it concerns and carrying its cause.

use crate::dump::DumpError;
use relive_host::HostError;
use relive_restore::netlock::LockError;
use relive_store::carrier::CarrierError;
use relive_store::kexec::BootError;
use relive_store::memory::MemoryStoreError;
use relive_store::StoreError;
use relive_sys::freezer::FreezeError;

#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    /// PID 1 refused to start (another upgrade runs, or a shutdown).
    #[error("{0}")]
    Refused(HostError),
    #[error("preflight failed: {}", .0.join("; "))]
    Preflight(Vec<String>),
    #[error("option {key}: invalid value {value:?}")]
    BadOption { key: String, value: String },
    #[error("unknown option {0:?} (expected single-phase or store)")]
    UnknownOption(String),
    #[error("pre-dumps are off (upgrade.pre_dump = false in relive.toml)")]
    PreDumpsOff,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    MemoryStore(#[from] MemoryStoreError),
    #[error(transparent)]
    Carrier(#[from] CarrierError),
    /// A helper program (mkfs.ext4) failed.
    #[error(transparent)]
    Host(HostError),
    #[error("{unit}: starting it afresh: {source}")]
    StartAfresh { unit: String, source: HostError },
    #[error("{unit}: stopping it (Mode=restart): {source}")]
    Stop { unit: String, source: HostError },
    #[error("{source}")]
    Park { unit: String, source: HostError },
    #[error("{unit}: {source}")]
    Freeze { unit: String, source: FreezeError },
    #[error("{unit}: CRIU dump failed: {source}")]
    Dump {
        unit: String,
        source: Box<DumpError>,
    },
    /// The dump failed twice, the second time in full.
    #[error("{unit}: CRIU dump failed: {second} (and before: {unit}: CRIU dump failed: {first})")]
    DumpRetry {
        unit: String,
        first: Box<DumpError>,
        second: Box<DumpError>,
    },
    /// The dump failed and took the unit's main process with it.
    #[error("{unit}: CRIU dump failed: {first}; its main process {pid} died with the failed dump")]
    DiedInDump {
        unit: String,
        first: Box<DumpError>,
        pid: i32,
    },
    #[error("{unit}: {source}")]
    Images { unit: String, source: StoreError },
    #[error("{unit}: saving its runtime directories: {source}")]
    RuntimeDirs {
        unit: String,
        source: std::io::Error,
    },
    #[error("{unit}: carrying what waits in the pipes its group shares: {source}")]
    Pipes {
        unit: String,
        source: std::io::Error,
    },
    #[error("{unit}: saving its network lock: {source}")]
    Lock { unit: String, source: LockError },
    #[error("cannot take relive's state: {0}")]
    State(HostError),
    #[error(transparent)]
    Boot(#[from] BootError),
    #[error("relive's upgrade code panicked: {0}")]
    Panic(String),
    #[error("cancelled (relivectl live-upgrade --cancel) before the stoppage")]
    Cancelled,
    #[error("phase 1 reached its deadline ({secs} s, upgrade.pre_dump_deadline_sec) and upgrade.pre_dump_deadline_action = abort")]
    Phase1Deadline { secs: u64 },
}
