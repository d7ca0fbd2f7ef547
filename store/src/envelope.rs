//! The handover envelope.
//!
//! ```text
//! offset  size  field
//! 0       8     magic "RELIVEHO"
//! 8       4     format version (little endian)
//! 12      4     kind: 1 re-exec, 2 kexec (little endian)
//! 16      8     payload length N (little endian)
//! 24      32    SHA-256 of the payload
//! 56      N     payload (PID 1's state, JSON: unknown keys are ignored
//!               by the reader, so a newer writer stays readable)
//! ```
//!
//! The reader checks every field before it trusts a byte of the payload:
//! a torn or corrupted handover is refused, never half-used.

use sha2::{Digest, Sha256};

pub const MAGIC: &[u8; 8] = b"RELIVEHO";
/// Bumped when the envelope or the meaning of the payload changes
/// incompatibly; the reader refuses versions it does not know.
pub const VERSION: u32 = 1;
const HEADER_LEN: usize = 56;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandoverKind {
    /// relive re-executes itself; every process and fd survives.
    Reexec = 1,
    /// A new kernel; only memory images and intent survive.
    Kexec = 2,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HandoverError {
    #[error("handover too short: {0} bytes, the header alone is {HEADER_LEN}")]
    Truncated(usize),
    #[error("not a relive handover (bad magic)")]
    BadMagic,
    #[error(
        "handover format version {found} is not supported (this relive reads version {VERSION})"
    )]
    UnsupportedVersion { found: u32 },
    #[error("unknown handover kind {0}")]
    UnknownKind(u32),
    #[error("handover payload is {found} bytes, the header says {expected}")]
    LengthMismatch { expected: u64, found: u64 },
    #[error("handover payload checksum mismatch: it was corrupted")]
    ChecksumMismatch,
}

/// Wraps `payload` in the envelope.
pub fn encode(kind: HandoverKind, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(kind as u32).to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&Sha256::digest(payload));
    out.extend_from_slice(payload);
    out
}

/// Checks the envelope; returns its kind and payload.
pub fn decode(bytes: &[u8]) -> Result<(HandoverKind, &[u8]), HandoverError> {
    if bytes.len() < HEADER_LEN {
        return Err(HandoverError::Truncated(bytes.len()));
    }
    if &bytes[..8] != MAGIC {
        return Err(HandoverError::BadMagic);
    }
    let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    let version = word(8);
    if version != VERSION {
        return Err(HandoverError::UnsupportedVersion { found: version });
    }
    let kind = match word(12) {
        1 => HandoverKind::Reexec,
        2 => HandoverKind::Kexec,
        other => return Err(HandoverError::UnknownKind(other)),
    };
    let expected = u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes"));
    let payload = &bytes[HEADER_LEN..];
    if payload.len() as u64 != expected {
        return Err(HandoverError::LengthMismatch {
            expected,
            found: payload.len() as u64,
        });
    }
    if Sha256::digest(payload).as_slice() != &bytes[24..56] {
        return Err(HandoverError::ChecksumMismatch);
    }
    Ok((kind, payload))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip() {
        let bytes = encode(HandoverKind::Reexec, b"{\"units\":{}}");
        assert_eq!(
            decode(&bytes).unwrap(),
            (HandoverKind::Reexec, &b"{\"units\":{}}"[..])
        );
    }

    #[test]
    fn every_kind_of_damage_is_named() {
        let good = encode(HandoverKind::Kexec, b"state");
        assert_eq!(decode(&good[..20]), Err(HandoverError::Truncated(20)));
        let mut bad = good.clone();
        bad[0] = b'X';
        assert_eq!(decode(&bad), Err(HandoverError::BadMagic));
        let mut bad = good.clone();
        bad[8] = 9;
        assert_eq!(
            decode(&bad),
            Err(HandoverError::UnsupportedVersion { found: 9 })
        );
        let mut bad = good.clone();
        bad.push(0);
        assert_eq!(
            decode(&bad),
            Err(HandoverError::LengthMismatch {
                expected: 5,
                found: 6
            })
        );
        let mut bad = good.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(decode(&bad), Err(HandoverError::ChecksumMismatch));
    }

    proptest! {
        /// The reader never panics, whatever it is given.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes);
        }

        /// Any single flipped bit in a handover is detected.
        #[test]
        fn a_flipped_bit_is_refused(payload in proptest::collection::vec(any::<u8>(), 0..100), bit in 0usize..1248) {
            let mut bytes = encode(HandoverKind::Reexec, &payload);
            let bit = bit % (bytes.len() * 8);
            bytes[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(decode(&bytes).is_err());
        }
    }
}
