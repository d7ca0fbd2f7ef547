//! autofs, the kernel's half of automount units (linux/auto_fs.h,
//! Documentation/filesystems/autofs.rst): a direct autofs mount on the
//! mount point, whose first access the kernel reports as a packet on a
//! pipe while the accessing process waits; relive mounts the real file
//! system on top and tells the kernel to let it through (or fail it).

use nix::fcntl::OFlag;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::time::Duration;

/// The kernel's ioctl group for autofs.
const AUTOFS_IOCTL: u8 = 0x93;
/// struct autofs_dev_ioctl without its path.
const DEV_IOCTL_HEADER: usize = 24;
/// autofs_ptype_missing_direct: a process touched a direct mount point.
const MISSING_DIRECT: i32 = 5;
/// sizeof(struct autofs_v5_packet) on 64-bit Linux.
const PACKET_SIZE: usize = 304;

/// An autofs mount point relive serves.
#[derive(Debug)]
pub struct Autofs {
    /// The read end of the kernel's request pipe (non-blocking).
    pub requests: File,
    /// An ioctl descriptor for the mount (AUTOFS_DEV_IOCTL_OPENMOUNT).
    ioctl: OwnedFd,
}

impl Autofs {
    /// Mounts a direct autofs on `point` (made with `mode` if missing);
    /// `idle` is the kernel's expiry timeout (zero: never).
    pub fn mount(point: &Path, mode: u32, idle: Duration) -> io::Result<Autofs> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(point)?;
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
        nix::fcntl::fcntl(&read, nix::fcntl::F_SETFL(OFlag::O_NONBLOCK))?;
        // No pgrp=: the kernel takes the caller's process group as the
        // daemon's, whose own accesses never trigger the mount.
        let options = format!("fd={},minproto=5,maxproto=5,direct", write.as_raw_fd());
        nix::mount::mount(
            Some("relive"),
            point,
            Some("autofs"),
            nix::mount::MsFlags::empty(),
            Some(options.as_str()),
        )?;
        // The kernel holds its own reference to the pipe's write end.
        drop(write);
        let ioctl = open_mount(point).inspect_err(|_| {
            let _ = nix::mount::umount2(point, nix::mount::MntFlags::MNT_DETACH);
        })?;
        let autofs = Autofs {
            requests: File::from(read),
            ioctl,
        };
        let mut seconds: libc::c_ulong = idle.as_secs() as libc::c_ulong;
        let request =
            nix::request_code_readwrite!(AUTOFS_IOCTL, 0x64, std::mem::size_of::<libc::c_ulong>());
        // SAFETY: AUTOFS_IOC_SETTIMEOUT reads and writes one unsigned long
        // through the pointer, which lives for the call.
        let set = unsafe { libc::ioctl(autofs.ioctl.as_raw_fd(), request, &mut seconds) };
        if set < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(autofs)
    }

    /// The mount's two descriptors (requests, ioctl), for a re-exec.
    pub fn into_fds(self) -> (OwnedFd, OwnedFd) {
        (OwnedFd::from(self.requests), self.ioctl)
    }

    /// An autofs mount served before a re-exec, from `into_fds`' pair.
    pub fn from_fds(requests: OwnedFd, ioctl: OwnedFd) -> Autofs {
        Autofs {
            requests: File::from(requests),
            ioctl,
        }
    }

    /// The wait tokens of the requests the kernel has queued: each is a
    /// process waiting for the mount.
    pub fn read_requests(&mut self) -> Vec<u32> {
        let mut tokens = Vec::new();
        let mut packet = [0u8; PACKET_SIZE];
        // A packet pipe (O_DIRECT, set by the kernel): one read, one packet.
        while let Ok(n) = self.requests.read(&mut packet) {
            if n < 12 {
                break;
            }
            let kind = i32::from_ne_bytes(packet[4..8].try_into().expect("4 bytes"));
            if kind == MISSING_DIRECT {
                tokens.push(u32::from_ne_bytes(
                    packet[8..12].try_into().expect("4 bytes"),
                ));
            }
        }
        tokens
    }

    /// Lets the processes waiting on `token` through (AUTOFS_IOC_READY).
    pub fn ready(&self, token: u32) -> io::Result<()> {
        self.answer(0x60, token)
    }

    /// Fails their access with ENOENT (AUTOFS_IOC_FAIL).
    pub fn fail(&self, token: u32) -> io::Result<()> {
        self.answer(0x61, token)
    }

    fn answer(&self, nr: u8, token: u32) -> io::Result<()> {
        let request = nix::request_code_none!(AUTOFS_IOCTL, nr);
        // SAFETY: AUTOFS_IOC_READY/FAIL take the token by value.
        let r = unsafe { libc::ioctl(self.ioctl.as_raw_fd(), request, token as libc::c_ulong) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// AUTOFS_DEV_IOCTL_OPENMOUNT through /dev/autofs: a descriptor for the
/// autofs mount on `point` that does not trigger it.
fn open_mount(point: &Path) -> io::Result<OwnedFd> {
    use std::os::unix::fs::MetadataExt;
    let devid = std::fs::metadata(point)?.dev() as u32;
    let path = point.as_os_str().as_encoded_bytes();
    let size = DEV_IOCTL_HEADER + path.len() + 1;
    // u32s keep the struct's alignment.
    let mut buf = vec![0u32; size.div_ceil(4)];
    buf[0] = 1; // AUTOFS_DEV_IOCTL_VERSION_MAJOR
    buf[1] = 0; // the oldest minor: any kernel with this call takes it
    buf[2] = size as u32;
    buf[3] = u32::MAX; // ioctlfd: -1
    buf[4] = devid;
    // SAFETY: the u32 buffer is at least `size` bytes; the path goes right
    // after the 24-byte header, NUL-terminated by the zeroed buffer.
    let bytes =
        unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<u8>(), buf.len() * 4) };
    bytes[DEV_IOCTL_HEADER..DEV_IOCTL_HEADER + path.len()].copy_from_slice(path);
    let control = File::open("/dev/autofs")?;
    let request = nix::request_code_readwrite!(AUTOFS_IOCTL, 0x74, DEV_IOCTL_HEADER);
    // SAFETY: AUTOFS_DEV_IOCTL_OPENMOUNT reads `size` bytes from the
    // buffer and writes the new descriptor into its ioctlfd field.
    let r = unsafe { libc::ioctl(control.as_raw_fd(), request, buf.as_mut_ptr()) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = buf[3] as i32;
    if fd < 0 {
        return Err(io::Error::other(
            "AUTOFS_DEV_IOCTL_OPENMOUNT gave no descriptor",
        ));
    }
    // SAFETY: the kernel just opened this descriptor for us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Detaches the autofs mount on `point` (and whatever is mounted on it).
pub fn unmount(point: &Path) -> io::Result<()> {
    nix::mount::umount2(point, nix::mount::MntFlags::MNT_DETACH).map_err(io::Error::from)
}
