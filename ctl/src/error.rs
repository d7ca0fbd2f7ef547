//! What can go wrong in relivectl, sorted by what the user can do about it.

use std::error::Error as StdError;
use std::io;
use std::path::PathBuf;

/// Error names the relive server replies with.
pub use relive_api::names::errors::{ACCESS_DENIED, JOB_FAILED, NO_SUCH_UNIT, REFUSED};

#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// Nothing listens there, or the path is wrong.
    #[error("cannot connect to {}: {} (is relive running? use --socket)", path.display(), os_text(err))]
    Connect { path: PathBuf, err: io::Error },

    /// The socket is root's.
    #[error("cannot connect to {}: {} (root is required)", path.display(), os_text(err))]
    ConnectDenied { path: PathBuf, err: io::Error },

    /// Something listens but does not speak D-Bus as relive does. The
    /// cause (zbus's) says how the handshake went wrong.
    #[error("cannot talk to relive on {}", path.display())]
    Handshake {
        path: PathBuf,
        #[source]
        source: Box<zbus::Error>,
    },

    /// The server refused a caller who is not root.
    #[error("{}", access_denied_text(.0))]
    AccessDenied(String),

    /// The server's message names the unit and says why.
    #[error("{0}")]
    NoSuchUnit(String),

    /// The server's message says why and where to look.
    #[error("{0}")]
    JobFailed(String),

    /// For instance, a shutdown is in progress.
    #[error("{0}")]
    Refused(String),

    /// Any other error the server replied with.
    #[error("{name}: {message}")]
    Remote { name: String, message: String },

    /// The call did not get an answer (connection lost, bad reply).
    #[error("call to relive failed")]
    Call(#[source] Box<zbus::Error>),

    /// The answer could not be understood (a relive of another version?).
    #[error("{0}")]
    Protocol(String),

    /// Writing the results failed (other than a closed pipe).
    #[error("cannot write to standard output")]
    Output(#[source] io::Error),

    /// The FleetLock server could not be reached or said no.
    #[error(transparent)]
    FleetLock(#[from] crate::fleetlock::FleetLockError),

    /// Writing a file the command was asked to write failed.
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl CtlError {
    /// Sorts an error from a method call by the name the server gave it.
    pub fn from_call(err: zbus::Error) -> CtlError {
        match err {
            zbus::Error::MethodError(name, message, _) => {
                Self::from_remote(name.as_str(), message.unwrap_or_default())
            }
            zbus::Error::FDO(fdo) => match *fdo {
                zbus::fdo::Error::AccessDenied(message) => CtlError::AccessDenied(message),
                other => CtlError::Call(Box::new(zbus::Error::FDO(Box::new(other)))),
            },
            other => CtlError::Call(Box::new(other)),
        }
    }

    /// Pure part of `from_call`, testable without building a D-Bus message.
    pub fn from_remote(name: &str, message: String) -> CtlError {
        match name {
            NO_SUCH_UNIT => CtlError::NoSuchUnit(message),
            JOB_FAILED => CtlError::JobFailed(message),
            REFUSED => CtlError::Refused(message),
            ACCESS_DENIED => CtlError::AccessDenied(message),
            _ => CtlError::Remote {
                name: name.to_owned(),
                message,
            },
        }
    }

    /// Sorts a failed `connect(2)` on the control socket.
    pub fn from_connect(path: PathBuf, err: io::Error) -> CtlError {
        match err.kind() {
            io::ErrorKind::PermissionDenied => CtlError::ConnectDenied { path, err },
            _ => CtlError::Connect { path, err },
        }
    }

    /// Errors after which asking about the next unit is pointless: every
    /// call would fail the same way.
    pub fn is_fatal(&self) -> bool {
        !matches!(
            self,
            CtlError::NoSuchUnit(_)
                | CtlError::JobFailed(_)
                | CtlError::Refused(_)
                | CtlError::Remote { .. }
        )
    }
}

/// The text of an I/O error without std's "(os error N)" tail, which
/// tells a person nothing more.
fn os_text(err: &io::Error) -> String {
    match err.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_owned(),
        None => err.to_string(),
    }
}

/// "permission denied: ...", saying that root is required unless the
/// server's message already does.
fn access_denied_text(message: &str) -> String {
    match message.trim() {
        "" => "permission denied (root is required)".to_owned(),
        m if m.contains("root") => format!("permission denied: {m}"),
        m => format!("permission denied: {m} (root is required)"),
    }
}

/// One line: the error and its causes joined by ": ". A cause whose text the
/// line already ends with is left out, because several zbus errors repeat
/// their source in their own message.
pub fn render_chain(err: &dyn StdError) -> String {
    let mut line = err.to_string().trim_end().to_owned();
    let mut cause = err.source();
    while let Some(c) = cause {
        // zbus ends some messages with the peer's own line break.
        let text = c.to_string();
        let text = text.trim_end();
        if !text.is_empty() && !line.ends_with(text) {
            line.push_str(": ");
            line.push_str(text);
        }
        cause = c.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn remote_errors_are_sorted_by_name() {
        let e = CtlError::from_remote(NO_SUCH_UNIT, "nope.service: no unit file".into());
        assert!(matches!(e, CtlError::NoSuchUnit(_)));
        assert_eq!(e.to_string(), "nope.service: no unit file");
        assert!(!e.is_fatal());

        let e = CtlError::from_remote(JOB_FAILED, "Job for a.service failed".into());
        assert!(matches!(e, CtlError::JobFailed(_)) && !e.is_fatal());

        let e = CtlError::from_remote(REFUSED, "shutdown in progress".into());
        assert!(matches!(e, CtlError::Refused(_)) && !e.is_fatal());

        let e = CtlError::from_remote(ACCESS_DENIED, "uid 1000".into());
        assert_eq!(
            e.to_string(),
            "permission denied: uid 1000 (root is required)"
        );
        assert!(e.is_fatal());

        let e = CtlError::from_remote(ACCESS_DENIED, "uid 1000: root only".into());
        assert_eq!(e.to_string(), "permission denied: uid 1000: root only");
        let e = CtlError::from_remote(ACCESS_DENIED, String::new());
        assert_eq!(e.to_string(), "permission denied (root is required)");

        let e = CtlError::from_remote("org.example.Odd", "hm".into());
        assert_eq!(e.to_string(), "org.example.Odd: hm");
        assert!(!e.is_fatal());
    }

    #[test]
    fn fdo_access_denied_is_recognised() {
        let e = CtlError::from_call(zbus::Error::FDO(Box::new(zbus::fdo::Error::AccessDenied(
            "no".into(),
        ))));
        assert!(matches!(e, CtlError::AccessDenied(_)));
    }

    #[test]
    fn connect_errors_name_the_path_and_the_way_out() {
        let e = CtlError::from_connect(
            "/run/relive/private".into(),
            io::Error::from_raw_os_error(libc::ENOENT),
        );
        assert_eq!(
            render_chain(&e),
            "cannot connect to /run/relive/private: No such file or directory \
             (is relive running? use --socket)"
        );
        let e = CtlError::from_connect("/s".into(), io::Error::from_raw_os_error(libc::EACCES));
        assert!(matches!(e, CtlError::ConnectDenied { .. }));
        assert!(e.to_string().ends_with("(root is required)"));
    }

    #[test]
    fn chain_skips_repeated_causes() {
        let io = io::Error::new(io::ErrorKind::BrokenPipe, "Broken pipe");
        let e = CtlError::Call(Box::new(zbus::Error::InputOutput(Arc::new(io))));
        assert_eq!(
            render_chain(&e),
            "call to relive failed: I/O error: Broken pipe"
        );
    }

    #[test]
    fn chain_drops_trailing_line_breaks() {
        let e = CtlError::Handshake {
            path: "/s".into(),
            source: Box::new(zbus::Error::Handshake("Unknown command: HELLO\r\n".into())),
        };
        assert_eq!(
            render_chain(&e),
            "cannot talk to relive on /s: D-Bus handshake failed: Unknown command: HELLO"
        );
    }
}
