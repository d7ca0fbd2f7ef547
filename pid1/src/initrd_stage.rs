//! relive as /init of its minimal initrd (`relive_snapshot::initrd`,
//! `relivectl live-upgrade --minimal-initrd`): load the modules the
//! initrd lists, find the root named on the command line (root=/dev/NAME
//! or root=UUID=...), mount it, move /dev, /proc and /sys into it,
//! switch to it and exec the real init with the kernel's arguments. What
//! the distribution's initrd does with udev and scripts in seconds, for
//! the one machine it was built on, in a fraction of one.
//!
//! The root was remounted read-only cleanly at the kexec: no fsck runs
//! here (the rerun systemd-remount-fs and fsck units run as at any boot).

use nix::mount::{mount, MsFlags};
use std::ffi::CString;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where the initrd keeps its instructions (relive_snapshot::initrd::CONF).
const CONF: &str = "/etc/relive-initrd.conf";
/// How long the root's device may take to appear.
const ROOT_WAIT: Duration = Duration::from_secs(60);
/// finit_module(2): the file is compressed, the kernel decompresses it.
const MODULE_INIT_COMPRESSED_FILE: libc::c_uint = 4;
/// statfs(2) types of the initramfs' root.
const RAMFS_MAGIC: i64 = 0x8584_58f6;
const TMPFS_MAGIC: i64 = 0x0102_1994;

/// This process is /init of relive's initrd: PID 1, on the kernel's
/// initramfs, with the initrd's instructions.
pub fn wanted() -> bool {
    let on_initramfs = nix::sys::statfs::statfs("/").is_ok_and(|s| {
        let kind = s.filesystem_type().0;
        kind == RAMFS_MAGIC || kind == TMPFS_MAGIC
    });
    std::process::id() == 1 && on_initramfs && Path::new(CONF).is_file()
}

/// Mounts the root and execs the real init; returns only if that failed
/// (PID 1 then exits: the kernel's panic= setting decides what follows).
pub fn run() -> std::process::ExitCode {
    let started = Instant::now();
    let kmsg = mount_early();
    let say = |text: &str| {
        if let Some(mut kmsg) = kmsg.as_ref() {
            let _ = writeln!(kmsg, "relive-initrd: {text}");
        }
        eprintln!("relive-initrd: {text}");
    };
    match switch_root(&say) {
        Ok(never) => match never {},
        Err(e) => {
            say(&format!(
                "{e} (after {:.1} s): cannot boot the root",
                started.elapsed().as_secs_f64()
            ));
            std::process::ExitCode::FAILURE
        }
    }
}

/// /dev, /proc and /sys of the initramfs; /dev/kmsg for the messages.
fn mount_early() -> Option<std::fs::File> {
    let none: Option<&str> = None;
    for (source, target, kind) in [
        ("devtmpfs", "/dev", "devtmpfs"),
        ("proc", "/proc", "proc"),
        ("sysfs", "/sys", "sysfs"),
    ] {
        let _ = std::fs::create_dir_all(target);
        let _ = mount(Some(source), target, Some(kind), MsFlags::empty(), none);
    }
    std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/kmsg")
        .ok()
}

/// What /proc/cmdline says about the root and the init.
#[derive(Debug, Default, PartialEq)]
struct RootSpec {
    root: String,
    fstype: Option<String>,
    flags: Option<String>,
    read_write: bool,
    init: Option<String>,
}

fn root_spec(cmdline: &str) -> RootSpec {
    let mut spec = RootSpec::default();
    for word in cmdline.split_whitespace() {
        match word.split_once('=') {
            Some(("root", v)) => spec.root = v.to_owned(),
            Some(("rootfstype", v)) => spec.fstype = Some(v.to_owned()),
            Some(("rootflags", v)) => spec.flags = Some(v.to_owned()),
            Some(("init", v)) => spec.init = Some(v.to_owned()),
            None if word == "rw" => spec.read_write = true,
            None if word == "ro" => spec.read_write = false,
            _ => {}
        }
    }
    spec
}

type Never = std::convert::Infallible;

fn switch_root(say: &dyn Fn(&str)) -> Result<Never, String> {
    let conf = std::fs::read_to_string(CONF).map_err(|e| format!("{CONF}: {e}"))?;
    let mut fstype = None;
    for line in conf.lines() {
        if let Some(module) = line.strip_prefix("module ") {
            // One that cannot load (crc32c-intel without SSE 4.2) is
            // told and passed: the mount says if the root needed it.
            if let Err(e) = load_module(Path::new(module)) {
                say(&e);
            }
        } else if let Some(kind) = line.strip_prefix("fstype ") {
            fstype = Some(kind.to_owned());
        }
    }
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let spec = root_spec(&cmdline);
    let device = wait_for_root(&spec.root)?;
    let fstype = spec
        .fstype
        .clone()
        .or(fstype)
        .unwrap_or_else(|| "ext4".into());
    let flags = if spec.read_write {
        MsFlags::empty()
    } else {
        MsFlags::MS_RDONLY
    };
    let _ = std::fs::create_dir_all("/root");
    mount(
        Some(&device),
        "/root",
        Some(fstype.as_str()),
        flags,
        spec.flags.as_deref(),
    )
    .map_err(|e| format!("mounting {} ({fstype}) on /root: {e}", device.display()))?;
    say(&format!("{} mounted", device.display()));
    let none: Option<&str> = None;
    for api in ["/dev", "/proc", "/sys"] {
        let target = Path::new("/root").join(&api[1..]);
        if target.is_dir() {
            mount(Some(api), &target, none, MsFlags::MS_MOVE, none)
                .map_err(|e| format!("moving {api} into the root: {e}"))?;
        }
    }
    // The initramfs' files: freed before the switch, as switch_root does.
    for entry in ["init", "etc", "lib", "lib64", "usr", "dev", "proc", "sys"] {
        let path = Path::new("/").join(entry);
        let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
    }
    std::env::set_current_dir("/root").map_err(|e| format!("chdir /root: {e}"))?;
    mount(Some("."), "/", none, MsFlags::MS_MOVE, none)
        .map_err(|e| format!("moving the root to /: {e}"))?;
    nix::unistd::chroot(".").map_err(|e| format!("chroot: {e}"))?;
    std::env::set_current_dir("/").map_err(|e| format!("chdir /: {e}"))?;
    let init = spec.init.unwrap_or_else(|| "/sbin/init".into());
    let program = CString::new(init.clone()).map_err(|_| format!("init={init:?}"))?;
    let argv: Vec<CString> = std::iter::once(init.clone())
        .chain(std::env::args().skip(1))
        .filter_map(|a| CString::new(a).ok())
        .collect();
    let e = nix::unistd::execv(&program, &argv).unwrap_err();
    Err(format!("exec {init}: {e}"))
}

/// Loads one module file; one already loaded is fine.
fn load_module(path: &Path) -> Result<(), String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let compressed = !path.to_string_lossy().ends_with(".ko");
    let flags = if compressed {
        MODULE_INIT_COMPRESSED_FILE
    } else {
        0
    };
    // SAFETY: finit_module reads the open file and the NUL-terminated
    // (empty) parameter string, both valid for the call's duration.
    let done = unsafe {
        libc::syscall(
            libc::SYS_finit_module,
            file.as_raw_fd(),
            c"".as_ptr(),
            flags,
        )
    };
    let error = std::io::Error::last_os_error();
    if done == 0 || error.raw_os_error() == Some(libc::EEXIST) {
        Ok(())
    } else {
        Err(format!("loading {}: {error}", path.display()))
    }
}

/// The root's device once it exists: /dev/NAME, or the block device
/// whose ext2/3/4 superblock has the UUID.
fn wait_for_root(root: &str) -> Result<PathBuf, String> {
    let deadline = Instant::now() + ROOT_WAIT;
    loop {
        let found = match root.strip_prefix("UUID=") {
            Some(uuid) => by_uuid(uuid),
            None => Some(PathBuf::from(root)).filter(|p| p.exists()),
        };
        if let Some(device) = found {
            return Ok(device);
        }
        if Instant::now() > deadline {
            return Err(format!("root={root} did not appear within {ROOT_WAIT:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn by_uuid(uuid: &str) -> Option<PathBuf> {
    let names = std::fs::read_dir("/sys/class/block").ok()?;
    names.flatten().find_map(|entry| {
        let device = Path::new("/dev").join(entry.file_name());
        let found = ext_uuid(&device)?;
        found.eq_ignore_ascii_case(uuid).then_some(device)
    })
}

/// The UUID of the ext2/3/4 file system on `device`, as blkid writes it.
fn ext_uuid(device: &Path) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(device).ok()?;
    let mut block = [0u8; 0x78];
    file.seek(SeekFrom::Start(1024)).ok()?;
    file.read_exact(&mut block).ok()?;
    superblock_uuid(&block)
}

/// The UUID in an ext superblock (its first 0x78 bytes), if it is one.
fn superblock_uuid(block: &[u8; 0x78]) -> Option<String> {
    if u16::from_le_bytes([block[0x38], block[0x39]]) != 0xEF53 {
        return None;
    }
    let hex: String = block[0x68..0x78]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Some(format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_names_the_root_and_the_init() {
        let spec = root_spec("BOOT_IMAGE=/vmlinuz root=UUID=ab-cd ro rootflags=data=ordered init=/usr/sbin/relive rw quiet");
        assert_eq!(
            spec,
            RootSpec {
                root: "UUID=ab-cd".into(),
                fstype: None,
                flags: Some("data=ordered".into()),
                read_write: true,
                init: Some("/usr/sbin/relive".into()),
            }
        );
    }

    #[test]
    fn an_ext_superblock_s_uuid_is_read_as_blkid_writes_it() {
        let mut block = [0u8; 0x78];
        block[0x38..0x3a].copy_from_slice(&0xEF53u16.to_le_bytes());
        let uuid: Vec<u8> = (0x10..0x20).collect();
        block[0x68..0x78].copy_from_slice(&uuid);
        assert_eq!(
            superblock_uuid(&block).unwrap(),
            "10111213-1415-1617-1819-1a1b1c1d1e1f"
        );
        block[0x38] = 0;
        assert_eq!(superblock_uuid(&block), None);
    }

    #[test]
    fn not_wanted_outside_an_initramfs() {
        assert!(!wanted());
    }
}
