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
