//! Unit names: validity, prefix/instance/type, templates, and systemd's
//! name escaping (`src/basic/unit-name.c`).

/// Unit types systemd knows, by suffix. relive runs services and targets.
pub const UNIT_TYPES: &[&str] = &[
    "service",
    "socket",
    "target",
    "device",
    "mount",
    "automount",
    "swap",
    "timer",
    "path",
    "slice",
    "scope",
];

/// systemd's UNIT_NAME_MAX is 256 including the terminating NUL.
const UNIT_NAME_MAX: usize = 255;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// `foo.service`
    Plain,
    /// `foo@.service`
    Template,
    /// `foo@bar.service`
    Instance,
}

/// A valid unit name taken apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnitName<'a> {
    /// Before the first '@' (or the whole name without suffix).
    pub prefix: &'a str,
    /// After the first '@': `Some("")` for a template, None for a plain name.
    pub instance: Option<&'a str>,
    /// The type, after the last '.'.
    pub suffix: &'a str,
}

impl<'a> UnitName<'a> {
    /// systemd's `unit_name_is_valid()`: `prefix[@instance].type`, prefix
    /// non-empty, only `[A-Za-z0-9:_.\\-]` (and '@' in the instance).
    pub fn parse(name: &'a str) -> Option<UnitName<'a>> {
        if name.is_empty() || name.len() > UNIT_NAME_MAX {
            return None;
        }
        let dot = name.rfind('.')?;
        let (stem, suffix) = (&name[..dot], &name[dot + 1..]);
        if stem.is_empty() || !UNIT_TYPES.contains(&suffix) {
            return None;
        }
        if !stem.bytes().all(|b| valid_char(b) || b == b'@') {
            return None;
        }
        let (prefix, instance) = match stem.split_once('@') {
            Some((p, i)) => (p, Some(i)),
            None => (stem, None),
        };
        if prefix.is_empty() {
            return None;
        }
        Some(UnitName {
            prefix,
            instance,
            suffix,
        })
    }

    pub fn kind(&self) -> NameKind {
        match self.instance {
            None => NameKind::Plain,
            Some("") => NameKind::Template,
            Some(_) => NameKind::Instance,
        }
    }

    /// `foo@.service` for `foo@bar.service` and `foo@.service`.
    pub fn template(&self) -> Option<String> {
        self.instance
            .map(|_| format!("{}@.{}", self.prefix, self.suffix))
    }

    /// The name without its type suffix: `foo@bar` (systemd's `%N`).
    pub fn stem(&self) -> String {
        match self.instance {
            Some(i) => format!("{}@{}", self.prefix, i),
            None => self.prefix.to_string(),
        }
    }
}

fn valid_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b':' | b'-' | b'_' | b'.' | b'\\')
}

pub fn is_valid(name: &str) -> bool {
    UnitName::parse(name).is_some()
}

/// The type suffix of a valid name (`service` for `a.service`).
pub fn suffix(name: &str) -> Option<&str> {
    UnitName::parse(name).map(|n| n.suffix)
}

/// `foo@.service` + `bar` → `foo@bar.service`. None if `template` is not a
/// template name or the result would not be valid.
pub fn with_instance(template: &str, instance: &str) -> Option<String> {
    let n = UnitName::parse(template)?;
    if n.kind() != NameKind::Template {
        return None;
    }
    let name = format!("{}@{}.{}", n.prefix, instance, n.suffix);
    is_valid(&name).then_some(name)
}

/// systemd's `unit_name_unescape()`: `-` → `/`, `\xNN` → that byte; any
/// other backslash sequence is an error. Bytes that are not UTF-8 are
/// replaced (U+FFFD).
pub fn unescape(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'-' => out.push(b'/'),
            b'\\' => {
                let hex = bytes.get(i + 1..i + 4);
                let byte = match hex {
                    Some([b'x', h, l]) => hex_val(*h).zip(hex_val(*l)).map(|(h, l)| h << 4 | l),
                    _ => None,
                };
                let Some(byte) = byte else {
                    return Err(format!("invalid escape sequence in unit name part '{s}'"));
                };
                out.push(byte);
                i += 3;
            }
            _ => out.push(b),
        }
        i += 1;
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// systemd's `unit_name_escape()`: `/` → `-`; `-`, `\`, a leading `.` and
/// every byte outside `[A-Za-z0-9:_.]` → `\xNN`.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, b) in s.bytes().enumerate() {
        if b == b'/' {
            out.push('-');
        } else if (i == 0 && b == b'.') || b == b'-' || b == b'\\' || !valid_char(b) {
            out.push_str(&format!("\\x{b:02x}"));
        } else {
            out.push(char::from(b));
        }
    }
    out
}

/// The service of the same name (`a@b.timer` → `a@b.service`): what a
/// socket, timer or path unit starts by default.
pub fn same_name_service(name: &str) -> Option<String> {
    same_name(name, "service")
}

/// The unit of the same name with another suffix (`a.automount` →
/// `a.mount`).
pub fn same_name(name: &str, suffix: &str) -> Option<String> {
    UnitName::parse(name).map(|n| format!("{}.{suffix}", n.stem()))
}

/// systemd's `unit_name_from_path()`: `/srv/data` → `srv-data.mount`,
/// `/` → `-.mount`, slashes collapsed and trimmed first.
pub fn from_path(path: &str, suffix: &str) -> String {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if parts.is_empty() {
        return format!("-.{suffix}");
    }
    format!("{}.{suffix}", escape(&parts.join("/")))
}

/// The path a mount, swap or device unit's name stands for.
pub fn to_path(name: &str) -> Option<String> {
    let stem = UnitName::parse(name)?.stem();
    if stem == "-" {
        return Some("/".into());
    }
    unescape(&stem).ok().map(|p| format!("/{p}"))
}

pub(crate) fn hex_val(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_their_unit_names() {
        assert_eq!(from_path("/", "mount"), "-.mount");
        assert_eq!(from_path("/srv/my-data/", "mount"), "srv-my\\x2ddata.mount");
        assert_eq!(from_path("//var//log", "mount"), "var-log.mount");
        assert_eq!(
            to_path("srv-my\\x2ddata.mount").as_deref(),
            Some("/srv/my-data")
        );
        assert_eq!(to_path("-.mount").as_deref(), Some("/"));
    }

    #[test]
    fn validity() {
        for ok in [
            "a.service",
            "foo@.service",
            "foo@bar.service",
            "getty@tty1.service",
            "system-systemd\\x2dcryptsetup.slice",
            "a@b@c.target",
            "dev-sda1.device",
        ] {
            assert!(is_valid(ok), "{ok}");
        }
        for bad in [
            "",
            "a",
            ".service",
            "a.bogus",
            "@a.service",
            "a b.service",
            "a/b.service",
            "ä.service",
        ] {
            assert!(!is_valid(bad), "{bad}");
        }
        assert!(!is_valid(&format!("{}.service", "a".repeat(250))));
    }

    #[test]
    fn parts() {
        let n = UnitName::parse("getty@tty1.service").unwrap();
        assert_eq!(
            (n.prefix, n.instance, n.suffix),
            ("getty", Some("tty1"), "service")
        );
        assert_eq!(n.kind(), NameKind::Instance);
        assert_eq!(n.template().as_deref(), Some("getty@.service"));
        assert_eq!(n.stem(), "getty@tty1");
        assert_eq!(
            UnitName::parse("a@.service").unwrap().kind(),
            NameKind::Template
        );
        assert_eq!(UnitName::parse("a.b.target").unwrap().prefix, "a.b");
        assert_eq!(
            with_instance("a@.service", "x").as_deref(),
            Some("a@x.service")
        );
        assert_eq!(with_instance("a.service", "x"), None);
    }

    #[test]
    fn escaping_round_trips() {
        assert_eq!(unescape("dev-sda1").unwrap(), "dev/sda1");
        assert_eq!(unescape("a\\x2db").unwrap(), "a-b");
        assert_eq!(unescape("x\\x20y").unwrap(), "x y");
        assert!(unescape("a\\y").is_err());
        assert!(unescape("a\\x2").is_err());
        assert_eq!(escape("/dev/sda1"), "-dev-sda1");
        assert_eq!(escape("a-b c"), "a\\x2db\\x20c");
        assert_eq!(escape(".hidden"), "\\x2ehidden");
        for s in ["a b", "x-y/z", "ü", "\\"] {
            assert_eq!(unescape(&escape(s)).unwrap(), s);
        }
    }
}
