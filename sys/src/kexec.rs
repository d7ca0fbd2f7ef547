//! Loading and booting the next kernel with kexec_file_load(2).
//!
//! kexec_file_load (unlike kexec_load) lets the kernel itself parse and,
//! where configured, verify the image; and a loaded image can be unloaded
//! again, so a failed preflight changes nothing.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// kexec_file_load flags (include/uapi/linux/kexec.h).
const KEXEC_FILE_UNLOAD: libc::c_ulong = 0x1;
const KEXEC_FILE_NO_INITRAMFS: libc::c_ulong = 0x4;
/// reboot(2) command that jumps into the loaded kernel.
const LINUX_REBOOT_CMD_KEXEC: libc::c_int = 0x4558_4543;

#[derive(Debug, thiserror::Error)]
pub enum KexecError {
    /// The kernel or initrd file cannot be opened.
    #[error("{path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    /// This kernel was built without kexec_file_load.
    #[error("this kernel cannot kexec (kexec_file_load is not available: {0})")]
    Unsupported(io::Error),
    /// The kernel refused the image (not a kernel for this architecture,
    /// corrupt, unsigned under lockdown, ...).
    #[error("the kernel refused {kernel}: {source}")]
    Rejected { kernel: PathBuf, source: io::Error },
    #[error("the kernel command line contains a NUL byte")]
    BadCmdline,
    #[error("cannot unload the kexec image: {0}")]
    Unload(io::Error),
}

/// Loads `kernel` (and `initrd`) to be booted with `cmdline`.
pub fn load(kernel: &Path, initrd: Option<&Path>, cmdline: &str) -> Result<(), KexecError> {
    let open = |path: &Path| {
        File::open(path).map_err(|source| KexecError::Open {
            path: path.to_owned(),
            source,
        })
    };
    let kernel_file = open(kernel)?;
    let initrd_file = initrd.map(open).transpose()?;
    let cmdline = CString::new(cmdline).map_err(|_| KexecError::BadCmdline)?;
    let flags = if initrd_file.is_none() {
        KEXEC_FILE_NO_INITRAMFS
    } else {
        0
    };
    // SAFETY: the descriptors are open for the call; cmdline points to a
    // NUL-terminated string whose length (with the NUL) is passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_kexec_file_load,
            kernel_file.as_raw_fd(),
            initrd_file.as_ref().map_or(-1, |f| f.as_raw_fd()),
            cmdline.as_bytes_with_nul().len() as libc::c_ulong,
            cmdline.as_ptr(),
            flags,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    Err(match err.raw_os_error() {
        Some(libc::ENOSYS) => KexecError::Unsupported(err),
        _ => KexecError::Rejected {
            kernel: kernel.to_owned(),
            source: err,
        },
    })
}

/// Unloads a loaded image (nothing loaded is not an error).
pub fn unload() -> Result<(), KexecError> {
    // SAFETY: with KEXEC_FILE_UNLOAD the other arguments are ignored.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_kexec_file_load,
            -1,
            -1,
            0 as libc::c_ulong,
            std::ptr::null::<libc::c_char>(),
            KEXEC_FILE_UNLOAD,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::ENOSYS) => Ok(()),
        _ => Err(KexecError::Unload(err)),
    }
}

/// Whether an image is loaded (/sys/kernel/kexec_loaded).
pub fn is_loaded() -> bool {
    std::fs::read_to_string("/sys/kernel/kexec_loaded").is_ok_and(|s| s.trim() == "1")
}

/// Boots the loaded kernel. Returns only on failure.
pub fn boot_loaded() -> io::Error {
    // SAFETY: reboot(2) with the kexec command takes no pointers.
    unsafe { libc::reboot(LINUX_REBOOT_CMD_KEXEC) };
    io::Error::last_os_error()
}

/// The command line for the next kernel: this one's (without relive's own
/// handover marker) if `reuse`, plus `append`, plus `marker`.
pub fn next_cmdline(current: &str, reuse: bool, append: &str, marker: &str) -> String {
    let mut words: Vec<&str> = Vec::new();
    if reuse {
        words.extend(
            current
                .split_whitespace()
                .filter(|w| !w.starts_with("relive.handover")),
        );
    }
    words.extend(append.split_whitespace());
    words.push(marker);
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_reuses_and_replaces_the_marker() {
        let cmd = next_cmdline(
            "console=ttyS0 root=/dev/vda relive.handover=/old quiet",
            true,
            "memmap=1G!1G",
            "relive.handover=/var/lib/relive/upgrade",
        );
        assert_eq!(cmd, "console=ttyS0 root=/dev/vda quiet memmap=1G!1G relive.handover=/var/lib/relive/upgrade");
        assert_eq!(next_cmdline("a b", false, "c", "m"), "c m");
    }

    #[test]
    fn missing_kernel_file_is_named() {
        let e = load(Path::new("/nonexistent/vmlinuz"), None, "").unwrap_err();
        assert!(e.to_string().starts_with("/nonexistent/vmlinuz:"), "{e}");
    }
}
