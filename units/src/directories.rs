//! StateDirectory=, CacheDirectory=, LogsDirectory= and
//! ConfigurationDirectory= (systemd.exec(5)): directories under /var/lib,
//! /var/cache, /var/log and /etc made for a service before it starts,
//! owned by its User= (but the configuration ones), named to it in
//! $STATE_DIRECTORY and friends, and kept when it stops.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DirectoryKind {
    State,
    Cache,
    Logs,
    Configuration,
}

impl DirectoryKind {
    pub const ALL: [DirectoryKind; 4] = [
        DirectoryKind::State,
        DirectoryKind::Cache,
        DirectoryKind::Logs,
        DirectoryKind::Configuration,
    ];

    /// The directive naming the directories (`StateDirectory`).
    pub fn directive(self) -> &'static str {
        match self {
            DirectoryKind::State => "StateDirectory",
            DirectoryKind::Cache => "CacheDirectory",
            DirectoryKind::Logs => "LogsDirectory",
            DirectoryKind::Configuration => "ConfigurationDirectory",
        }
    }

    /// Where the names are relative to.
    pub fn base(self) -> &'static str {
        match self {
            DirectoryKind::State => "/var/lib",
            DirectoryKind::Cache => "/var/cache",
            DirectoryKind::Logs => "/var/log",
            DirectoryKind::Configuration => "/etc",
        }
    }

    /// The environment variable that lists them, colon-separated.
    pub fn env(self) -> &'static str {
        match self {
            DirectoryKind::State => "STATE_DIRECTORY",
            DirectoryKind::Cache => "CACHE_DIRECTORY",
            DirectoryKind::Logs => "LOGS_DIRECTORY",
            DirectoryKind::Configuration => "CONFIGURATION_DIRECTORY",
        }
    }

    /// Configuration stays root's: the service reads it, an administrator
    /// writes it.
    pub fn owned_by_the_service(self) -> bool {
        self != DirectoryKind::Configuration
    }
}

/// One kind's names and mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectorySetting {
    pub names: Vec<String>,
    /// *DirectoryMode=; default 0755.
    pub mode: u32,
}

impl Default for DirectorySetting {
    fn default() -> Self {
        DirectorySetting {
            names: Vec::new(),
            mode: 0o755,
        }
    }
}

/// The four kinds of a service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExecDirectories {
    pub state: DirectorySetting,
    pub cache: DirectorySetting,
    pub logs: DirectorySetting,
    pub configuration: DirectorySetting,
}

impl ExecDirectories {
    pub fn get(&self, kind: DirectoryKind) -> &DirectorySetting {
        match kind {
            DirectoryKind::State => &self.state,
            DirectoryKind::Cache => &self.cache,
            DirectoryKind::Logs => &self.logs,
            DirectoryKind::Configuration => &self.configuration,
        }
    }

    pub fn get_mut(&mut self, kind: DirectoryKind) -> &mut DirectorySetting {
        match kind {
            DirectoryKind::State => &mut self.state,
            DirectoryKind::Cache => &mut self.cache,
            DirectoryKind::Logs => &mut self.logs,
            DirectoryKind::Configuration => &mut self.configuration,
        }
    }
}
