//! The [Path] section of a `.path` unit (systemd.path(5)), as data.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What a path unit watches for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PathCondition {
    /// PathExists=: the path exists.
    Exists,
    /// PathExistsGlob=: something matches the pattern.
    ExistsGlob,
    /// PathChanged=: the file was written and closed, or appeared, moved,
    /// went, or its attributes changed.
    Changed,
    /// PathModified=: as Changed, and on every write.
    Modified,
    /// DirectoryNotEmpty=: the directory holds something.
    DirectoryNotEmpty,
}

impl PathCondition {
    /// Holds while true, rather than firing on an event.
    pub fn is_state(self) -> bool {
        matches!(
            self,
            PathCondition::Exists | PathCondition::ExistsGlob | PathCondition::DirectoryNotEmpty
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathSpec {
    pub condition: PathCondition,
    pub path: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathSection {
    pub specs: Vec<PathSpec>,
    /// Unit= (default: the path unit's name with `.service`).
    pub unit: Option<String>,
    /// MakeDirectory=: make the watched directories first.
    pub make_directory: bool,
    /// DirectoryMode= (default 0755).
    pub directory_mode: u32,
}
