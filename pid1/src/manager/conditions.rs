//! Condition*= and Assert*= as systemd 252 evaluates them
//! (systemd.unit(5); src/shared/condition.c): each kind is a small
//! function of what the kernel and the file system say, and the pure part
//! of each (parsing a comparison, matching a command line) is tested here
//! without a machine.

use relive_units::{Condition, ConditionKind};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// Whether `c` holds (its `!` applied).
pub fn holds(c: &Condition) -> bool {
    evaluate(c.kind, &c.value) != c.negate
}

fn evaluate(kind: ConditionKind, value: &str) -> bool {
    let p = Path::new(value);
    match kind {
        ConditionKind::PathExists => p.exists(),
        ConditionKind::PathIsDirectory => p.is_dir(),
        ConditionKind::PathIsSymbolicLink => p.is_symlink(),
        ConditionKind::PathExistsGlob => glob_exists(value),
        ConditionKind::FileNotEmpty => p.metadata().is_ok_and(|m| m.is_file() && m.len() > 0),
        ConditionKind::DirectoryNotEmpty => directory_not_empty(p),
        ConditionKind::FileIsExecutable => p
            .metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0),
        ConditionKind::PathIsMountPoint => is_mount_point(p),
        ConditionKind::PathIsReadWrite => {
            p.exists()
                && nix::sys::statvfs::statvfs(p)
                    .is_ok_and(|s| !s.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
        }
        ConditionKind::PathIsEncrypted => is_encrypted(p),
        ConditionKind::NeedsUpdate => needs_update(p),
        ConditionKind::Architecture => architecture_matches(value),
        ConditionKind::Firmware => firmware_matches(value),
        ConditionKind::Virtualization => virtualization_matches(&detect_virtualization(), value),
        ConditionKind::Host => host_matches(value),
        ConditionKind::KernelCommandLine => {
            std::fs::read_to_string("/proc/cmdline").is_ok_and(|line| cmdline_matches(&line, value))
        }
        ConditionKind::KernelVersion => nix::sys::utsname::uname()
            .is_ok_and(|u| version_matches(&u.release().to_string_lossy(), value)),
        ConditionKind::Credential => std::env::var_os("CREDENTIALS_DIRECTORY")
            .is_some_and(|dir| !value.contains('/') && Path::new(&dir).join(value).exists()),
        ConditionKind::Environment => environment_matches(std::env::vars(), value),
        ConditionKind::Security => security_enabled(value),
        ConditionKind::Capability => capability_in_bounding_set(value),
        ConditionKind::ACPower => on_ac_power() == parse_bool(value).unwrap_or(true),
        ConditionKind::FirstBoot => first_boot() == parse_bool(value).unwrap_or(true),
        // The service manager's own user and group: root's.
        ConditionKind::User => matches!(value, "root" | "0" | "@system"),
        ConditionKind::Group => matches!(value, "root" | "0"),
        ConditionKind::ControlGroupController => controllers_available(value),
        ConditionKind::Memory => physical_memory().is_some_and(|have| compare_size(have, value)),
        ConditionKind::CPUs => compare_number(cpus_allowed() as u64, value),
        ConditionKind::CPUFeature => cpu_has_feature(value),
        ConditionKind::OSRelease => std::fs::read_to_string("/etc/os-release")
            .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
            .is_ok_and(|text| os_release_matches(&text, value)),
        ConditionKind::MemoryPressure => pressure_below("memory", value),
        ConditionKind::CPUPressure => pressure_below("cpu", value),
        ConditionKind::IOPressure => pressure_below("io", value),
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "yes" | "y" | "true" | "t" | "on" => Some(true),
        "0" | "no" | "n" | "false" | "f" | "off" => Some(false),
        _ => None,
    }
}

pub(super) fn glob_exists(pattern: &str) -> bool {
    let Ok(pattern) = std::ffi::CString::new(pattern) else {
        return false;
    };
    // SAFETY: glob_t is plain data; glob(3) fills it and globfree(3) frees
    // what it allocated; the pattern is a valid C string.
    unsafe {
        let mut g: libc::glob_t = std::mem::zeroed();
        let found =
            libc::glob(pattern.as_ptr(), libc::GLOB_NOSORT, None, &mut g) == 0 && g.gl_pathc > 0;
        libc::globfree(&mut g);
        found
    }
}

fn directory_not_empty(p: &Path) -> bool {
    // Hidden entries do not count (systemd's dir_is_empty()).
    std::fs::read_dir(p).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| !e.file_name().to_string_lossy().starts_with('.'))
    })
}

/// A mount point: on another device than its parent, or the same
/// directory as its parent (/), or listed as one in mountinfo (bind
/// mounts of the same file system).
fn is_mount_point(p: &Path) -> bool {
    let Ok(canonical) = p.canonicalize() else {
        return false;
    };
    let parent = canonical.parent().unwrap_or(Path::new("/"));
    let (Ok(this), Ok(up)) = (canonical.metadata(), parent.metadata()) else {
        return false;
    };
    if this.dev() != up.dev() || (this.ino() == up.ino() && this.dev() == up.dev()) {
        return true;
    }
    super::mounts::mounted(&canonical)
}

/// On a dm-crypt device (systemd's path_is_encrypted()).
fn is_encrypted(p: &Path) -> bool {
    let Ok(meta) = p.metadata() else {
        return false;
    };
    let dev = meta.dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    std::fs::read_to_string(format!("/sys/dev/block/{major}:{minor}/dm/uuid"))
        .is_ok_and(|uuid| uuid.starts_with("CRYPT-"))
}

/// /usr was updated after `dir` was (systemd-update-done's stamp).
fn needs_update(dir: &Path) -> bool {
    let Ok(usr) = Path::new("/usr").metadata().and_then(|m| m.modified()) else {
        return false;
    };
    match dir.join(".updated").metadata().and_then(|m| m.modified()) {
        Ok(stamp) => usr > stamp,
        Err(_) => true,
    }
}

/// systemd's names for this machine's architecture.
fn architecture_matches(value: &str) -> bool {
    let native = match std::env::consts::ARCH {
        "x86_64" => "x86-64",
        "x86" => "x86",
        "aarch64" => "arm64",
        "arm" => "arm",
        "powerpc64" => "ppc64-le",
        "riscv64" => "riscv64",
        "s390x" => "s390x",
        other => other,
    };
    value == native || value == "native"
}

fn firmware_matches(value: &str) -> bool {
    match value {
        "uefi" => Path::new("/sys/firmware/efi").is_dir(),
        "device-tree" => Path::new("/sys/firmware/devicetree").is_dir(),
        _ => {
            if let Some(compat) = value
                .strip_prefix("device-tree-compatible(")
                .and_then(|v| v.strip_suffix(')'))
            {
                return std::fs::read("/proc/device-tree/compatible")
                    .is_ok_and(|raw| raw.split(|b| *b == 0).any(|c| c == compat.as_bytes()));
            }
            false
        }
    }
}

/// What systemd-detect-virt would say, in its words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Virtualization {
    None,
    Vm(String),
    Container(String),
}

fn detect_virtualization() -> Virtualization {
    if let Some(name) = detect_container() {
        return Virtualization::Container(name);
    }
    match detect_vm() {
        Some(name) => Virtualization::Vm(name),
        None => Virtualization::None,
    }
}

fn detect_container() -> Option<String> {
    if let Ok(name) = std::env::var("container") {
        if !name.is_empty() {
            return Some(if name == "oci" { "docker".into() } else { name });
        }
    }
    if let Ok(name) = std::fs::read_to_string("/run/systemd/container") {
        return Some(name.trim().to_owned());
    }
    if Path::new("/proc/vz").exists() && !Path::new("/proc/bc").exists() {
        return Some("openvz".into());
    }
    if Path::new("/.dockerenv").exists() {
        return Some("docker".into());
    }
    if Path::new("/run/.containerenv").exists() {
        return Some("podman".into());
    }
    // PID 1 of a PID namespace: /proc/1/sched names it by its PID in the
    // host's namespace, which is not 1 (systemd's own test).
    let sched = std::fs::read_to_string("/proc/1/sched").unwrap_or_default();
    let host_pid = sched
        .lines()
        .next()
        .and_then(|l| l.rsplit_once('('))
        .and_then(|(_, rest)| rest.split(',').next())
        .and_then(|pid| pid.trim().parse::<u32>().ok());
    if host_pid.is_some_and(|pid| pid != 1) {
        return Some("container-other".into());
    }
    None
}

/// The hypervisor, from CPUID's vendor leaf, else from DMI.
fn detect_vm() -> Option<String> {
    #[cfg(target_arch = "x86_64")]
    {
        // CPUID is always there on x86_64 (a safe intrinsic there).
        let leaf1 = std::arch::x86_64::__cpuid(1);
        if leaf1.ecx & (1 << 31) != 0 {
            // Leaf 0x40000000 is the hypervisor's.
            let hv = std::arch::x86_64::__cpuid(0x4000_0000);
            let mut vendor = Vec::with_capacity(12);
            for reg in [hv.ebx, hv.ecx, hv.edx] {
                vendor.extend_from_slice(&reg.to_le_bytes());
            }
            let name = match &vendor[..] {
                b"KVMKVMKVM\0\0\0" => "kvm",
                b"TCGTCGTCGTCG" => "qemu",
                b"Microsoft Hv" => "microsoft",
                b"VMwareVMware" => "vmware",
                b"XenVMMXenVMM" => "xen",
                b"VBoxVBoxVBox" => "oracle",
                b"bhyve bhyve " => "bhyve",
                b"ACRNACRNACRN" => "acrn",
                _ => "",
            };
            if !name.is_empty() {
                return Some(name.into());
            }
        }
    }
    let dmi =
        |f: &str| std::fs::read_to_string(format!("/sys/class/dmi/id/{f}")).unwrap_or_default();
    let vendor = format!(
        "{} {} {}",
        dmi("sys_vendor"),
        dmi("board_vendor"),
        dmi("product_name")
    );
    for (needle, name) in [
        ("QEMU", "qemu"),
        ("KVM", "kvm"),
        ("VMware", "vmware"),
        ("VirtualBox", "oracle"),
        ("innotek", "oracle"),
        ("Xen", "xen"),
        ("Amazon EC2", "amazon"),
        ("Bochs", "bochs"),
        ("Parallels", "parallels"),
        ("Google Compute Engine", "google"),
    ] {
        if vendor.contains(needle) {
            return Some(name.into());
        }
    }
    None
}

/// `yes`/`no`, `vm`, `container`, or a technology's name.
pub fn virtualization_matches(virt: &Virtualization, value: &str) -> bool {
    if let Some(b) = parse_bool(value) {
        return b == (*virt != Virtualization::None);
    }
    match (virt, value) {
        (Virtualization::Vm(_), "vm") => true,
        (Virtualization::Container(_), "container") => true,
        (Virtualization::Vm(name) | Virtualization::Container(name), v) => name == v,
        (Virtualization::None, _) => false,
    }
}

/// A host name pattern, or the machine ID.
fn host_matches(value: &str) -> bool {
    let machine_id = std::fs::read_to_string("/etc/machine-id").unwrap_or_default();
    if machine_id.trim() == value {
        return true;
    }
    let host = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    fnmatch(value, &host)
}

/// fnmatch(3), case-insensitive as systemd's host match.
pub fn fnmatch(pattern: &str, text: &str) -> bool {
    let (Ok(p), Ok(t)) = (
        std::ffi::CString::new(pattern),
        std::ffi::CString::new(text),
    ) else {
        return false;
    };
    // SAFETY: both are valid C strings for the duration of the call.
    unsafe { libc::fnmatch(p.as_ptr(), t.as_ptr(), libc::FNM_CASEFOLD) == 0 }
}

/// `word` is on the command line, or `key=value` is, or `key` with any
/// value (systemd's `proc_cmdline_get_key` rules).
pub fn cmdline_matches(cmdline: &str, value: &str) -> bool {
    cmdline.split_ascii_whitespace().any(|word| {
        if value.contains('=') {
            word == value
        } else {
            word == value || word.split_once('=').is_some_and(|(k, _)| k == value)
        }
    })
}

/// An operator and the rest (`>=5.10`); none means `=` (or a glob).
fn split_operator(expr: &str) -> (&str, &str) {
    for op in ["<=", ">=", "!=", "==", "<", ">", "="] {
        if let Some(rest) = expr.strip_prefix(op) {
            return (op, rest.trim_start());
        }
    }
    ("", expr)
}

fn ordered(op: &str, ord: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering::*;
    match op {
        "<" => ord == Less,
        "<=" => ord != Greater,
        ">" => ord == Greater,
        ">=" => ord != Less,
        "!=" => ord != Equal,
        _ => ord == Equal,
    }
}

/// `>=5.10 <6.0` (each word must hold), or a glob without an operator.
pub fn version_matches(release: &str, expr: &str) -> bool {
    expr.split_ascii_whitespace()
        .all(|word| match split_operator(word) {
            ("", pattern) => fnmatch(pattern, release),
            (op, version) => ordered(op, version_compare(release, version)),
        })
}

/// Version order as strverscmp(3)/systemd's strverscmp_improved: numbers
/// compare as numbers, the rest as text.
pub fn version_compare(a: &str, b: &str) -> std::cmp::Ordering {
    let parts = |s: &str| -> Vec<(bool, String)> {
        let mut out: Vec<(bool, String)> = Vec::new();
        for c in s.chars() {
            let digit = c.is_ascii_digit();
            match out.last_mut() {
                Some((d, part)) if *d == digit && c.is_ascii_alphanumeric() => part.push(c),
                _ if c.is_ascii_alphanumeric() => out.push((digit, c.to_string())),
                _ => out.push((false, String::new())),
            }
        }
        out.retain(|(_, p)| !p.is_empty());
        out
    };
    let (pa, pb) = (parts(a), parts(b));
    for (x, y) in pa.iter().zip(&pb) {
        let ord = match (x.0, y.0) {
            (true, true) => {
                let (nx, ny) = (x.1.trim_start_matches('0'), y.1.trim_start_matches('0'));
                nx.len().cmp(&ny.len()).then_with(|| nx.cmp(ny))
            }
            (true, false) => std::cmp::Ordering::Greater,
            (false, true) => std::cmp::Ordering::Less,
            (false, false) => x.1.cmp(&y.1),
        };
        if ord != std::cmp::Ordering::Equal {
            return ord;
        }
    }
    pa.len().cmp(&pb.len())
}

/// `VAR` set, or `VAR=value` exactly.
pub fn environment_matches(env: impl Iterator<Item = (String, String)>, value: &str) -> bool {
    let mut env = env;
    match value.split_once('=') {
        Some((k, v)) => env.any(|(ek, ev)| ek == k && ev == v),
        None => env.any(|(ek, _)| ek == value),
    }
}

fn security_enabled(value: &str) -> bool {
    let exists = |p: &str| Path::new(p).exists();
    match value {
        "selinux" => exists("/sys/fs/selinux/enforce"),
        "apparmor" => std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
            .is_ok_and(|v| v.trim() == "Y"),
        "tomoyo" => exists("/sys/kernel/security/tomoyo/version"),
        "ima" => exists("/sys/kernel/security/ima/"),
        "smack" => exists("/sys/fs/smackfs/"),
        "audit" => audit_available(),
        "uefi-secureboot" => secure_boot(),
        "tpm2" => std::fs::read_dir("/sys/class/tpmrm").is_ok_and(|mut d| d.next().is_some()),
        _ => false,
    }
}

/// The kernel has audit and lets PID 1 talk to it (systemd's use_audit()).
fn audit_available() -> bool {
    // SAFETY: socket(2) with constant arguments; the descriptor is closed below.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_AUDIT,
        )
    };
    if fd < 0 {
        let e = std::io::Error::last_os_error().raw_os_error();
        // Only "the kernel has no audit" means no; a refusal still does.
        return !matches!(
            e,
            Some(libc::EAFNOSUPPORT) | Some(libc::EPROTONOSUPPORT) | Some(libc::EPERM)
        );
    }
    // SAFETY: fd was just opened by socket(2).
    unsafe { libc::close(fd) };
    true
}

fn secure_boot() -> bool {
    std::fs::read_dir("/sys/firmware/efi/efivars").is_ok_and(|entries| {
        entries.flatten().any(|e| {
            e.file_name().to_string_lossy().starts_with("SecureBoot-")
                && std::fs::read(e.path()).is_ok_and(|v| v.last() == Some(&1))
        })
    })
}

fn capability_in_bounding_set(name: &str) -> bool {
    let Ok(cap) = name.parse::<caps::Capability>() else {
        return false;
    };
    caps::has_cap(None, caps::CapSet::Bounding, cap).unwrap_or(false)
}

/// On mains power, or with no battery at all (systemd's on_ac_power()).
fn on_ac_power() -> bool {
    let Ok(supplies) = std::fs::read_dir("/sys/class/power_supply") else {
        return true;
    };
    let mut found_mains = false;
    for s in supplies.flatten() {
        let read = |f: &str| std::fs::read_to_string(s.path().join(f)).unwrap_or_default();
        if read("type").trim() == "Mains" {
            found_mains = true;
            if read("online").trim() == "1" {
                return true;
            }
        }
    }
    !found_mains
}

/// The first boot of the image: decided when PID 1 started (before it
/// wrote the machine ID), as systemd does; SYSTEMD_FIRST_BOOT overrides.
fn first_boot() -> bool {
    if let Some(b) = std::env::var("SYSTEMD_FIRST_BOOT")
        .ok()
        .and_then(|v| parse_bool(&v))
    {
        return b;
    }
    Path::new(super::FIRST_BOOT_FLAG).exists()
}

/// `v2`/`v1`, or controllers (all of them must be there).
fn controllers_available(value: &str) -> bool {
    let available = std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers").ok();
    value.split_ascii_whitespace().all(|want| match want {
        "v2" => available.is_some(),
        "v1" => available.is_none(),
        c => available
            .as_deref()
            .is_some_and(|a| a.split_ascii_whitespace().any(|x| x == c)),
    })
}

pub(crate) fn physical_memory() -> Option<u64> {
    use procfs::Current;
    procfs::Meminfo::current().ok().map(|m| m.mem_total)
}

/// `>=4G`, `<512M`: a size with an optional operator (default `>=`).
pub fn compare_size(have: u64, expr: &str) -> bool {
    let (op, size) = split_operator(expr.trim());
    let Some(want) = parse_size(size) else {
        return false;
    };
    ordered(if op.is_empty() { ">=" } else { op }, have.cmp(&want))
}

fn compare_number(have: u64, expr: &str) -> bool {
    let (op, n) = split_operator(expr.trim());
    let Ok(want) = n.trim().parse::<u64>() else {
        return false;
    };
    ordered(if op.is_empty() { ">=" } else { op }, have.cmp(&want))
}

fn parse_size(v: &str) -> Option<u64> {
    let v = v.trim();
    let (digits, factor) = match v.chars().last()? {
        'K' => (&v[..v.len() - 1], 1u64 << 10),
        'M' => (&v[..v.len() - 1], 1 << 20),
        'G' => (&v[..v.len() - 1], 1 << 30),
        'T' => (&v[..v.len() - 1], 1 << 40),
        _ => (v, 1),
    };
    digits.trim().parse::<u64>().ok()?.checked_mul(factor)
}

fn cpus_allowed() -> usize {
    nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0))
        .map(|set| {
            (0..nix::sched::CpuSet::count())
                .filter(|i| set.is_set(*i).unwrap_or(false))
                .count()
        })
        .unwrap_or(1)
}

fn cpu_has_feature(feature: &str) -> bool {
    std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|info| {
        info.lines()
            .filter(|l| l.starts_with("flags") || l.starts_with("Features"))
            .any(|l| {
                l.split_ascii_whitespace()
                    .any(|f| f.eq_ignore_ascii_case(feature))
            })
    })
}

/// `ID=debian`, `VERSION_ID>=12`, each word must hold.
pub fn os_release_matches(text: &str, expr: &str) -> bool {
    let fields: Vec<(&str, String)> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            (
                k.trim(),
                v.trim().trim_matches('"').trim_matches('\'').to_owned(),
            )
        })
        .collect();
    expr.split_ascii_whitespace().all(|word| {
        let Some(at) = word.find(['<', '>', '=', '!']) else {
            return false;
        };
        let (key, rest) = word.split_at(at);
        let (op, want) = split_operator(rest);
        let have = fields
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        match op {
            "=" | "==" => have == want,
            "!=" => have != want,
            op => ordered(op, version_compare(have, want)),
        }
    })
}

/// `20%` (the 5-minute average of "some" stays below it).
fn pressure_below(resource: &str, value: &str) -> bool {
    let Some(limit) = value
        .trim()
        .strip_suffix('%')
        .and_then(|v| v.parse::<f64>().ok())
    else {
        return false;
    };
    let Ok(text) = std::fs::read_to_string(format!("/proc/pressure/{resource}")) else {
        // No PSI in this kernel: systemd counts the condition as met.
        return true;
    };
    text.lines()
        .find(|l| l.starts_with("some"))
        .and_then(|l| {
            l.split_ascii_whitespace()
                .find_map(|f| f.strip_prefix("avg300="))
        })
        .and_then(|v| v.parse::<f64>().ok())
        .is_none_or(|avg| avg < limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_in_any_component() {
        let dir = std::env::temp_dir().join(format!("relive-glob-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub.d")).unwrap();
        std::fs::write(dir.join("sub.d/a.conf"), "").unwrap();
        let d = dir.display();
        assert!(glob_exists(&format!("{d}/*.d/*.conf")));
        assert!(glob_exists(&format!("{d}/sub.d/?.conf")));
        assert!(!glob_exists(&format!("{d}/*.d/*.list")));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn kernel_command_line_words_and_keys() {
        let line = "BOOT_IMAGE=/vmlinuz root=/dev/vda ro quiet relive.handover=/x\n";
        assert!(cmdline_matches(line, "quiet"));
        assert!(cmdline_matches(line, "root"));
        assert!(cmdline_matches(line, "root=/dev/vda"));
        assert!(!cmdline_matches(line, "root=/dev/vdb"));
        assert!(!cmdline_matches(line, "splash"));
    }

    #[test]
    fn versions_compare_by_number() {
        assert!(version_matches("6.1.0-47-amd64", ">=5.10"));
        assert!(version_matches("6.1.0-47-amd64", "<6.12"));
        assert!(!version_matches("6.12.117+deb12-amd64", "<6.2"));
        assert!(version_matches("6.12.117+deb12-amd64", ">=6.1 <6.13"));
        assert!(version_matches("6.1.0-47-amd64", "6.1.*"));
        assert_eq!(version_compare("12", "9"), std::cmp::Ordering::Greater);
    }

    #[test]
    fn os_release_fields() {
        let text = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n";
        assert!(os_release_matches(text, "ID=debian"));
        assert!(os_release_matches(text, "VERSION_ID>=11"));
        assert!(!os_release_matches(text, "ID=fedora"));
        assert!(os_release_matches(text, "ID!=fedora VERSION_ID<13"));
    }

    #[test]
    fn sizes_and_environment() {
        assert!(compare_size(8 << 30, ">=4G"));
        assert!(compare_size(8 << 30, "4G"));
        assert!(!compare_size(1 << 30, ">2G"));
        let env = || vec![("LANG".to_owned(), "C.UTF-8".to_owned())].into_iter();
        assert!(environment_matches(env(), "LANG"));
        assert!(environment_matches(env(), "LANG=C.UTF-8"));
        assert!(!environment_matches(env(), "LANG=C"));
    }

    #[test]
    fn virtualization_values() {
        let qemu = Virtualization::Vm("qemu".into());
        let nspawn = Virtualization::Container("systemd-nspawn".into());
        assert!(virtualization_matches(&qemu, "vm"));
        assert!(virtualization_matches(&qemu, "yes"));
        assert!(virtualization_matches(&qemu, "qemu"));
        assert!(!virtualization_matches(&qemu, "container"));
        assert!(virtualization_matches(&nspawn, "container"));
        assert!(!virtualization_matches(&Virtualization::None, "yes"));
        assert!(virtualization_matches(&Virtualization::None, "no"));
    }
}
