//! Clocks: CLOCK_MONOTONIC for deadlines, the wall clock for display.

use super::state::Monotonic;
use std::time::Duration;

pub fn now() -> Monotonic {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .expect("CLOCK_MONOTONIC is always available");
    ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64
}

pub fn after(from: Monotonic, d: Duration) -> Monotonic {
    from.saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

pub use relive_sys::wall_usec;
