//! The restore side of a live upgrade.
//!
//! - [`handover`]: the envelope PID 1's state travels in, across a re-exec
//!   now and a kexec later: versioned, length-prefixed, checksummed.
//! - [`pid_space`]: a restored process must get back its old PID, so that
//!   PID must be free in the new kernel. The new kernel's own threads and
//!   early tasks take the low PIDs, so relive starts every service above a
//!   floor (moving `ns_last_pid`), on both sides of an upgrade.

pub mod handover;
pub mod pid_space;
