//! Why a unit could not be loaded.
//!
//! Every variant names where the problem is, first: the unit name for
//! look-up problems, `file:line` for problems inside a file, the path for
//! I/O. PID 1 logs these verbatim, so the text is the documentation.

use crate::model::Location;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// No unit file with that name (nor a template for it) in any search dir.
    #[error("{name}: unit file not found")]
    NotFound { name: String },

    /// The name is not a valid unit name (`foo.service`, `foo@bar.service`).
    #[error("{name}: invalid unit name")]
    InvalidName { name: String },

    /// The unit file is a symlink to /dev/null (or empty): the unit is masked.
    #[error("{name}: unit is masked ({})", path.display())]
    Masked { name: String, path: PathBuf },

    /// The file is not in systemd's unit file syntax.
    #[error("{location}: {message}")]
    Syntax { location: Location, message: String },

    /// A directive relive supports has a value it cannot accept, or the unit
    /// as a whole is inconsistent (e.g. a service without ExecStart=).
    #[error("{location}: {message}")]
    Invalid { location: Location, message: String },

    /// Reading a unit file or directory failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl LoadError {
    pub(crate) fn invalid(location: &Location, message: impl Into<String>) -> Self {
        LoadError::Invalid {
            location: location.clone(),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_place_first() {
        let e = LoadError::NotFound {
            name: "ssh.service".into(),
        };
        assert_eq!(e.to_string(), "ssh.service: unit file not found");
        let loc = Location {
            file: "/x/a.service".into(),
            line: 3,
        };
        let e = LoadError::invalid(&loc, "invalid Restart= value \"sometimes\"");
        assert_eq!(
            e.to_string(),
            "/x/a.service:3: invalid Restart= value \"sometimes\""
        );
        let e = LoadError::Masked {
            name: "x.service".into(),
            path: "/etc/systemd/system/x.service".into(),
        };
        assert_eq!(
            e.to_string(),
            "x.service: unit is masked (/etc/systemd/system/x.service)"
        );
    }
}
