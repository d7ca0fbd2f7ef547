//! How many connections to the control socket are open: the D-Bus server
//! counts them, a detached upgrade waits for them to go (CRIU cannot
//! checkpoint a connection to relive itself).

use std::sync::atomic::{AtomicUsize, Ordering};

static OPEN: AtomicUsize = AtomicUsize::new(0);

/// How many control connections are open right now.
pub fn open() -> usize {
    OPEN.load(Ordering::SeqCst)
}

/// Counts a connection for as long as it lives.
#[derive(Debug)]
pub struct Counted(());

impl Counted {
    pub fn new() -> Counted {
        OPEN.fetch_add(1, Ordering::SeqCst);
        Counted(())
    }
}

impl Default for Counted {
    fn default() -> Counted {
        Counted::new()
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        OPEN.fetch_sub(1, Ordering::SeqCst);
    }
}
