//! Credentials (systemd.exec(5) "Credentials"): LoadCredential= and
//! SetCredential=, the secrets a service reads from
//! `$CREDENTIALS_DIRECTORY` instead of from files all over the system.

use serde::{Deserialize, Serialize};

/// Where a credential comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Source {
    /// LoadCredential=ID:PATH with an absolute path: a file, or an
    /// AF_UNIX socket to read it from. Missing is an error.
    Path(String),
    /// LoadCredential=ID[:NAME] with a relative name (or none): looked
    /// up in the credentials the system was given; missing is skipped.
    Store(String),
    /// SetCredential=ID:VALUE.
    Literal(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    pub id: String,
    pub source: Source,
}

/// A service's credentials, in the order of their directives.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials(pub Vec<Credential>);

impl Credentials {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds one; LoadCredential= wins over SetCredential= for the same
    /// ID, whatever their order (SetCredential= is the fallback).
    pub fn add(&mut self, credential: Credential) {
        let literal = matches!(credential.source, Source::Literal(_));
        match self.0.iter().position(|c| c.id == credential.id) {
            Some(i) if literal && !matches!(self.0[i].source, Source::Literal(_)) => {}
            Some(i) => self.0[i] = credential,
            None => self.0.push(credential),
        }
    }
}

/// A credential ID: a file name.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id != "." && id != ".." && !id.contains('/') && id.len() <= 255
}
