//! Errors of the CRIU client: each names the request it belongs to, and a
//! failure reported by CRIU carries CRIU's own reason.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// The RPC requests this client sends, named as in `rpc.proto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Request {
    Version,
    Check,
    PreDump,
    Dump,
    Restore,
    FeatureCheck,
}

impl Request {
    /// The name used in `rpc.proto` (`criu_req_type`).
    pub fn as_str(self) -> &'static str {
        match self {
            Request::Version => "VERSION",
            Request::Check => "CHECK",
            Request::PreDump => "PRE_DUMP",
            Request::Dump => "DUMP",
            Request::Restore => "RESTORE",
            Request::FeatureCheck => "FEATURE_CHECK",
        }
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CriuError {
    /// The socket pair that carries the RPC could not be made.
    #[error("creating the CRIU RPC socket pair: {0}")]
    Socket(#[source] io::Error),
    /// `criu swrk` could not be started.
    #[error("starting `{} swrk`: {source}", criu.display())]
    Spawn {
        criu: PathBuf,
        #[source]
        source: io::Error,
    },
    /// An option cannot be sent as given (checked before anything is sent).
    #[error("{request}: invalid option {option}: {reason}")]
    InvalidOption {
        request: Request,
        option: &'static str,
        reason: String,
    },
    /// Writing to the RPC socket failed.
    #[error("{request}: sending to CRIU: {source}")]
    Send {
        request: Request,
        #[source]
        source: io::Error,
    },
    /// Reading from the RPC socket failed.
    #[error("{request}: receiving from CRIU: {source}")]
    Recv {
        request: Request,
        #[source]
        source: io::Error,
    },
    /// CRIU sent nothing for too long. It may still be running: kill it by
    /// its pid (`Session::pid`) and reap it.
    #[error("{request}: no message from CRIU within {waited:?} (CRIU may be hung; kill it)")]
    Timeout { request: Request, waited: Duration },
    /// CRIU closed its end of the socket: it exited or crashed before
    /// answering. Its log file (in the images directory) says why.
    #[error("{request}: CRIU closed the connection without answering (it exited or crashed; see its log)")]
    Closed { request: Request },
    /// CRIU's message is larger than any answer CRIU sends.
    #[error("{request}: CRIU sent a {len}-byte message, more than the {max} bytes allowed")]
    TooLarge {
        request: Request,
        len: usize,
        max: usize,
    },
    /// CRIU's message is not a valid `criu_resp`.
    #[error("{request}: undecodable message from CRIU: {source}")]
    Decode {
        request: Request,
        #[source]
        source: prost::DecodeError,
    },
    /// The request cannot follow the ones before it on this session: after
    /// a PRE_DUMP, CRIU accepts only another PRE_DUMP or the final DUMP.
    #[error("{request} cannot follow a PRE_DUMP on the same CRIU session; start a new one")]
    Sequence { request: Request },
    /// CRIU answered with a message of another type.
    #[error("{request}: CRIU answered with a message of type {got}")]
    Unexpected { request: Request, got: String },
    /// CRIU reports that the request failed. `errno` and `message` are
    /// CRIU's `cr_errno` and `cr_errmsg` (its first logged error), often
    /// absent in 3.17.1; `log_errors` are the last "Error (...)" lines of
    /// CRIU's log in the images directory, read after the failure.
    #[error("{request} failed in CRIU: {}", describe(*.errno, .message.as_deref(), .log_errors))]
    Failed {
        request: Request,
        errno: Option<i32>,
        message: Option<String>,
        log_errors: Vec<String>,
    },
}

/// CRIU's message, else the last error of its log, with the errno if any.
fn describe(errno: Option<i32>, message: Option<&str>, log_errors: &[String]) -> String {
    let errno = errno.filter(|&e| e != 0);
    // CRIU's messages end with a newline: an error is one line (the
    // console, the report and the lab's matching of the two rely on it).
    let text = message
        .or(log_errors.last().map(String::as_str))
        .map(str::trim_end);
    match (text, errno) {
        (Some(m), Some(e)) => format!("{m} (errno {e}: {})", io::Error::from_raw_os_error(e)),
        (Some(m), None) => m.to_owned(),
        (None, Some(e)) => format!("errno {e}: {}", io::Error::from_raw_os_error(e)),
        (None, None) => "no reason given (see CRIU's log in the images directory)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_error_names_request_and_reason() {
        let e = CriuError::Failed {
            request: Request::Dump,
            errno: Some(22),
            message: Some("Can't freeze".into()),
            log_errors: vec!["Error (a.c:1): later".into()],
        };
        let text = e.to_string();
        assert!(
            text.starts_with("DUMP failed in CRIU: Can't freeze (errno 22: "),
            "{text}"
        );
        let e = CriuError::Failed {
            request: Request::Restore,
            errno: None,
            message: None,
            log_errors: Vec::new(),
        };
        assert!(e.to_string().contains("see CRIU's log"));
        let e = CriuError::Failed {
            request: Request::PreDump,
            errno: None,
            message: None,
            log_errors: vec!["Error (a.c:1): first".into(), "Error (b.c:2): last".into()],
        };
        assert_eq!(
            e.to_string(),
            "PRE_DUMP failed in CRIU: Error (b.c:2): last"
        );
    }

    #[test]
    fn criu_s_trailing_newline_is_not_part_of_the_error() {
        let e = CriuError::Failed {
            request: Request::Dump,
            errno: None,
            message: Some(
                "Error (criu/bfd.c:131): bfd: Error flushing image: No space left on device\n"
                    .into(),
            ),
            log_errors: Vec::new(),
        };
        assert!(!e.to_string().contains('\n'), "{e}");
    }
}
