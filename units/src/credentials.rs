//! Credentials (systemd.exec(5) "Credentials"): LoadCredential=,
//! ImportCredential= and SetCredential=, the secrets a service reads from
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
    /// ImportCredential=GLOB[:PREFIX]: every credential of the system
    /// whose name matches the shell pattern, under its own name or, with
    /// PREFIX, with the pattern's fixed start replaced by PREFIX. The
    /// credential's `id` is the pattern.
    Import {
        pattern: String,
        rename: Option<String>,
    },
}

impl Source {
    /// The names a file of the system's credentials is imported under,
    /// if this is an import that matches it.
    pub fn imported_name(&self, file: &str) -> Option<String> {
        let Source::Import { pattern, rename } = self else {
            return None;
        };
        if !glob::Pattern::new(pattern).ok()?.matches(file) {
            return None;
        }
        match rename {
            None => Some(file.to_owned()),
            Some(prefix) => {
                let fixed = pattern.strip_suffix('*')?;
                Some(format!("{prefix}{}", file.strip_prefix(fixed)?))
            }
        }
    }
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

#[cfg(test)]
mod import_tests {
    use super::*;

    #[test]
    fn an_import_matches_and_renames_as_systemd_does() {
        let plain = Source::Import {
            pattern: "login.*".into(),
            rename: None,
        };
        assert_eq!(
            plain.imported_name("login.noauth").as_deref(),
            Some("login.noauth")
        );
        assert_eq!(plain.imported_name("agetty.autologin"), None);
        let renamed = Source::Import {
            pattern: "tty.virtual.tty1.agetty.*".into(),
            rename: Some("agetty.".into()),
        };
        assert_eq!(
            renamed
                .imported_name("tty.virtual.tty1.agetty.speed")
                .as_deref(),
            Some("agetty.speed")
        );
        assert_eq!(renamed.imported_name("tty.virtual.tty2.agetty.speed"), None);
        assert_eq!(Source::Store("x".into()).imported_name("x"), None);
    }
}
