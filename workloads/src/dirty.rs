//! relive-dirty's page format and its reports (the lab parses them).
//!
//! Each 4 KiB page checks itself: word 0 is the page's generation (how many
//! times it was rewritten), word 1 a checksum over the page's index, its
//! generation and words 2.., which hold a pattern derived from (index,
//! generation). A flipped bit, a page restored at the wrong address (the
//! index is in the checksum) or a stale copy of an older generation (the
//! writer remembers the generation it wrote last) is then visible.

use serde::{Deserialize, Serialize};

pub const PAGE_SIZE: usize = 4096;
const WORDS: usize = PAGE_SIZE / 8;

/// One page of memory, aligned so that it is exactly one page of the
/// process: a rewrite dirties one page for CRIU's memory tracking, not two.
#[derive(Debug, Clone)]
#[repr(C, align(4096))]
pub struct Page {
    pub words: [u64; WORDS],
}

/// Why a page failed its check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageError {
    /// The content does not match the checksum.
    Checksum,
    /// Intact, but not the generation last written there (a stale copy).
    Generation { found: u64, expected: u64 },
}

impl std::fmt::Display for PageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PageError::Checksum => write!(f, "checksum mismatch"),
            PageError::Generation { found, expected } => {
                write!(f, "generation {found}, expected {expected}")
            }
        }
    }
}

/// splitmix64's finalizer: spreads (index, generation) over all bits.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn seed(index: u64, generation: u64) -> u64 {
    mix(index.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ mix(generation))
}

/// Checksum of words 2.. for the page at `index` holding `generation`.
/// Each step is a bijection of `h` for a fixed word, so changing any one
/// word always changes the result.
fn checksum(index: u64, generation: u64, rest: &[u64]) -> u64 {
    let mut h = seed(index, generation) ^ 0xA076_1D64_78BD_642F;
    for &w in rest {
        h = (h.rotate_left(23) ^ w).wrapping_mul(0xE703_7ED1_A0B4_28DB);
    }
    h
}

impl Page {
    pub fn new(index: u64, generation: u64) -> Page {
        let mut page = Page { words: [0; WORDS] };
        page.write(index, generation);
        page
    }

    /// Rewrites the whole page for `generation` (touching every word, so
    /// the page is resident and dirty).
    pub fn write(&mut self, index: u64, generation: u64) {
        // xorshift64 from the seed: cheap, and differs per page and generation.
        let mut x = seed(index, generation) | 1;
        for w in &mut self.words[2..] {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *w = x;
        }
        self.words[0] = generation;
        self.words[1] = checksum(index, generation, &self.words[2..]);
    }

    /// The page's generation if it is intact and is `expected`.
    pub fn verify(&self, index: u64, expected: u64) -> Result<u64, PageError> {
        let generation = self.words[0];
        if checksum(index, generation, &self.words[2..]) != self.words[1] {
            return Err(PageError::Checksum);
        }
        if generation != expected {
            return Err(PageError::Generation {
                found: generation,
                expected,
            });
        }
        Ok(generation)
    }
}

/// Pages needed for `mib` MiB.
pub fn pages_for_mib(mib: u64) -> u64 {
    mib * (1 << 20) / PAGE_SIZE as u64
}

/// Pages rewritten per tick to dirty `mib_per_sec` MiB/s in ticks of
/// `tick_secs` (rounded up: any rate above 0 dirties something).
pub fn pages_per_tick(mib_per_sec: f64, tick_secs: f64) -> u64 {
    if mib_per_sec <= 0.0 {
        return 0;
    }
    (mib_per_sec * (1 << 20) as f64 * tick_secs / PAGE_SIZE as f64).ceil() as u64
}

/// How many seconds of per-second counts a report carries.
pub const SERIES_SECS: u64 = 900;

/// Counts per wall-clock second over the last `SERIES_SECS` seconds, in a
/// ring indexed by the second: fixed size, and a second in which nothing
/// was counted (the process was frozen) reads as 0.
#[derive(Debug, Clone)]
pub struct SecondCounts {
    slots: Vec<(u64, u64)>,
}

impl Default for SecondCounts {
    fn default() -> Self {
        SecondCounts {
            slots: vec![(u64::MAX, 0); SERIES_SECS as usize],
        }
    }
}

impl SecondCounts {
    pub fn add(&mut self, second: u64, n: u64) {
        let slot = &mut self.slots[(second % SERIES_SECS) as usize];
        if slot.0 != second {
            *slot = (second, 0);
        }
        slot.1 += n;
    }

    /// `[second, count]` for every whole second from `since` (or
    /// `SERIES_SECS` before `now`, whichever is later) to before `now`.
    pub fn series(&self, since: u64, now: u64) -> Vec<(u64, u64)> {
        let from = since.max(now.saturating_sub(SERIES_SECS));
        (from..now)
            .map(|s| {
                let slot = self.slots[(s % SERIES_SECS) as usize];
                (s, if slot.0 == s { slot.1 } else { 0 })
            })
            .collect()
    }
}

/// The answer to `report`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirtyReport {
    pub pid: u32,
    pub size_mib: u64,
    pub dirty_mib_per_sec: f64,
    pub pages: u64,
    /// Page rewrites since the start (the fill not counted).
    pub pages_written: u64,
    /// Page checks since the start (before each rewrite, and by `verify`).
    pub verified_pages: u64,
    /// Corrupt pages found by the last `verify` request (the dirtier
    /// exits with status 3 at the first one it finds).
    pub corrupt_pages: u64,
    pub started_unix: u64,
    /// Busy mode: CPU work done per whole second, `[unix_second, ops]`,
    /// the last 900 s (a second in which the process did not run is 0).
    pub ops_per_sec: Vec<(u64, u64)>,
    /// Pages rewritten per whole second, the last 900 s.
    pub dirty_pages_per_sec: Vec<(u64, u64)>,
}

/// The answer to `verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    pub verified_pages: u64,
    pub corrupt_pages: u64,
    pub first_corrupt: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_page_verifies() {
        let page = Page::new(7, 3);
        assert_eq!(page.verify(7, 3), Ok(3));
        assert_eq!(std::mem::size_of::<Page>(), PAGE_SIZE);
        assert_eq!(std::mem::align_of::<Page>(), PAGE_SIZE);
    }

    #[test]
    fn a_flipped_byte_is_detected_anywhere() {
        for byte in [0, 5, 8, 15, 16, 17, 2000, PAGE_SIZE - 1] {
            let mut page = Page::new(11, 0);
            page.words[byte / 8] ^= 1 << ((byte % 8) * 8 + 3);
            assert!(page.verify(11, 0).is_err(), "flip in byte {byte}");
        }
    }

    #[test]
    fn a_stale_generation_or_wrong_place_is_detected() {
        let mut page = Page::new(1, 4);
        assert_eq!(
            page.verify(1, 5),
            Err(PageError::Generation {
                found: 4,
                expected: 5
            })
        );
        // The same content at another index: the index is in the checksum.
        assert_eq!(page.verify(2, 4), Err(PageError::Checksum));
        page.write(1, 5);
        assert_eq!(page.verify(1, 5), Ok(5));
    }

    #[test]
    fn content_differs_by_index_and_generation() {
        let a = Page::new(0, 0);
        assert_ne!(a.words[2..], Page::new(1, 0).words[2..]);
        assert_ne!(a.words[2..], Page::new(0, 1).words[2..]);
        assert_eq!(a.words, Page::new(0, 0).words);
    }

    #[test]
    fn rates_become_pages_per_tick() {
        assert_eq!(pages_for_mib(16), 4096);
        assert_eq!(pages_per_tick(0.0, 0.01), 0);
        // 1 MiB/s in 10 ms ticks: 2.56 pages, rounded up.
        assert_eq!(pages_per_tick(1.0, 0.01), 3);
        assert_eq!(pages_per_tick(50.0, 0.01), 128);
    }

    #[test]
    fn second_counts_fill_gaps_with_zero_and_forget_old_seconds() {
        let mut c = SecondCounts::default();
        c.add(100, 5);
        c.add(100, 2);
        c.add(102, 1);
        assert_eq!(
            c.series(99, 103),
            vec![(99, 0), (100, 7), (101, 0), (102, 1)]
        );
        // Only whole seconds: the one `now` is in is left out.
        let all = c.series(0, 101);
        assert_eq!(all.len(), 101);
        assert_eq!(all[100], (100, 7));
        assert!(all[..100].iter().all(|&(_, n)| n == 0));
        // 900 s later the slot is reused: second 100's count is gone.
        c.add(100 + SERIES_SECS, 1);
        let late = c.series(0, 101 + SERIES_SECS);
        assert_eq!(late.len(), SERIES_SECS as usize);
        assert_eq!(late.first(), Some(&(101, 0)));
        assert_eq!(late.last(), Some(&(100 + SERIES_SECS, 1)));
    }

    #[test]
    fn reports_round_trip_as_json_with_pairs_as_arrays() {
        let report = DirtyReport {
            pid: 9,
            size_mib: 16,
            dirty_mib_per_sec: 50.0,
            pages: 4096,
            pages_written: 10,
            verified_pages: 10,
            corrupt_pages: 0,
            started_unix: 1_700_000_000,
            ops_per_sec: vec![(1_700_000_001, 500)],
            dirty_pages_per_sec: vec![],
        };
        let json = serde_json::to_string(&report).unwrap();
        assert!(
            json.contains("\"ops_per_sec\":[[1700000001,500]]"),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<DirtyReport>(&json).unwrap(), report);
        let verify: VerifyReport =
            serde_json::from_str(r#"{"verified_pages":3,"corrupt_pages":0,"first_corrupt":null}"#)
                .unwrap();
        assert_eq!(verify.first_corrupt, None);
    }
}
