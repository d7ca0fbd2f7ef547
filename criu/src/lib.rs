//! relive's own CRIU client: CRIU's RPC protocol over `criu swrk`.
//!
//! relive talks to CRIU as libcriu does, without libcriu: it makes a
//! `SOCK_SEQPACKET` socket pair, starts `criu swrk <fd>` with one end
//! (through a [`Spawner`], because PID 1 spawns and reaps its children
//! itself), and exchanges one protobuf message per packet: `criu_req` out,
//! `criu_resp` in. The message types are generated at build time from the
//! `rpc.proto` that Debian's `criu` package installs.
//!
//! ```no_run
//! use relive_criu::{CommandSpawner, Criu};
//! let spawner = CommandSpawner::new(); // tools and tests only, not PID 1
//! let version = Criu::default().start(&spawner)?.version()?;
//! println!("CRIU {version}");
//! spawner.wait_all()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A pre-dump series and its final dump share one session:
//! `session.pre_dump(..)` any number of times, then `session.dump(..)`.
//! Every wait for CRIU is bounded (`Criu::reply_timeout`); on a timeout CRIU
//! may still be running, and the caller kills it by `Session::pid`.

pub mod activity;
mod error;
mod images;
mod log;
mod options;
pub mod pagemap;
pub mod pid1;
mod proto;
mod session;
mod spawn;
mod stats;
mod transport;

pub use error::{CriuError, Request};
pub use images::images_size;
pub use options::{
    CgroupMode, CgroupRoot, CheckOptions, DumpOptions, InheritFd, LogLevel, NetworkLock,
    PreDumpMode, RestoreOptions,
};
pub use session::{
    Criu, CriuVersion, DumpOutcome, Features, Notification, RestoreOutcome, Session,
};
pub use spawn::{CommandSpawner, Spawner};
pub use stats::{read_dump_stats, DumpStats, StatsError};

#[cfg(test)]
mod host_tests;
#[cfg(test)]
mod tests;
