//! Where relive-lab's output goes, so that it talks to a person like a
//! tool and not like a build log:
//!
//! - the verb's result on stdout ([`println()`]);
//! - its steps on stderr ([`step`]): on a terminal a spinner with the
//!   step's elapsed time while it runs, then a line with ✓ or ✗ and its
//!   duration; elsewhere (CI) a plain line when it starts and one when it
//!   ends;
//! - everything the tools print (apt, mkosi, debootstrap, cargo, mkfs,
//!   e2fsck, ssh-keygen...) and relive-lab's own notes to the verb's log
//!   file under lab/out/logs/ ([`log()`]), whose path is printed once when
//!   the verb starts and whose last lines an error quotes.

mod log;
mod steps;

pub use log::{log, open_log, run, status, tail};
pub use steps::{note, println, step, warn};

use std::time::Duration;

/// A duration for people: `0.4 s`, `42 s`, `3 min 05 s`.
pub fn duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 10.0 {
        format!("{secs:.1} s")
    } else if secs < 60.0 {
        format!("{secs:.0} s")
    } else {
        let whole = d.as_secs();
        format!("{} min {:02} s", whole / 60, whole % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(duration(Duration::from_millis(400)), "0.4 s");
        assert_eq!(duration(Duration::from_millis(42_400)), "42 s");
        assert_eq!(duration(Duration::from_secs(185)), "3 min 05 s");
    }
}
