//! CRIU's page map images (`pagemap-PID.img`): which pages of a process
//! its page image (`pages-ID.img`) holds, which are in the parent
//! (pre-dump) images, and which a lazy restore may leave for later.
//!
//! The format (CRIU 3.x, images/pagemap.proto, criu/pagemap.c): the
//! magics `IMG_COMMON_MAGIC` and `PAGEMAP_MAGIC` (u32 each, host order),
//! then records of a u32 length and a protobuf message: one
//! `pagemap_head` (the page image's id), then one `pagemap_entry` per run
//! of pages. An entry's data follows the data of every earlier entry that
//! is present (`PE_PRESENT`) in the page image.

use prost::Message;
use std::io;
use std::path::Path;

const IMG_COMMON_MAGIC: u32 = 0x5456_4319;
const PAGEMAP_MAGIC: u32 = 0x5608_4025;

/// The pages are in the parent images.
pub const PE_PARENT: u32 = 1;
/// The pages may be restored lazily.
pub const PE_LAZY: u32 = 2;
/// The pages are in this page image.
pub const PE_PRESENT: u32 = 4;

/// The page size CRIU dumps with (x86-64).
pub const PAGE_SIZE: u64 = 4096;

#[derive(Clone, PartialEq, Message)]
struct PagemapHead {
    #[prost(uint32, required, tag = "1")]
    pages_id: u32,
}

#[derive(Clone, PartialEq, Message)]
struct PagemapEntry {
    #[prost(uint64, required, tag = "1")]
    vaddr: u64,
    #[prost(uint32, required, tag = "2")]
    nr_pages: u32,
    #[prost(bool, optional, tag = "3")]
    in_parent: Option<bool>,
    #[prost(uint32, optional, tag = "4")]
    flags: Option<u32>,
}

/// One run of pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub vaddr: u64,
    pub nr_pages: u32,
    /// `PE_*` bits.
    pub flags: u32,
}

impl Run {
    pub fn end(&self) -> u64 {
        self.vaddr + u64::from(self.nr_pages) * PAGE_SIZE
    }

    pub fn is(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }
}

/// A page map: its page image's id and its runs, in address order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pagemap {
    pub pages_id: u32,
    pub runs: Vec<Run>,
}

/// Why a page map cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum PagemapError {
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("{path}: not a CRIU page map ({reason})")]
    Format { path: String, reason: String },
}

impl Pagemap {
    /// Reads `path`.
    pub fn read(path: &Path) -> Result<Pagemap, PagemapError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| PagemapError::Io {
            path: shown.clone(),
            source,
        })?;
        Pagemap::decode(&bytes).map_err(|reason| PagemapError::Format {
            path: shown,
            reason,
        })
    }

    /// Decodes a page map image.
    pub fn decode(bytes: &[u8]) -> Result<Pagemap, String> {
        let mut rest = bytes;
        let mut word = |what: &str| -> Result<u32, String> {
            let (head, tail) = rest
                .split_first_chunk::<4>()
                .ok_or_else(|| format!("ends before its {what}"))?;
            rest = tail;
            Ok(u32::from_ne_bytes(*head))
        };
        let (common, magic) = (word("magic")?, word("magic")?);
        if (common, magic) != (IMG_COMMON_MAGIC, PAGEMAP_MAGIC) {
            return Err(format!("magic {common:#x} {magic:#x}"));
        }
        let mut records = Vec::new();
        while !rest.is_empty() {
            let (len, tail) = rest
                .split_first_chunk::<4>()
                .ok_or("a record's length is cut short")?;
            let len = u32::from_ne_bytes(*len) as usize;
            let record = tail.get(..len).ok_or("a record is cut short")?;
            records.push(record);
            rest = &tail[len..];
        }
        let (head, entries) = records.split_first().ok_or("no head")?;
        let head = PagemapHead::decode(*head).map_err(|e| format!("its head: {e}"))?;
        let mut runs = Vec::with_capacity(entries.len());
        for entry in entries {
            let entry = PagemapEntry::decode(*entry).map_err(|e| format!("an entry: {e}"))?;
            // Images of older CRIUs: in_parent instead of the flags, and
            // no flags meaning present (criu/pagemap.c).
            let flags = if entry.in_parent == Some(true) {
                entry.flags.unwrap_or(0) | PE_PARENT
            } else {
                entry.flags.unwrap_or(PE_PRESENT)
            };
            runs.push(Run {
                vaddr: entry.vaddr,
                nr_pages: entry.nr_pages,
                flags,
            });
        }
        Ok(Pagemap {
            pages_id: head.pages_id,
            runs,
        })
    }

    /// The image's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&IMG_COMMON_MAGIC.to_ne_bytes());
        bytes.extend_from_slice(&PAGEMAP_MAGIC.to_ne_bytes());
        let mut record = |message: Vec<u8>| {
            bytes.extend_from_slice(&(message.len() as u32).to_ne_bytes());
            bytes.extend_from_slice(&message);
        };
        record(
            PagemapHead {
                pages_id: self.pages_id,
            }
            .encode_to_vec(),
        );
        for run in &self.runs {
            record(
                PagemapEntry {
                    vaddr: run.vaddr,
                    nr_pages: run.nr_pages,
                    in_parent: None,
                    flags: Some(run.flags),
                }
                .encode_to_vec(),
            );
        }
        bytes
    }

    /// Each run with the offset of its data in the page image (None for
    /// runs whose data is not there).
    pub fn with_offsets(&self) -> Vec<(Run, Option<u64>)> {
        let mut offset = 0;
        self.runs
            .iter()
            .map(|run| {
                if run.is(PE_PRESENT) {
                    let at = offset;
                    offset += u64::from(run.nr_pages) * PAGE_SIZE;
                    (*run, Some(at))
                } else {
                    (*run, None)
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_map_round_trips_and_its_offsets_count_present_runs_only() {
        let map = Pagemap {
            pages_id: 3,
            runs: vec![
                Run {
                    vaddr: 0x1000,
                    nr_pages: 2,
                    flags: PE_PRESENT | PE_LAZY,
                },
                Run {
                    vaddr: 0x4000,
                    nr_pages: 5,
                    flags: PE_PARENT,
                },
                Run {
                    vaddr: 0x10000,
                    nr_pages: 1,
                    flags: PE_PRESENT,
                },
            ],
        };
        let bytes = map.encode();
        assert_eq!(Pagemap::decode(&bytes).unwrap(), map);
        let offsets: Vec<_> = map.with_offsets().into_iter().map(|(_, o)| o).collect();
        assert_eq!(offsets, [Some(0), None, Some(8192)]);
    }

    #[test]
    fn an_image_as_criu_writes_it_is_read() {
        // CRIU's magic.h: IMG_COMMON_MAGIC 0x54564319, PAGEMAP_MAGIC
        // 0x56084025, little-endian on x86-64; then pagemap_head
        // {pages_id: 1} and one entry {vaddr 0x1000, 2 pages, flags 6}.
        let bytes = [
            0x19, 0x43, 0x56, 0x54, 0x25, 0x40, 0x08, 0x56, //
            2, 0, 0, 0, 0x08, 0x01, //
            7, 0, 0, 0, 0x08, 0x80, 0x20, 0x10, 0x02, 0x20, 0x06,
        ];
        let map = Pagemap::decode(&bytes).unwrap();
        assert_eq!(map.pages_id, 1);
        assert_eq!(
            map.runs,
            [Run {
                vaddr: 0x1000,
                nr_pages: 2,
                flags: PE_PRESENT | PE_LAZY
            }]
        );
    }

    #[test]
    fn older_images_and_damage_are_read_as_criu_does() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&IMG_COMMON_MAGIC.to_ne_bytes());
        bytes.extend_from_slice(&PAGEMAP_MAGIC.to_ne_bytes());
        for message in [
            PagemapHead { pages_id: 1 }.encode_to_vec(),
            PagemapEntry {
                vaddr: 0x2000,
                nr_pages: 1,
                in_parent: Some(true),
                flags: None,
            }
            .encode_to_vec(),
            PagemapEntry {
                vaddr: 0x3000,
                nr_pages: 1,
                in_parent: None,
                flags: None,
            }
            .encode_to_vec(),
        ] {
            bytes.extend_from_slice(&(message.len() as u32).to_ne_bytes());
            bytes.extend_from_slice(&message);
        }
        let flags: Vec<u32> = Pagemap::decode(&bytes)
            .unwrap()
            .runs
            .iter()
            .map(|r| r.flags)
            .collect();
        assert_eq!(flags, [PE_PARENT, PE_PRESENT]);
        assert_eq!(
            Pagemap::decode(&bytes[..bytes.len() - 1]).unwrap_err(),
            "a record is cut short"
        );
        assert!(Pagemap::decode(&bytes[4..])
            .unwrap_err()
            .starts_with("magic"));
    }
}
