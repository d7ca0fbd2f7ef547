//! The network lock CRIU leaves for a unit's TCP connections: an nftables
//! table `inet CRIU-<main pid>` that drops their packets while the unit is
//! checkpointed. The table vanishes with the old kernel: the new one must
//! have it before its network comes up, or it answers the peers with RST.
//! CRIU removes it after a successful restore.

use relive_host::{run_ok, HostError, UnitHost};
use relive_store::Store;
use std::path::PathBuf;

const NFT: &str = "/usr/sbin/nft";

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(transparent)]
    Host(#[from] HostError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn table(main_pid: i32) -> String {
    format!("CRIU-{main_pid}")
}

/// Saves the unit's lock table into the store. Ok(false): there is none
/// (the unit has no TCP connections).
pub fn save(
    host: &dyn UnitHost,
    store: &Store,
    unit: &str,
    main_pid: i32,
) -> Result<bool, LockError> {
    let table = table(main_pid);
    let out = host.run_helper(&[NFT, "list", "table", "inet", &table])?;
    if !out.status.success() || !out.stdout.contains("table inet") {
        tracing::debug!(
            "{unit}: no network lock table {table}: {}",
            out.stderr.trim()
        );
        return Ok(false);
    }
    let path = store.lock_file(unit);
    std::fs::write(&path, out.stdout).map_err(|source| LockError::Io { path, source })?;
    Ok(true)
}

/// Puts the unit's saved lock table in place again.
pub fn load(host: &dyn UnitHost, store: &Store, unit: &str) -> Result<(), HostError> {
    let file = store.lock_file(unit).display().to_string();
    run_ok(host, &[NFT, "-f", &file]).map(drop)
}

/// Removes the lock table of a unit whose connections are gone (it was
/// not restored), or that runs again without CRIU having removed it.
pub fn remove(host: &dyn UnitHost, main_pid: i32) -> Result<(), HostError> {
    run_ok(host, &[NFT, "delete", "table", "inet", &table(main_pid)]).map(drop)
}
