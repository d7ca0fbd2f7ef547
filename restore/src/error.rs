//! Why a unit could not be restored: one variant per step.

use relive_criu::CriuError;
use relive_host::HostError;
use relive_store::StoreError;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// Its images do not match the manifest written when they were dumped.
    #[error("images refused: {0}")]
    ImagesRefused(#[source] StoreError),
    #[error("restoring its runtime directories: {0}")]
    RuntimeDirs(#[source] std::io::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The thread checking its images panicked: never run unchecked.
    #[error("the check of its images panicked")]
    CheckPanicked,
    /// The check was asked for twice (a bug): never run unchecked.
    #[error("the check of its images was asked for twice")]
    CheckedTwice,
    /// CRIU resumed its processes without the stop where relive waits
    /// for the check: they were ended.
    #[error("CRIU resumed it before its images were checked: ended")]
    Unchecked,
    #[error("pipe: {0}")]
    Pipe(nix::errno::Errno),
    #[error(transparent)]
    Criu(#[from] CriuError),
    #[error(transparent)]
    Host(#[from] HostError),
    /// The lab's fault injection.
    #[cfg(feature = "fault-injection")]
    #[error("injected fault ({0})")]
    Injected(&'static str),
}
