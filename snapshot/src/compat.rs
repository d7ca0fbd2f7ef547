//! Which CRIU can checkpoint on, and restore on, which kernel.
//!
//! CRIU follows the kernel: a kernel that changes what CRIU must recreate
//! (the vDSO's layout, a new kind of mapping) needs a CRIU that knows it.
//! A restore that would fail on the next kernel must be refused by the
//! preflight, before any service is frozen, naming both versions; the
//! table below holds the pairs known to fail.

use relive_criu::CriuVersion;
use std::io::Read;
use std::path::Path;

/// A kernel's version, from its release string (`uname -r`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct KernelVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl KernelVersion {
    /// "6.19.14+deb13-amd64" -> 6.19.14; "6.1.0-47-amd64" -> 6.1.0. None
    /// when the release does not start with two dotted numbers.
    pub fn parse(release: &str) -> Option<KernelVersion> {
        let mut numbers = release.split('.').map(|part| {
            let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u32>().ok()
        });
        let major = numbers.next()??;
        let minor = numbers.next()??;
        let patch = numbers.next().flatten().unwrap_or(0);
        Some(KernelVersion {
            major,
            minor,
            patch,
        })
    }
}

/// A kernel series from which on CRIU needs at least a given version to
/// checkpoint there, or to restore there (or both).
struct Requirement {
    kernel: (u32, u32),
    criu: (i32, i32),
    checkpoint: bool,
    restore: bool,
    why: &'static str,
}

/// Known to fail, oldest first.
/// - 6.13 split the vDSO's data pages into `[vvar]` and `[vvar_vclock]`;
///   CRIU before 4.1 cannot map them back (CRIU commit 8ee2eba47 "vdso:
///   handle vvar_vclock vma-s"), and Debian 12's 3.17.1 refuses such a
///   kernel outright.
/// - 6.16 answers SO_PASSCRED only for unix and netlink sockets; CRIU
///   before 4.2 asks it of every socket and fails the dump of any
///   service with a TCP socket (commit 4b7398595 "criu/sockets: Restrict
///   SO_PASSCRED and SO_PASSSEC to supported families"). Restoring on
///   6.16 works (seen in the lab: 6.12 -> 6.16 with CRIU 4.1.1).
const REQUIREMENTS: &[Requirement] = &[
    Requirement {
        kernel: (6, 13),
        criu: (4, 1),
        checkpoint: true,
        restore: true,
        why: "kernels from 6.13 on lay out the vDSO's data as [vvar] and [vvar_vclock], which CRIU handles from 4.1",
    },
    Requirement {
        kernel: (6, 16),
        criu: (4, 2),
        checkpoint: true,
        restore: false,
        why: "kernels from 6.16 on refuse SO_PASSCRED on sockets other than unix and netlink ones, which CRIU asks of every socket it dumps until 4.2",
    },
];

/// Why CRIU cannot work on a kernel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("CRIU {criu} cannot {action} on kernel {release}: {why} (install CRIU {needs} or later)")]
pub struct Unsupported {
    pub criu: String,
    pub release: String,
    /// "checkpoint" (the running kernel) or "restore" (the next one).
    pub action: &'static str,
    pub why: &'static str,
    pub needs: String,
}

/// Whether `criu` works on the kernel `release`; `action` names what it
/// would do there. A release that cannot be parsed is not refused: the
/// table only knows version numbers.
pub fn supports(
    criu: &CriuVersion,
    release: &str,
    action: &'static str,
) -> Result<(), Unsupported> {
    let Some(kernel) = KernelVersion::parse(release) else {
        return Ok(());
    };
    let have = (criu.major, criu.minor);
    let failing = REQUIREMENTS.iter().rfind(|r| {
        let applies = match action {
            "checkpoint" => r.checkpoint,
            _ => r.restore,
        };
        applies && (kernel.major, kernel.minor) >= r.kernel && have < r.criu
    });
    match failing {
        None => Ok(()),
        Some(r) => Err(Unsupported {
            criu: format!("{}.{}{}", criu.major, criu.minor, sublevel(criu)),
            release: release.to_owned(),
            action,
            why: r.why,
            needs: format!("{}.{}", r.criu.0, r.criu.1),
        }),
    }
}

fn sublevel(criu: &CriuVersion) -> String {
    criu.sublevel.map(|s| format!(".{s}")).unwrap_or_default()
}

/// The release an x86 kernel image announces: the boot protocol's
/// `kernel_version` field (offset 0x20e) points, 0x200 bytes before, at
/// "6.19.14+deb13-amd64 (debian-kernel@...) #1 SMP ...". None for an
/// image without one (the preflight's image check reports bad images).
pub fn image_release(path: &Path) -> std::io::Result<Option<String>> {
    let mut head = Vec::new();
    // The setup code holds the string: at most 64 sectors of 512 bytes.
    std::fs::File::open(path)?
        .take(65 * 512)
        .read_to_end(&mut head)?;
    let Some(field) = head.get(0x20e..0x210) else {
        return Ok(None);
    };
    let offset = u16::from_le_bytes([field[0], field[1]]);
    if offset == 0 || head.get(0x202..0x206) != Some(b"HdrS".as_slice()) {
        return Ok(None);
    }
    let start = usize::from(offset) + 0x200;
    let Some(text) = head.get(start..) else {
        return Ok(None);
    };
    let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
    let release = String::from_utf8_lossy(&text[..end])
        .split_whitespace()
        .next()
        .map(str::to_owned);
    Ok(release)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn criu(major: i32, minor: i32, sublevel: Option<i32>) -> CriuVersion {
        CriuVersion {
            major,
            minor,
            sublevel,
            extra: None,
            gitid: None,
            name: None,
        }
    }

    #[test]
    fn releases_parse_as_debian_names_them() {
        let v = |m, n, p| KernelVersion {
            major: m,
            minor: n,
            patch: p,
        };
        assert_eq!(KernelVersion::parse("6.1.0-47-amd64"), Some(v(6, 1, 0)));
        assert_eq!(
            KernelVersion::parse("6.12.117+deb12-amd64"),
            Some(v(6, 12, 117))
        );
        assert_eq!(
            KernelVersion::parse("6.19.14+deb13-amd64"),
            Some(v(6, 19, 14))
        );
        assert_eq!(KernelVersion::parse("6.16-rc1"), Some(v(6, 16, 0)));
        assert_eq!(KernelVersion::parse("vmlinuz"), None);
        assert_eq!(KernelVersion::parse("6"), None);
    }

    #[test]
    fn criu_3_17_is_refused_from_6_13_on() {
        let old = criu(3, 17, Some(1));
        assert_eq!(supports(&old, "6.1.0-47-amd64", "restore"), Ok(()));
        assert_eq!(supports(&old, "6.12.117+deb12-amd64", "restore"), Ok(()));
        let err = supports(&old, "6.19.14+deb13-amd64", "restore").unwrap_err();
        assert_eq!(
            err.to_string(),
            "CRIU 3.17.1 cannot restore on kernel 6.19.14+deb13-amd64: kernels from 6.13 on \
             lay out the vDSO's data as [vvar] and [vvar_vclock], which CRIU handles from 4.1 \
             (install CRIU 4.1 or later)"
        );
        assert!(supports(&old, "6.13.0", "checkpoint").is_err());
        assert!(supports(&criu(4, 0, None), "6.16.12+deb13-amd64", "restore").is_err());
    }

    #[test]
    fn criu_4_1_restores_everywhere_but_checkpoints_only_before_6_16() {
        for release in [
            "6.1.0-47-amd64",
            "6.12.117+deb13-amd64",
            "6.19.14+deb13-amd64",
        ] {
            assert_eq!(supports(&criu(4, 1, Some(1)), release, "restore"), Ok(()));
            assert_eq!(supports(&criu(4, 2, None), release, "restore"), Ok(()));
            assert_eq!(supports(&criu(4, 2, None), release, "checkpoint"), Ok(()));
        }
        let on_6_12 = supports(&criu(4, 1, Some(1)), "6.12.117+deb13-amd64", "checkpoint");
        assert_eq!(on_6_12, Ok(()));
        let err = supports(&criu(4, 1, Some(1)), "6.16.12+deb13-amd64", "checkpoint").unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with(
                "CRIU 4.1.1 cannot checkpoint on kernel 6.16.12+deb13-amd64: kernels from 6.16 on refuse SO_PASSCRED"
            ),
            "{text}"
        );
        assert!(text.ends_with("(install CRIU 4.2 or later)"), "{text}");
        // An unknown naming is not refused on a guess.
        assert_eq!(supports(&criu(3, 17, None), "custom", "restore"), Ok(()));
    }

    /// A bzImage header with its version string, as `make bzImage` writes
    /// it (setup sectors, "HdrS", kernel_version pointing 0x200 earlier).
    fn bzimage(release_line: &str) -> Vec<u8> {
        let mut image = vec![0u8; 5 * 512];
        image[0x1f1] = 4;
        image[0x202..0x206].copy_from_slice(b"HdrS");
        let at = 0x400;
        image[0x20e..0x210].copy_from_slice(&((at - 0x200) as u16).to_le_bytes());
        image[at..at + release_line.len()].copy_from_slice(release_line.as_bytes());
        image
    }

    #[test]
    fn the_release_comes_from_the_image_header() {
        let dir = std::env::temp_dir().join(format!("relive-compat-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("vmlinuz");
        std::fs::write(
            &file,
            bzimage("6.19.14+deb13-amd64 (debian-kernel@lists.debian.org) #1 SMP"),
        )
        .unwrap();
        assert_eq!(
            image_release(&file).unwrap().as_deref(),
            Some("6.19.14+deb13-amd64")
        );
        std::fs::write(&file, vec![0u8; 4096]).unwrap();
        assert_eq!(image_release(&file).unwrap(), None);
        std::fs::write(&file, b"short").unwrap();
        assert_eq!(image_release(&file).unwrap(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
