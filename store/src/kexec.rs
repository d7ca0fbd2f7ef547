//! Booting the next kernel: loading it, and the last step of an upgrade
//! (and of a rollback) once the store is written. Behind the [`Kexec`]
//! trait, so that tests of the upgrade never touch the machine's kernel
//! or its root file system ([`fake::FakeKexec`]).

use crate::carrier::{Carrier, CarrierError};
use relive_sys::kexec::KexecError;
use std::path::Path;

/// Why the machine did not boot the next kernel (everything is mounted
/// as before).
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// The store's carrier could not hand it over (the memory store must
    /// be unmounted clean for the next kernel to mount it).
    #[error(transparent)]
    HandOver(#[from] CarrierError),
    #[error("kexec failed: {0}")]
    Kexec(std::io::Error),
}

/// Loading and booting a kernel.
pub trait Kexec: Sync {
    fn load(&self, kernel: &Path, initrd: Option<&Path>, cmdline: &str) -> Result<(), KexecError>;
    fn unload(&self) -> Result<(), KexecError>;
    /// Boots the loaded kernel with the store written: syncs, has the
    /// store's `carrier` hand it over (the memory store unmounted: the
    /// next kernel mounts it again, it must be clean), remounts the
    /// block devices' file systems read-only (kexec unmounts nothing: the
    /// next kernel mounts them clean, without a journal to recover or a
    /// check to run). Returns only on failure, with the store taken back
    /// and everything mounted and writable as before.
    fn boot(&self, carrier: &dyn Carrier) -> BootError;
}

/// How long the kexec waits for the file systems to be read-only (their
/// dirty blocks written). Past it, the next kernel recovers the journals
/// of those that are not.
const READ_ONLY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

fn display_paths(paths: &[std::path::PathBuf]) -> String {
    if paths.is_empty() {
        return "no file system".into();
    }
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    names.join(", ")
}

/// The running kernel's kexec_file_load and reboot(2).
#[derive(Debug, Default, Clone, Copy)]
pub struct LiveKexec;

impl Kexec for LiveKexec {
    fn load(&self, kernel: &Path, initrd: Option<&Path>, cmdline: &str) -> Result<(), KexecError> {
        relive_sys::kexec::load(kernel, initrd, cmdline)
    }

    fn unload(&self) -> Result<(), KexecError> {
        relive_sys::kexec::unload()
    }

    fn boot(&self, carrier: &dyn Carrier) -> BootError {
        // In every preserved unit's stoppage, before the next kernel's
        // boot: logged, lap by lap.
        let mut laps = relive_sys::laps::Laps::start();
        nix::unistd::sync();
        laps.lap("sync");
        if let Err(e) = carrier.hand_over() {
            return e.into();
        }
        laps.lap("store handed over");
        // By force: a plain read-only remount is refused while a frozen
        // service holds a file open for writing.
        let read_only = relive_sys::readonly::remount_all(READ_ONLY_TIMEOUT);
        laps.lap("read-only");
        tracing::info!(
            "live upgrade: kexec with {} read-only, in {laps}",
            display_paths(read_only.paths())
        );
        let e = relive_sys::kexec::boot_loaded();
        read_only.undo();
        if let Err(taken) = carrier.take_back() {
            tracing::error!("the store after the failed kexec: {taken}");
        }
        BootError::Kexec(e)
    }
}

/// A kexec that records what it was asked; its boot always fails (a test
/// goes on in the same process, as after a failed kexec).
pub mod fake {
    use super::*;
    use std::path::PathBuf;
    use std::sync::Mutex;

    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum KexecCall {
        Load { kernel: PathBuf, cmdline: String },
        Unload,
        Boot,
    }

    #[derive(Debug, Default)]
    pub struct FakeKexec {
        pub calls: Mutex<Vec<KexecCall>>,
    }

    impl FakeKexec {
        pub fn calls(&self) -> Vec<KexecCall> {
            self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone()
        }

        fn record(&self, call: KexecCall) {
            self.calls
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(call);
        }
    }

    impl Kexec for FakeKexec {
        fn load(&self, kernel: &Path, _: Option<&Path>, cmdline: &str) -> Result<(), KexecError> {
            self.record(KexecCall::Load {
                kernel: kernel.to_owned(),
                cmdline: cmdline.to_owned(),
            });
            Ok(())
        }

        fn unload(&self) -> Result<(), KexecError> {
            self.record(KexecCall::Unload);
            Ok(())
        }

        fn boot(&self, _: &dyn Carrier) -> BootError {
            self.record(KexecCall::Boot);
            BootError::Kexec(std::io::Error::from_raw_os_error(libc_enosys()))
        }
    }

    /// ENOSYS: what a kernel without kexec answers.
    fn libc_enosys() -> i32 {
        nix::errno::Errno::ENOSYS as i32
    }
}
