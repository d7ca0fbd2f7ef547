//! The API filesystems PID 1 mounts at boot where they are not mounted yet.

use std::fs;
use std::io;
use std::path::Path;

use nix::mount::MsFlags;

/// One filesystem PID 1 needs.
#[derive(Debug, Clone, Copy)]
pub struct ApiMount {
    pub target: &'static str,
    pub fstype: &'static str,
    pub flags: MsFlags,
    pub data: &'static str,
}

/// In mount order: each one's mount point lies in an earlier one.
pub const API_MOUNTS: &[ApiMount] = &[
    ApiMount {
        target: "/proc",
        fstype: "proc",
        flags: nosuid_nodev_noexec(),
        data: "",
    },
    ApiMount {
        target: "/sys",
        fstype: "sysfs",
        flags: nosuid_nodev_noexec(),
        data: "",
    },
    ApiMount {
        target: "/dev",
        fstype: "devtmpfs",
        flags: MsFlags::MS_NOSUID,
        data: "mode=0755",
    },
    ApiMount {
        target: "/dev/pts",
        fstype: "devpts",
        flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NOEXEC),
        data: "gid=5,mode=0620,ptmxmode=0666",
    },
    ApiMount {
        target: "/dev/shm",
        fstype: "tmpfs",
        flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV),
        data: "mode=1777",
    },
    ApiMount {
        target: "/run",
        fstype: "tmpfs",
        flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV),
        data: "mode=0755",
    },
    ApiMount {
        target: "/sys/fs/cgroup",
        fstype: "cgroup2",
        flags: nosuid_nodev_noexec(),
        data: "nsdelegate",
    },
];

const fn nosuid_nodev_noexec() -> MsFlags {
    MsFlags::MS_NOSUID
        .union(MsFlags::MS_NODEV)
        .union(MsFlags::MS_NOEXEC)
}

/// What is mounted where, from /proc/self/mountinfo: (mount point, fstype).
pub fn mounted() -> Vec<(String, String)> {
    let Ok(text) = fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    parse_mountinfo(&text)
}

/// Field 5 is the mount point; the fstype follows the " - " separator.
pub fn parse_mountinfo(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let point = left.split(' ').nth(4)?;
            let fstype = right.split(' ').next()?;
            Some((unescape_octal(point), fstype.to_owned()))
        })
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as \ooo.
fn unescape_octal(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let digits = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        if let (b'\\', Some(d)) = (bytes[i], digits) {
            let value = d.iter().fold(0u32, |v, b| v * 8 + u32::from(b - b'0'));
            out.push(value as u8);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `target` already carries a filesystem of `fstype` (the last
/// mount on a point is the visible one).
pub fn is_mounted(table: &[(String, String)], target: &str, fstype: &str) -> bool {
    table
        .iter()
        .rev()
        .find(|(point, _)| point == target)
        .is_some_and(|(_, t)| t == fstype)
}

/// Mounts a fresh tmpfs on /run, over whatever is there: for relive as
/// the init of a mount namespace, whose /run must not be the host's.
/// A failure leaves /run as it is (mount_api_filesystems then mounts a
/// tmpfs if none is there).
pub fn mount_private_run() {
    // A shared root means the host's mount namespace (or one that
    // propagates to it): nothing is mounted there.
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let root_shared = mountinfo.lines().any(|l| {
        let (left, _) = l.split_once(" - ").unwrap_or((l, ""));
        let fields: Vec<&str> = left.split(' ').collect();
        fields.get(4) == Some(&"/") && fields[6..].iter().any(|f| f.starts_with("shared:"))
    });
    if root_shared {
        return;
    }
    let _ = nix::mount::mount(
        Some("tmpfs"),
        "/run",
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0755"),
    );
}

/// Mounts every API filesystem that is missing. Errors are returned per
/// mount, not fatal: PID 1 logs them and goes on.
pub fn mount_api_filesystems() -> Vec<(&'static str, io::Error)> {
    let mut errors = Vec::new();
    for m in API_MOUNTS {
        // /proc must be there before mountinfo can be read.
        let table = mounted();
        if is_mounted(&table, m.target, m.fstype) {
            continue;
        }
        let _ = fs::create_dir_all(m.target);
        let data = (!m.data.is_empty()).then_some(m.data);
        if let Err(e) = nix::mount::mount(
            Some(m.fstype),
            Path::new(m.target),
            Some(m.fstype),
            m.flags,
            data,
        ) {
            errors.push((m.target, io::Error::from(e)));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "22 1 0:21 / /proc rw,nosuid - proc proc rw\n\
        30 22 0:26 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n\
        31 30 0:27 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n\
        40 1 0:30 / /mnt/with\\040space rw - ext4 /dev/vda rw\n";

    #[test]
    fn parses_mount_points_and_types() {
        let t = parse_mountinfo(SAMPLE);
        assert_eq!(t[0], ("/proc".to_owned(), "proc".to_owned()));
        assert_eq!(t[3].0, "/mnt/with space");
    }

    #[test]
    fn the_top_mount_counts() {
        let t = parse_mountinfo(SAMPLE);
        assert!(is_mounted(&t, "/sys/fs/cgroup", "cgroup2"));
        assert!(!is_mounted(&t, "/sys/fs/cgroup", "tmpfs"));
        assert!(!is_mounted(&t, "/run", "tmpfs"));
    }
}
