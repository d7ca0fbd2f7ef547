//! The system's one clock after a live upgrade (relive_sys::timens):
//! made before anything is restored or started in the new kernel.

use relive_api::report::ClockOffsets;
use relive_sys::timens::{self, ClockAtKexec, Clocks};

/// In a new kernel (`at_kexec` given): a time namespace continuing the
/// services' clocks from the kexec. On the kernel that dumped (an undo):
/// the namespace the services had, or one that reads the kernel's own
/// clocks, so that the units undone all read one clock as before.
pub fn one_clock(at_kexec: Option<&ClockAtKexec>) -> Option<ClockOffsets> {
    if timens::open_pinned().is_some() && at_kexec.is_none() {
        return Some(timens::current_offsets());
    }
    let offsets = match at_kexec {
        // A handover from a relive that did not record its clocks.
        Some(at) if at.kernel.monotonic_ns == 0 => return None,
        Some(at) => at.continued(Clocks::now(), relive_sys::wall_usec()),
        None => ClockOffsets::default(),
    };
    let made = timens::create(offsets).and_then(|ns| {
        use std::os::fd::AsFd;
        timens::pin(ns.as_fd(), offsets)
    });
    match made {
        Ok(()) => {
            tracing::info!(
                "one clock for the services: CLOCK_MONOTONIC {:+.3} s, CLOCK_BOOTTIME {:+.3} s from the kernel's",
                offsets.monotonic_ns as f64 / 1e9,
                offsets.boottime_ns as f64 / 1e9
            );
            Some(offsets)
        }
        Err(e) => {
            tracing::warn!(
                "cannot make the services' time namespace ({e}): each restored unit keeps a clock of its own"
            );
            None
        }
    }
}
