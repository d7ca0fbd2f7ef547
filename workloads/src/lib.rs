//! Shared pieces of the lab's workload programs (src/bin/): the counter's
//! deterministic buffer and its checksum, and the report line;
//! relive-dirty's self-checking pages and JSON reports (`dirty`).
//!
//! The workloads exist to be preserved across a live kernel upgrade; a
//! later check compares what they report before and after.

use sha2::{Digest, Sha256};

pub mod dirty;

/// Fills a buffer of `len` bytes with a pattern that depends only on `len`
/// (xorshift64* from a fixed seed), so every run, before and after an
/// upgrade, can recompute the same content.
pub fn pattern(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut buf = Vec::with_capacity(len + 8);
    while buf.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        buf.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    buf.truncate(len);
    buf
}

/// SHA-256 of `data`, lowercase hex.
pub fn checksum(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What `relive-counter` reports, one line of `key=value` words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Ticks of 100 ms since the program started.
    pub counter: u64,
    pub pid: u32,
    /// Wall-clock start, seconds since the epoch (the expected counter is
    /// roughly (now - started) * 10, whatever happened in between).
    pub started_unix: u64,
    pub buffer_bytes: usize,
    /// The buffer's checksum now.
    pub checksum: String,
    /// The checksum computed when the buffer was filled.
    pub original: String,
}

impl Report {
    pub fn matches(&self) -> bool {
        self.checksum == self.original
    }

    /// Parses a line written by `Display` (for the lab's checks).
    pub fn parse(line: &str) -> Option<Report> {
        let field = |key: &str| {
            line.split_whitespace()
                .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
        };
        Some(Report {
            counter: field("counter")?.parse().ok()?,
            pid: field("pid")?.parse().ok()?,
            started_unix: field("started_unix")?.parse().ok()?,
            buffer_bytes: field("buffer_bytes")?.parse().ok()?,
            checksum: field("checksum")?.to_owned(),
            original: field("original")?.to_owned(),
        })
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "counter={} pid={} started_unix={} buffer_bytes={} checksum={} original={} match={}",
            self.counter,
            self.pid,
            self.started_unix,
            self.buffer_bytes,
            self.checksum,
            self.original,
            if self.matches() { "yes" } else { "no" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pattern_is_deterministic_and_not_constant() {
        let a = pattern(1 << 16);
        assert_eq!(a, pattern(1 << 16));
        assert_eq!(a.len(), 1 << 16);
        assert_ne!(a[..8], a[8..16]);
        // A prefix of a longer buffer: the content depends on the offset only.
        assert_eq!(pattern(13)[..], a[..13]);
    }

    #[test]
    fn checksum_is_sha256() {
        assert_eq!(
            checksum(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_report_line_parses_back() {
        let report = Report {
            counter: 42,
            pid: 20001,
            started_unix: 1_700_000_000,
            buffer_bytes: 16,
            checksum: "aa".into(),
            original: "ab".into(),
        };
        let line = report.to_string();
        assert!(line.ends_with("match=no"));
        assert_eq!(Report::parse(&line), Some(report));
    }
}
