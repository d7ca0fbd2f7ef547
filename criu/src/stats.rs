//! CRIU's own figures for a dump or pre-dump: the `stats-dump` image it
//! writes into the images directory.
//!
//! The file is a CRIU "service" image: two little-endian u32 magics
//! (IMG_SERVICE, then STATS), then one entry, a u32 length followed by a
//! protobuf `stats_entry`. The schema is CRIU's images/stats.proto (MIT; the
//! `criu` package ships it compiled as pycriu/images/stats_pb2.py); only the
//! fields relive reports are declared here, with their field numbers.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

const IMG_SERVICE_MAGIC: u32 = 0x5510_5940;
const STATS_MAGIC: u32 = 0x5709_3306;

/// What CRIU measured while dumping. Times are in microseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DumpStats {
    /// Seizing and freezing the tasks.
    pub freezing_time_us: u32,
    /// How long the tasks stayed frozen.
    pub frozen_time_us: u32,
    pub memdump_time_us: u32,
    pub memwrite_time_us: u32,
    pub pages_scanned: u64,
    /// Unchanged since the parent images: not written again.
    pub pages_skipped_parent: u64,
    pub pages_written: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: not a CRIU stats image ({reason})")]
    Format { path: PathBuf, reason: String },
}

/// Reads `stats-dump` from an images directory.
pub fn read_dump_stats(images_dir: &Path) -> Result<DumpStats, StatsError> {
    let path = images_dir.join("stats-dump");
    let bytes = fs::read(&path).map_err(|source| StatsError::Io {
        path: path.clone(),
        source,
    })?;
    parse_dump_stats(&bytes).map_err(|reason| StatsError::Format { path, reason })
}

fn parse_dump_stats(bytes: &[u8]) -> Result<DumpStats, String> {
    let word = |at: usize| -> Result<u32, String> {
        bytes
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
            .ok_or_else(|| format!("truncated at byte {at}"))
    };
    if word(0)? != IMG_SERVICE_MAGIC || word(4)? != STATS_MAGIC {
        return Err(format!("magic {:#x} {:#x}", word(0)?, word(4)?));
    }
    let len = word(8)? as usize;
    let body = bytes
        .get(12..12 + len)
        .ok_or_else(|| format!("entry of {len} bytes is truncated"))?;
    let entry = <StatsEntry as prost::Message>::decode(body).map_err(|e| e.to_string())?;
    let d = entry.dump.ok_or("no dump figures in the entry")?;
    Ok(DumpStats {
        freezing_time_us: d.freezing_time,
        frozen_time_us: d.frozen_time,
        memdump_time_us: d.memdump_time,
        memwrite_time_us: d.memwrite_time,
        pages_scanned: d.pages_scanned,
        pages_skipped_parent: d.pages_skipped_parent,
        pages_written: d.pages_written,
    })
}

#[derive(Clone, PartialEq, prost::Message)]
struct StatsEntry {
    #[prost(message, optional, tag = "1")]
    dump: Option<DumpStatsEntry>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct DumpStatsEntry {
    #[prost(uint32, tag = "1")]
    freezing_time: u32,
    #[prost(uint32, tag = "2")]
    frozen_time: u32,
    #[prost(uint32, tag = "3")]
    memdump_time: u32,
    #[prost(uint32, tag = "4")]
    memwrite_time: u32,
    #[prost(uint64, tag = "5")]
    pages_scanned: u64,
    #[prost(uint64, tag = "6")]
    pages_skipped_parent: u64,
    #[prost(uint64, tag = "7")]
    pages_written: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn image(entry: &StatsEntry) -> Vec<u8> {
        let body = entry.encode_to_vec();
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&IMG_SERVICE_MAGIC.to_le_bytes());
        bytes.extend_from_slice(&STATS_MAGIC.to_le_bytes());
        bytes.extend_from_slice(&(body.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&body);
        bytes
    }

    #[test]
    fn reads_the_dump_figures() {
        let entry = StatsEntry {
            dump: Some(DumpStatsEntry {
                freezing_time: 10,
                frozen_time: 2500,
                memdump_time: 900,
                memwrite_time: 400,
                pages_scanned: 8192,
                pages_skipped_parent: 8000,
                pages_written: 192,
            }),
        };
        let stats = parse_dump_stats(&image(&entry)).unwrap();
        assert_eq!(stats.frozen_time_us, 2500);
        assert_eq!(stats.pages_written, 192);
        assert_eq!(stats.pages_skipped_parent, 8000);
    }

    #[test]
    fn refuses_other_files() {
        let err = parse_dump_stats(b"\x19\x43\x56\x54\0\0\0\0").unwrap_err();
        assert!(err.contains("magic"), "{err}");
        let mut truncated = image(&StatsEntry::default());
        truncated[8] = 200;
        assert!(parse_dump_stats(&truncated)
            .unwrap_err()
            .contains("truncated"));
        assert!(parse_dump_stats(&image(&StatsEntry::default()))
            .unwrap_err()
            .contains("no dump"));
    }
}
