//! The D-Bus API between `relive` (PID 1) and `relivectl`.
//!
//! Served peer-to-peer on a private unix socket (no bus daemon: PID 1 must
//! not depend on one). Object `/org/relive/Manager1`, interface
//! `org.relive.Manager1`. Every method refuses a caller whose uid is not 0
//! with `org.freedesktop.DBus.Error.AccessDenied`.

pub const OBJECT_PATH: &str = "/org/relive/Manager1";
pub const INTERFACE: &str = "org.relive.Manager1";
/// Where PID 1 listens unless `--control-socket` says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/relive/private";

/// The error names relive replies with.
pub mod errors {
    pub const NO_SUCH_UNIT: &str = "org.relive.Error.NoSuchUnit";
    pub const JOB_FAILED: &str = "org.relive.Error.JobFailed";
    pub const REFUSED: &str = "org.relive.Error.Refused";
    pub const FAILED: &str = "org.freedesktop.DBus.Error.Failed";
    pub const ACCESS_DENIED: &str = "org.freedesktop.DBus.Error.AccessDenied";
}
