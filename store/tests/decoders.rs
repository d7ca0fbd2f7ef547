//! The readers of what crosses from one relive to another never panic,
//! whatever bytes they are given: the envelope (tested in envelope.rs), the
//! kexec handover and the report, as raw bytes and as damaged copies of a
//! real handover.

use proptest::prelude::*;
use relive_api::report::UpgradeReport;
use relive_store::envelope;
use relive_store::KexecHandover;

fn golden_payload() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/kexec-handover.bin"
    );
    let bytes = std::fs::read(path).unwrap();
    envelope::decode(&bytes).unwrap().1.to_vec()
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_the_decoders(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = serde_json::from_slice::<KexecHandover>(&bytes);
        let _ = serde_json::from_slice::<UpgradeReport>(&bytes);
    }

    /// A real handover with bytes changed or cut: refused or read, never a panic.
    #[test]
    fn a_damaged_handover_never_panics(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8), cut in any::<usize>()) {
        let mut payload = golden_payload();
        for (at, byte) in flips {
            let at = at % payload.len();
            payload[at] = byte;
        }
        payload.truncate(cut % (payload.len() + 1));
        let _ = serde_json::from_slice::<KexecHandover>(&payload);
    }
}
