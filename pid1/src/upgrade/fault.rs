//! Fault injection for tests of the abort path: inert unless the file
//! /run/relive/fault-inject exists (root only: /run/relive is relive's).
//!
//! Each line names a fault and a unit:
//! - `dump-fail UNIT`: the dump of that unit fails as if CRIU had refused
//!   it, after the units before it were checkpointed, so that the undo path
//!   runs for real;
//! - `pre-dump-fail UNIT`: every background pre-dump of that unit fails;
//!   its final dump is then full and the upgrade goes on;
//! - `corrupt-image UNIT`: one byte of that unit's page images is flipped
//!   after they were checksummed, just before the kexec, so that the new
//!   kernel must refuse them (the unit starts afresh, the report says why);
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

/// Flips one byte in the middle of the unit's first page image (`corrupt-image`).
pub fn corrupt_images(images_dir: &Path) -> std::io::Result<std::path::PathBuf> {
    let mut pages: Vec<_> = std::fs::read_dir(images_dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("pages-") && n.ends_with(".img"))
        })
        .collect();
    pages.sort();
    let path = pages
        .into_iter()
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 0))
        .ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, "no page image to corrupt")
        })?;
    let mut bytes = std::fs::read(&path)?;
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&path, bytes)?;
    Ok(path)
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
