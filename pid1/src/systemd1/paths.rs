//! Object paths as systemd makes them: a unit's name escaped into one
//! path label (systemctl computes these itself, so they must match
//! byte for byte), a job's number.

pub const MANAGER: &str = "/org/freedesktop/systemd1";
const UNIT_PREFIX: &str = "/org/freedesktop/systemd1/unit/";
const JOB_PREFIX: &str = "/org/freedesktop/systemd1/job/";

/// What an object path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Object {
    Manager,
    /// relive's own object (the control socket's), served here too.
    Relive,
    Unit(String),
    Job(u64),
}

impl Object {
    pub fn parse(path: &str) -> Option<Object> {
        if path == MANAGER {
            return Some(Object::Manager);
        }
        if path == relive_api::names::OBJECT_PATH {
            return Some(Object::Relive);
        }
        if let Some(label) = path.strip_prefix(UNIT_PREFIX) {
            return unescape(label).map(Object::Unit);
        }
        path.strip_prefix(JOB_PREFIX)?.parse().ok().map(Object::Job)
    }
}

pub fn unit_path(name: &str) -> String {
    format!("{UNIT_PREFIX}{}", escape(name))
}

pub fn job_path(id: u64) -> String {
    format!("{JOB_PREFIX}{id}")
}

/// systemd's bus_label_escape(): letters stay, digits stay except first,
/// everything else becomes `_` and two lowercase hex digits; "" is "_".
fn escape(name: &str) -> String {
    if name.is_empty() {
        return "_".into();
    }
    let mut out = String::with_capacity(name.len() * 3);
    for (i, b) in name.bytes().enumerate() {
        if b.is_ascii_alphabetic() || (i > 0 && b.is_ascii_digit()) {
            out.push(b as char);
        } else {
            out.push_str(&format!("_{b:02x}"));
        }
    }
    out
}

/// The reverse; None for a label systemd would not have made.
fn unescape(label: &str) -> Option<String> {
    if label == "_" {
        return Some(String::new());
    }
    let bytes = label.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'_' {
            let hex = label.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else if bytes[i].is_ascii_alphanumeric() {
            out.push(bytes[i]);
            i += 1;
        } else {
            return None;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_systemds() {
        // As `systemctl show -p ... ` and busctl print them under systemd.
        assert_eq!(
            unit_path("ssh.service"),
            "/org/freedesktop/systemd1/unit/ssh_2eservice"
        );
        assert_eq!(
            unit_path("getty@tty1.service"),
            "/org/freedesktop/systemd1/unit/getty_40tty1_2eservice"
        );
        assert_eq!(
            unit_path("-.mount"),
            "/org/freedesktop/systemd1/unit/_2d_2emount"
        );
        assert_eq!(
            unit_path("1a.service"),
            "/org/freedesktop/systemd1/unit/_31a_2eservice"
        );
        assert_eq!(job_path(42), "/org/freedesktop/systemd1/job/42");
    }

    #[test]
    fn paths_parse_back() {
        for name in [
            "ssh.service",
            "-.mount",
            "sys-devices-x\\x2d1.device",
            "a1.b",
        ] {
            assert_eq!(
                Object::parse(&unit_path(name)),
                Some(Object::Unit(name.into()))
            );
        }
        assert_eq!(Object::parse(MANAGER), Some(Object::Manager));
        assert_eq!(Object::parse(&job_path(7)), Some(Object::Job(7)));
        assert_eq!(Object::parse("/org/freedesktop/systemd1/unit/a_zz"), None);
        assert_eq!(Object::parse("/elsewhere"), None);
    }
}
