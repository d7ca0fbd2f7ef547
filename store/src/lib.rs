//! The handover store: what crosses the kexec, and how it is checked.
//!
//! - [`store`]: the store's files (images, manifest, locks, runtime
//!   directories, the state) and their checksums;
//! - [`memory`]: the store in a `memmap=` region the next kernel leaves
//!   alone, and the choice between it and the disk;
//! - [`backends`]: which places to keep the store in (disk, memory, the
//!   kernel's Live Update Orchestrator) each kernel offers;
//! - [`carrier`]: the interface of such a place, the steps the upgrade
//!   asks of it (open, hand over, take back, close);
//! - [`envelope`]: the versioned, checksummed wrapper of PID 1's state,
//!   for a re-exec and for a kexec;
//! - [`handover`]: what the old kernel's relive tells the new one;
//! - [`pages`]: page images checked block by block as a lazy restore
//!   serves them;
//! - [`rundir`]: RuntimeDirectory= content, carried because /run starts
//!   empty;
//! - [`kexec`]: booting the loaded kernel with the store written.

pub mod backends;
pub mod carrier;
pub mod envelope;
pub mod handover;
pub mod kexec;
pub mod memory;
pub mod pages;
pub mod rundir;
pub mod store;

pub use handover::KexecHandover;
pub use store::{Store, StoreError};
