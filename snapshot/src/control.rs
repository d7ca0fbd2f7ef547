//! Cancelling an upgrade from outside its thread (`relivectl live-upgrade
//! --cancel`). Until the stoppage begins nothing is frozen for good:
//! phase 1 copies memory in the background, one round at a time, so a
//! cancel stops it after the round under way and the upgrade is undone
//! like any abort. Once the stoppage has begun the upgrade goes on to the
//! kexec, or to its undo, on its own.

pub use relive_api::progress::CancelAnswer;
use std::sync::atomic::{AtomicU8, Ordering};

const IDLE: u8 = 0;
const BEFORE_STOPPAGE: u8 = 1;
const CANCELLED: u8 = 2;
const STOPPAGE: u8 = 3;

/// Where an upgrade stands, shared with whoever may cancel it: one per
/// PID 1 (a static), one per test.
#[derive(Debug, Default)]
pub struct UpgradeControl {
    stage: AtomicU8,
}

impl UpgradeControl {
    pub const fn new() -> UpgradeControl {
        UpgradeControl {
            stage: AtomicU8::new(IDLE),
        }
    }

    /// Asks the upgrade under way to stop before its stoppage.
    pub fn cancel(&self) -> CancelAnswer {
        match self.stage.compare_exchange(
            BEFORE_STOPPAGE,
            CANCELLED,
            Ordering::SeqCst,
            Ordering::SeqCst,
        ) {
            Ok(_) | Err(CANCELLED) => CancelAnswer::Cancelled,
            Err(STOPPAGE) => CancelAnswer::StoppageBegun,
            Err(_) => CancelAnswer::NoUpgrade,
        }
    }

    /// An upgrade begins (its phase 1, or straight its stoppage).
    pub(crate) fn begin(&self) {
        self.stage.store(BEFORE_STOPPAGE, Ordering::SeqCst);
    }

    pub(crate) fn cancelled(&self) -> bool {
        self.stage.load(Ordering::SeqCst) == CANCELLED
    }

    /// The stoppage begins, unless a cancel came first (false).
    pub(crate) fn stoppage_begins(&self) -> bool {
        self.stage
            .compare_exchange(
                BEFORE_STOPPAGE,
                STOPPAGE,
                Ordering::SeqCst,
                Ordering::SeqCst,
            )
            .is_ok()
    }

    /// The upgrade is over (undone; a finished one leaves with the kernel).
    pub(crate) fn end(&self) {
        self.stage.store(IDLE, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancel_counts_only_before_the_stoppage() {
        let control = UpgradeControl::new();
        assert_eq!(control.cancel(), CancelAnswer::NoUpgrade);
        control.begin();
        assert_eq!(control.cancel(), CancelAnswer::Cancelled);
        assert_eq!(control.cancel(), CancelAnswer::Cancelled);
        assert!(control.cancelled());
        assert!(!control.stoppage_begins());
        control.end();
        control.begin();
        assert!(control.stoppage_begins());
        assert_eq!(control.cancel(), CancelAnswer::StoppageBegun);
        control.end();
        assert_eq!(control.cancel(), CancelAnswer::NoUpgrade);
    }
}
