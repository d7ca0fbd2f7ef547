//! The restore side of a live upgrade.
//!
//! For now: the PID space. A restored process must get back its old PID, so
//! that PID must be free in the new kernel. The new kernel's own threads and
//! early tasks take the low PIDs, so relive starts every service above a
//! floor (moving `ns_last_pid`), on both sides of an upgrade.

pub mod pid_space;
