//! The processes that ended during a stretch, with their CPU time, from
//! the kernel's process accounting (acct(2), version 3 records). The CPU
//! account by cgroup ([`crate::cpu_where`]) cannot name what ran and
//! ended in the root cgroup: CRIU's probe, nft, relive's modprobe and the
//! ones the kernel starts itself. The record is 64 bytes, read here: the
//! acct crate is not kept (last release 2018, on clap 2 and bincode 1).

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The kernel's struct acct_v3 (linux/acct.h).
const RECORD: usize = 64;
const VERSION: u8 = 3;
/// The clock of the records' CPU times (AHZ on every Linux architecture).
const TICKS_PER_SECOND: u64 = 100;
/// Commands the summary names at most.
const NAMED: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum ExitsError {
    #[error("process accounting to {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("process accounting to {path}: {source}")]
    Acct { path: PathBuf, source: nix::Error },
    #[error("{path}: byte {offset}: not an acct v3 record (version {version})")]
    Record {
        path: PathBuf,
        offset: usize,
        version: u8,
    },
}

/// One ended process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    /// Its command's name (16 bytes at most, as in /proc/PID/comm).
    pub command: String,
    /// User and system time, µs (10 ms steps).
    pub cpu_usec: u64,
}

/// Process accounting on, into a file of its own, until [`Self::stop`]
/// or until dropped.
#[derive(Debug)]
pub struct Accounting {
    path: PathBuf,
    on: bool,
}

impl Accounting {
    /// Turns accounting on into `path` (created root-only: command names
    /// and times of every process). Nothing else may have it on: only
    /// one file takes the records.
    pub fn start(path: &Path) -> Result<Accounting, ExitsError> {
        let io = |source| ExitsError::Io {
            path: path.to_owned(),
            source,
        };
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(path)
            .and_then(|mut f| f.flush())
            .map_err(io)?;
        nix::unistd::acct::enable(path).map_err(|source| ExitsError::Acct {
            path: path.to_owned(),
            source,
        })?;
        Ok(Accounting {
            path: path.to_owned(),
            on: true,
        })
    }

    /// Turns accounting off; the processes that ended since the start.
    /// The file is removed.
    pub fn stop(mut self) -> Result<Vec<Exit>, ExitsError> {
        self.on = false;
        let stopped = nix::unistd::acct::disable();
        let bytes = std::fs::read(&self.path);
        let _ = std::fs::remove_file(&self.path);
        stopped.map_err(|source| ExitsError::Acct {
            path: self.path.clone(),
            source,
        })?;
        let bytes = bytes.map_err(|source| ExitsError::Io {
            path: self.path.clone(),
            source,
        })?;
        records(&self.path, &bytes)
    }
}

impl Drop for Accounting {
    /// Not read: off all the same, so that no file grows with every
    /// process for the rest of the boot.
    fn drop(&mut self) {
        if self.on {
            let _ = nix::unistd::acct::disable();
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The records in `bytes` (a whole acct v3 file at `path`).
fn records(path: &Path, bytes: &[u8]) -> Result<Vec<Exit>, ExitsError> {
    bytes
        .chunks_exact(RECORD)
        .enumerate()
        .map(|(i, record)| {
            // The high bit marks a big-endian machine's records.
            let version = record[1] & 0x0f;
            if version != VERSION {
                return Err(ExitsError::Record {
                    path: path.to_owned(),
                    offset: i * RECORD,
                    version,
                });
            }
            let time = |at: usize| expand(u16::from_ne_bytes([record[at], record[at + 1]]));
            let comm = &record[48..64];
            let end = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
            Ok(Exit {
                command: String::from_utf8_lossy(&comm[..end]).into_owned(),
                cpu_usec: (time(32) + time(34)) * 1_000_000 / TICKS_PER_SECOND,
            })
        })
        .collect()
}

/// A comp_t: a 13-bit mantissa and a 3-bit base-8 exponent.
fn expand(comp: u16) -> u64 {
    u64::from(comp & 0x1fff) << (3 * u32::from(comp >> 13))
}

/// "4.20 CPU-seconds in 37 processes: criu 1.90 s (2), modprobe 0.80 s
/// (12), ...": by command, most CPU first.
pub fn summary(exits: &[Exit]) -> String {
    let mut by_command: BTreeMap<&str, (u64, usize)> = BTreeMap::new();
    for exit in exits {
        let entry = by_command.entry(&exit.command).or_default();
        entry.0 += exit.cpu_usec;
        entry.1 += 1;
    }
    let mut commands: Vec<(&str, (u64, usize))> = by_command.into_iter().collect();
    commands.sort_by_key(|(_, (usec, _))| std::cmp::Reverse(*usec));
    let named: Vec<String> = commands
        .iter()
        .filter(|(_, (usec, _))| *usec > 0)
        .take(NAMED)
        .map(|(command, (usec, n))| format!("{command} {:.2} s ({n})", *usec as f64 / 1e6))
        .collect();
    let total: u64 = exits.iter().map(|e| e.cpu_usec).sum();
    format!(
        "{:.2} CPU-seconds in {} processes: {}",
        total as f64 / 1e6,
        exits.len(),
        named.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(command: &str, utime: u16, stime: u16) -> Vec<u8> {
        let mut r = vec![0u8; RECORD];
        r[1] = VERSION;
        r[32..34].copy_from_slice(&utime.to_ne_bytes());
        r[34..36].copy_from_slice(&stime.to_ne_bytes());
        r[48..48 + command.len()].copy_from_slice(command.as_bytes());
        r
    }

    #[test]
    fn records_are_read_and_summed_by_command() {
        // 0x2001: mantissa 1, exponent 1: 8 ticks.
        let bytes = [
            record("criu", 150, 0x2001),
            record("modprobe", 3, 2),
            record("modprobe", 5, 0),
            record("true", 0, 0),
        ]
        .concat();
        let exits = records(Path::new("/run/x"), &bytes).unwrap();
        assert_eq!(
            exits[0],
            Exit {
                command: "criu".into(),
                cpu_usec: 1_580_000
            }
        );
        assert_eq!(
            summary(&exits),
            "1.68 CPU-seconds in 4 processes: criu 1.58 s (1), modprobe 0.10 s (2)"
        );
    }

    #[test]
    fn a_file_of_another_format_is_named() {
        let mut bytes = record("criu", 1, 1);
        bytes[1] = 2;
        let e = records(Path::new("/run/acct"), &bytes).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/run/acct: byte 0: not an acct v3 record (version 2)"
        );
    }
}
