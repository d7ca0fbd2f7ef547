//! Fault injection for tests of the abort path: inert unless the file
//! /run/relive/fault-inject exists (root only: /run/relive is relive's).
//!
//! Each line names a fault and a unit:
//! - `dump-fail UNIT`: the dump of that unit fails as if CRIU had refused
//!   it, after the units before it were checkpointed, so that the undo path
//!   runs for real;
//! - `pre-dump-fail UNIT`: every background pre-dump of that unit fails;
//!   its final dump is then full and the upgrade goes on;
//! - `restore-fail UNIT`: its restore fails (after the kexec, or on the old
//!   kernel during an undo), so the unit starts afresh and the report says
//!   its state was lost. The file travels in the store across the kexec.

use std::path::Path;

pub const FAULT_FILE: &str = "/run/relive/fault-inject";

/// Whether `fault` is injected for `unit`.
pub fn injected(fault: &str, unit: &str) -> bool {
    injected_in(Path::new(FAULT_FILE), fault, unit)
}

pub fn injected_in(file: &Path, fault: &str, unit: &str) -> bool {
    let Ok(text) = std::fs::read_to_string(file) else {
        return false;
    };
    text.lines().any(|l| {
        let mut words = l.split_whitespace();
        words.next() == Some(fault) && words.next() == Some(unit)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_named_faults_fire() {
        let file = std::env::temp_dir().join(format!("relive-fault-{}", std::process::id()));
        assert!(
            !injected_in(&file, "dump-fail", "a.service"),
            "no file, no fault"
        );
        std::fs::write(&file, "# comment\ndump-fail a.service\n").unwrap();
        assert!(injected_in(&file, "dump-fail", "a.service"));
        assert!(!injected_in(&file, "dump-fail", "b.service"));
        std::fs::remove_file(file).unwrap();
    }
}
