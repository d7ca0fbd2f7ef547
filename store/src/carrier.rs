//! What carries a store's files across the kexec, as one interface: the
//! disk (a directory on the root file system, which the next kernel mounts
//! as every boot does) and memory (a `memmap=` region both kernels leave
//! alone, an ext4 on its pmem device, see [`crate::memory`]).
//!
//! The upgrade asks a [`Carrier`] for four things, in this order: make
//! room for a new store ([`Carrier::open`]), let go of it right before the
//! kexec ([`Carrier::hand_over`]), find it again in the next kernel, or in
//! this one when the kexec failed ([`Carrier::take_back`]), and let go of
//! it once the store is wiped ([`Carrier::close`]). The kernel's own Live
//! Update Orchestrator (memfds preserved through `/dev/liveupdate`) fits
//! the same four steps: open a session, preserve the store's memfds, take
//! them back by their tokens in the next kernel, finish the session. It is
//! a third implementation and a third [`Backend`] arm in
//! [`crate::backends::offers`], once a kernel relive runs on builds it.

use crate::backends::Backend;
use crate::memory::{self, MemoryStoreError};
use relive_api::plan::StoreChoice;
use std::path::{Path, PathBuf};

/// Why a carrier could not do its step.
#[derive(Debug, thiserror::Error)]
pub enum CarrierError {
    #[error(transparent)]
    Memory(#[from] MemoryStoreError),
    /// A program it runs (mkfs) failed.
    #[error("{program}: {reason}")]
    Helper { program: String, reason: String },
}

/// Runs a helper program to its end: PID 1 runs it (and reaps it).
pub type RunHelper<'a> = &'a dyn Fn(&[&str]) -> Result<(), String>;

/// A place a store crosses the kexec in.
pub trait Carrier: std::fmt::Debug {
    fn backend(&self) -> Backend;
    /// Ready to hold a store (the memory store: a fresh ext4, mounted,
    /// unless one is mounted already: a warm snapshot lives on it).
    fn open(&self, run: RunHelper) -> Result<(), CarrierError>;
    /// Right before the kexec: nothing the next kernel must find is left
    /// in this kernel's hands (the memory store unmounted clean).
    fn hand_over(&self) -> Result<(), CarrierError>;
    /// The store as it was handed over: in the next kernel, or in this one
    /// after a failed kexec.
    fn take_back(&self) -> Result<(), CarrierError>;
    /// The upgrade is over and the store wiped (or never written).
    fn close(&self);
}

/// The carrier of a chosen store.
pub fn for_choice(choice: &StoreChoice) -> Box<dyn Carrier> {
    for_device(choice.device.as_deref())
}

/// The carrier of a store on `device` (a command line's
/// `relive.handover_device=`), or on the disk without one.
pub fn for_device(device: Option<&Path>) -> Box<dyn Carrier> {
    match device {
        Some(device) => Box::new(InMemory {
            device: device.to_owned(),
        }),
        None => Box::new(OnDisk),
    }
}

/// The disk: a directory on the root file system. Nothing to do at any
/// step (the root is synced and remounted read-only by the kexec itself).
#[derive(Debug, Clone, Copy)]
pub struct OnDisk;

impl Carrier for OnDisk {
    fn backend(&self) -> Backend {
        Backend::Disk
    }
    fn open(&self, _: RunHelper) -> Result<(), CarrierError> {
        Ok(())
    }
    fn hand_over(&self) -> Result<(), CarrierError> {
        Ok(())
    }
    fn take_back(&self) -> Result<(), CarrierError> {
        Ok(())
    }
    fn close(&self) {}
}

/// A `memmap=` region, as the pmem device `device`.
#[derive(Debug, Clone)]
pub struct InMemory {
    pub device: PathBuf,
}

impl Carrier for InMemory {
    fn backend(&self) -> Backend {
        Backend::Memory
    }

    fn open(&self, run: RunHelper) -> Result<(), CarrierError> {
        if memory::is_mounted() {
            return Ok(());
        }
        let argv = memory::mkfs_command(&self.device);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        run(&argv).map_err(|reason| CarrierError::Helper {
            program: argv[0].to_owned(),
            reason,
        })?;
        Ok(memory::mount(&self.device)?)
    }

    fn hand_over(&self) -> Result<(), CarrierError> {
        Ok(memory::unmount_checked()?)
    }

    fn take_back(&self) -> Result<(), CarrierError> {
        memory::attach(&self.device)?;
        if memory::is_mounted() {
            return Ok(());
        }
        Ok(memory::mount(&self.device)?)
    }

    fn close(&self) {
        memory::unmount();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_choice_with_a_device_is_carried_in_memory_and_one_without_on_disk() {
        let disk = StoreChoice::disk(Path::new("/var/lib/relive/upgrade"), "disk".into());
        assert_eq!(for_choice(&disk).backend(), Backend::Disk);
        let memory = StoreChoice {
            device: Some("/dev/pmem0".into()),
            ..disk
        };
        assert_eq!(for_choice(&memory).backend(), Backend::Memory);
    }

    #[test]
    fn the_disk_needs_nothing_at_any_step() {
        let never = |_: &[&str]| -> Result<(), String> { panic!("the disk runs no helper") };
        let disk = OnDisk;
        disk.open(&never).unwrap();
        disk.hand_over().unwrap();
        disk.take_back().unwrap();
        disk.close();
    }
}
