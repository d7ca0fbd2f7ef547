//! Unit specifiers: `%n`, `%i`, `%I`, `%%` ... as the system manager
//! resolves them (systemd.unit(5), "Specifiers"; `src/core/unit-printf.c`).
//!
//! An unknown specifier is an error (systemd ≥ 249 does the same); a `%` at
//! the very end of a value is kept literally, as systemd does. Host facts
//! (%H, %m, %b, ...) come from a [`SpecifierContext`] so tests do not depend
//! on the machine they run on.

use crate::unit_name::{self, UnitName};
use std::path::{Path, PathBuf};

/// Facts about the host that some specifiers expand to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecifierContext {
    /// `%H` (and `%l`, up to the first dot).
    pub hostname: String,
    /// `%m`, from /etc/machine-id; may be empty.
    pub machine_id: String,
    /// `%b`
    pub boot_id: String,
    /// `%v`
    pub kernel_release: String,
    /// `%a`, systemd's architecture name (x86-64, arm64, ...).
    pub architecture: String,
    /// `%o %w %B %W %M %A`: ID, VERSION_ID, BUILD_ID, VARIANT_ID, IMAGE_ID,
    /// IMAGE_VERSION from os-release.
    pub os_release: Vec<(String, String)>,
}

impl Default for SpecifierContext {
    fn default() -> Self {
        SpecifierContext {
            hostname: "localhost".into(),
            machine_id: String::new(),
            boot_id: String::new(),
            kernel_release: String::new(),
            architecture: architecture().into(),
            os_release: Vec::new(),
        }
    }
}

impl SpecifierContext {
    /// Reads the host's facts; anything unreadable is left empty (a fresh
    /// image has no machine id yet, for example).
    pub fn from_host() -> Self {
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        let mut hostname = read("/proc/sys/kernel/hostname");
        if hostname.is_empty() {
            hostname = read("/etc/hostname");
        }
        if hostname.is_empty() {
            hostname = "localhost".into();
        }
        let os_release = std::fs::read_to_string("/etc/os-release")
            .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
            .map(|s| crate::exec::parse_environment_file(&s))
            .unwrap_or_default();
        SpecifierContext {
            hostname,
            machine_id: read("/etc/machine-id"),
            boot_id: read("/proc/sys/kernel/random/boot_id").replace('-', ""),
            kernel_release: read("/proc/sys/kernel/osrelease"),
            architecture: architecture().into(),
            os_release,
        }
    }

    fn os(&self, key: &str) -> String {
        self.os_release
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }
}

/// systemd's names for the architectures Rust calls otherwise.
fn architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "x86-64",
        "x86" => "x86",
        "aarch64" => "arm64",
        "arm" => "arm",
        "riscv64" => "riscv64",
        "powerpc64" => "ppc64",
        "s390x" => "s390x",
        other => other,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecifierError {
    /// `%x` with an x systemd does not define.
    #[error("unknown specifier %{0}")]
    Unknown(char),
    /// `%I`, `%f`, `%J` or `%P` on a name part that does not unescape.
    #[error("%{specifier}: {message}")]
    Unescape { specifier: char, message: String },
}

/// Resolves specifiers for one unit.
#[derive(Debug, Clone)]
pub struct Specifiers<'a> {
    ctx: &'a SpecifierContext,
    /// Canonical full name, e.g. `getty@tty1.service`.
    name: String,
    prefix: String,
    /// None for plain names; `Some("")` for a template loaded on its own.
    instance: Option<String>,
    fragment: Option<PathBuf>,
}

impl<'a> Specifiers<'a> {
    /// `name` must be a valid unit name; if it is not, the name parts are
    /// simply empty (this never panics).
    pub fn new(name: &str, fragment: Option<&Path>, ctx: &'a SpecifierContext) -> Self {
        let parsed = UnitName::parse(name);
        Specifiers {
            ctx,
            name: name.to_string(),
            prefix: parsed.map(|n| n.prefix.to_string()).unwrap_or_default(),
            instance: parsed.and_then(|n| n.instance.map(str::to_string)),
            fragment: fragment.map(Path::to_path_buf),
        }
    }

    pub fn resolve(&self, text: &str) -> Result<String, SpecifierError> {
        if !text.contains('%') {
            return Ok(text.to_string());
        }
        let mut out = String::with_capacity(text.len() + 16);
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            match chars.next() {
                // A trailing '%' stays, as in systemd's specifier_printf().
                None => out.push('%'),
                Some(s) => out.push_str(&self.expand(s)?),
            }
        }
        Ok(out)
    }

    fn expand(&self, s: char) -> Result<String, SpecifierError> {
        let unescape = |text: &str| {
            unit_name::unescape(text).map_err(|message| SpecifierError::Unescape {
                specifier: s,
                message,
            })
        };
        let ctx = self.ctx;
        Ok(match s {
            '%' => "%".into(),
            'n' => self.name.clone(),
            'N' => match self.name.rfind('.') {
                Some(dot) => self.name[..dot].to_string(),
                None => self.name.clone(),
            },
            'p' => self.prefix.clone(),
            'P' => unescape(&self.prefix)?,
            'i' => self.instance.clone().unwrap_or_default(),
            'I' => unescape(self.instance.as_deref().unwrap_or(""))?,
            'f' => {
                let part = self.instance.as_deref().unwrap_or(&self.prefix);
                path_unescape(part).map_err(|message| SpecifierError::Unescape {
                    specifier: s,
                    message,
                })?
            }
            'j' => self.last_component().to_string(),
            'J' => unescape(self.last_component())?,
            't' => "/run".into(),
            'S' => "/var/lib".into(),
            'C' => "/var/cache".into(),
            'L' => "/var/log".into(),
            'E' => "/etc".into(),
            'T' => "/tmp".into(),
            'V' => "/var/tmp".into(),
            'd' => format!("/run/credentials/{}", self.name),
            // The user running the manager, not User= (systemd.unit(5)
            // says so of systemd 252): for PID 1, root.
            'h' => "/root".into(),
            's' => "/bin/sh".into(),
            'u' | 'g' => "root".into(),
            'U' | 'G' => "0".into(),
            'H' => ctx.hostname.clone(),
            'l' => ctx.hostname.split('.').next().unwrap_or("").to_string(),
            'm' => ctx.machine_id.clone(),
            'b' => ctx.boot_id.clone(),
            'v' => ctx.kernel_release.clone(),
            'a' => ctx.architecture.clone(),
            'o' => ctx.os("ID"),
            'w' => ctx.os("VERSION_ID"),
            'B' => ctx.os("BUILD_ID"),
            'W' => ctx.os("VARIANT_ID"),
            'M' => ctx.os("IMAGE_ID"),
            'A' => ctx.os("IMAGE_VERSION"),
            'y' => self.fragment_str(false),
            'Y' => self.fragment_str(true),
            other => return Err(SpecifierError::Unknown(other)),
        })
    }

    /// `%j`: the prefix after its last dash (the whole prefix if none).
    fn last_component(&self) -> &str {
        self.prefix.rsplit('-').next().unwrap_or(&self.prefix)
    }

    fn fragment_str(&self, dir: bool) -> String {
        let Some(path) = &self.fragment else {
            return String::new();
        };
        let path = if dir {
            path.parent().unwrap_or(path)
        } else {
            path
        };
        path.to_string_lossy().into_owned()
    }
}

/// systemd's `unit_name_path_unescape()`: `-` is `/`; otherwise unescape
/// and put a `/` in front. An empty part (a template loaded on its own, for
/// verification) gives `/` rather than systemd's error.
fn path_unescape(part: &str) -> Result<String, String> {
    if part.is_empty() || part == "-" {
        return Ok("/".into());
    }
    let w = unit_name::unescape(part)?;
    if w.starts_with('/') || w.ends_with('/') {
        return Err(format!("'{part}' does not unescape to a normalized path"));
    }
    Ok(format!("/{w}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> SpecifierContext {
        SpecifierContext {
            hostname: "box.example.org".into(),
            machine_id: "0123abcd".into(),
            ..SpecifierContext::default()
        }
    }

    fn r(name: &str, text: &str) -> Result<String, SpecifierError> {
        let c = ctx();
        Specifiers::new(name, Some(Path::new("/lib/systemd/system/x@.service")), &c).resolve(text)
    }

    #[test]
    fn names() {
        let n = "postgresql@15-main.service";
        assert_eq!(
            r(n, "%n|%N|%p|%i|%I").unwrap(),
            "postgresql@15-main.service|postgresql@15-main|postgresql|15-main|15/main"
        );
        assert_eq!(
            r("foo-bar-baz.service", "%p %N %i|%j").unwrap(),
            "foo-bar-baz foo-bar-baz |baz"
        );
        assert_eq!(
            r("simple.service", "%j %J %f").unwrap(),
            "simple simple /simple"
        );
    }

    #[test]
    fn escaped_instance() {
        let n = "systemd-fsck@dev-disk-by\\x2duuid-1234.service";
        assert_eq!(r(n, "%i").unwrap(), "dev-disk-by\\x2duuid-1234");
        assert_eq!(r(n, "%I").unwrap(), "dev/disk/by-uuid/1234");
        assert_eq!(r(n, "%f").unwrap(), "/dev/disk/by-uuid/1234");
        assert_eq!(r("getty@tty1.service", "%f").unwrap(), "/tty1");
        assert_eq!(r("a@x\\x20y.service", "'%I'").unwrap(), "'x y'");
        assert!(matches!(
            r("a@x\\q.service", "%I"),
            Err(SpecifierError::Unescape { specifier: 'I', .. })
        ));
    }

    #[test]
    fn directories_and_host() {
        assert_eq!(
            r("a.service", "%t %S %C %L %E %T %V %h %u %U").unwrap(),
            "/run /var/lib /var/cache /var/log /etc /tmp /var/tmp /root root 0"
        );
        assert_eq!(
            r("a.service", "%H %l %m").unwrap(),
            "box.example.org box 0123abcd"
        );
        assert_eq!(
            r("a.service", "%y %Y").unwrap(),
            "/lib/systemd/system/x@.service /lib/systemd/system"
        );
    }

    #[test]
    fn percent_and_unknown() {
        assert_eq!(r("a.service", "100%% sure").unwrap(), "100% sure");
        assert_eq!(r("a.service", "trailing %").unwrap(), "trailing %");
        assert_eq!(r("a.service", "no specifiers").unwrap(), "no specifiers");
        assert_eq!(r("a.service", "%z"), Err(SpecifierError::Unknown('z')));
        assert_eq!(
            r("a.service", "50% off").unwrap_err().to_string(),
            "unknown specifier % "
        );
    }

    #[test]
    fn template_alone_has_empty_instance() {
        assert_eq!(r("getty@.service", "[%i] [%I] %f").unwrap(), "[] [] /");
    }
}
