//! DeviceAllow= and DevicePolicy= (systemd.resource-control(5)): which
//! device nodes a service may open or create, enforced by a cgroup BPF
//! device program on its cgroup (relive_sys::device_filter).

use serde::{Deserialize, Serialize};

/// DevicePolicy=.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum DevicePolicy {
    /// No restriction unless DeviceAllow= lists something; then as closed.
    #[default]
    Auto,
    /// DeviceAllow= and the standard pseudo devices (/dev/null, ...).
    Closed,
    /// DeviceAllow= alone.
    Strict,
}

impl DevicePolicy {
    pub fn parse(value: &str) -> Option<DevicePolicy> {
        match value {
            "auto" | "" => Some(DevicePolicy::Auto),
            "closed" => Some(DevicePolicy::Closed),
            "strict" => Some(DevicePolicy::Strict),
            _ => None,
        }
    }
}

/// What a DeviceAllow= entry names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeviceSpec {
    /// A device node (`/dev/null`): its type and numbers, when it starts.
    Node(String),
    /// `char-NAME` / `block-NAME`: every major number /proc/devices lists
    /// under a name matching the shell pattern NAME (`char-pts`,
    /// `block-*`).
    Class { block: bool, pattern: String },
}

/// One DeviceAllow= entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceAllow {
    pub spec: DeviceSpec,
    pub read: bool,
    pub write: bool,
    pub mknod: bool,
}

impl DeviceAllow {
    /// `SPEC [rwm]`; access defaults to rwm. None for a value systemd
    /// would refuse.
    pub fn parse(value: &str) -> Option<DeviceAllow> {
        let mut words = value.split_whitespace();
        let spec = words.next()?;
        let access = words.next().unwrap_or("rwm");
        if words.next().is_some() || access.is_empty() || !access.chars().all(|c| "rwm".contains(c))
        {
            return None;
        }
        let spec = if let Some(pattern) = spec.strip_prefix("char-") {
            DeviceSpec::Class {
                block: false,
                pattern: pattern.to_owned(),
            }
        } else if let Some(pattern) = spec.strip_prefix("block-") {
            DeviceSpec::Class {
                block: true,
                pattern: pattern.to_owned(),
            }
        } else if spec.starts_with("/dev/") || spec.starts_with("/run/systemd/inaccessible/") {
            DeviceSpec::Node(spec.to_owned())
        } else {
            return None;
        };
        if matches!(&spec, DeviceSpec::Class { pattern, .. } if pattern.is_empty()) {
            return None;
        }
        Some(DeviceAllow {
            spec,
            read: access.contains('r'),
            write: access.contains('w'),
            mknod: access.contains('m'),
        })
    }
}

/// A service's device access rules.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Devices {
    pub policy: DevicePolicy,
    pub allow: Vec<DeviceAllow>,
}

/// What DevicePolicy=closed adds to DeviceAllow= (systemd's list): the
/// harmless pseudo devices, and the pseudo terminals (read and write).
pub const STANDARD_DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
    "/dev/ptmx",
];

impl Devices {
    /// Whether access to devices is restricted at all.
    pub fn restricted(&self) -> bool {
        self.policy != DevicePolicy::Auto || !self.allow.is_empty()
    }

    /// The entries in force: DeviceAllow= and, unless the policy is
    /// strict, the standard pseudo devices and `char-pts rw`.
    pub fn rules(&self) -> Vec<DeviceAllow> {
        if !self.restricted() {
            return Vec::new();
        }
        let mut rules = Vec::new();
        if self.policy != DevicePolicy::Strict {
            rules.extend(STANDARD_DEVICES.iter().map(|node| DeviceAllow {
                spec: DeviceSpec::Node((*node).to_owned()),
                read: true,
                write: true,
                mknod: true,
            }));
            rules.push(DeviceAllow {
                spec: DeviceSpec::Class {
                    block: false,
                    pattern: "pts".into(),
                },
                read: true,
                write: true,
                mknod: false,
            });
        }
        rules.extend(self.allow.iter().cloned());
        rules
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_parse_as_systemd_writes_them() {
        let null = DeviceAllow::parse("/dev/null rw").unwrap();
        assert_eq!(null.spec, DeviceSpec::Node("/dev/null".into()));
        assert!(null.read && null.write && !null.mknod);
        let input = DeviceAllow::parse("char-input").unwrap();
        assert_eq!(
            input.spec,
            DeviceSpec::Class {
                block: false,
                pattern: "input".into()
            }
        );
        assert!(input.read && input.write && input.mknod);
        assert!(DeviceAllow::parse("block-* r").is_some());
        for bad in ["", "null rw", "/dev/null rx", "/dev/null r w", "char- r"] {
            assert_eq!(DeviceAllow::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_policy_decides_what_is_added() {
        let none = Devices::default();
        assert!(!none.restricted() && none.rules().is_empty());
        let allow = vec![DeviceAllow::parse("/dev/fuse rw").unwrap()];
        let auto = Devices {
            policy: DevicePolicy::Auto,
            allow: allow.clone(),
        };
        // auto with an entry is closed: the pseudo devices, pts, the entry.
        assert_eq!(auto.rules().len(), STANDARD_DEVICES.len() + 2);
        let strict = Devices {
            policy: DevicePolicy::Strict,
            allow,
        };
        assert_eq!(strict.rules().len(), 1);
        let closed = Devices {
            policy: DevicePolicy::Closed,
            allow: Vec::new(),
        };
        assert!(closed.restricted());
        assert_eq!(closed.rules().len(), STANDARD_DEVICES.len() + 1);
    }
}
