//! A relive built without the cargo feature `fault-injection` (every
//! build but the lab's) holds none of it: no fault names, no fault file.

use relive_tests::binary;

/// Names only the fault-injection code carries (host/src/fault.rs).
const FAULT_WORDS: &[&str] = &[
    "/run/relive/fault-inject",
    "criu-kill-pre-dump",
    "criu-kill-dump",
    "pre-dump-kills",
    "restore-fail-new",
    "panic-resume",
    "injected fault",
];

#[test]
fn a_relive_built_without_the_feature_holds_no_fault_injection() {
    let relive = binary("relive");
    let bytes = std::fs::read(&relive).expect("read the relive binary");
    for word in FAULT_WORDS {
        let found = bytes.windows(word.len()).any(|w| w == word.as_bytes());
        assert!(!found, "{} contains {word:?}", relive.display());
    }
}
