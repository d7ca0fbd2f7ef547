//! A service's own namespaces and the mounts in its mount namespace
//! (ProtectSystem=, PrivateTmp=, PrivateDevices=, ... in systemd.exec(5)).
//!
//! PID 1 decides everything beforehand and hands the child a list of
//! [`MountStep`]s with their paths already as C strings: the child, between
//! clone and exec, may only make system calls (see `spawn`). The child
//! unshares, makes every mount a slave of PID 1's (so that mounts PID 1
//! makes later still reach the service, and none of the service's reach
//! back), then runs the steps in order. Read-only is a per-mount flag set
//! with mount_setattr(2) (Linux 5.12), which reaches a whole subtree at
//! once, as systemd's bind_remount_recursive() does.

use std::ffi::CString;

use crate::spawn::ChildStep;

/// One thing to do in the new mount namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountStep {
    /// Bind `source` onto `target` (recursively or not).
    Bind {
        source: CString,
        target: CString,
        recursive: bool,
        optional: bool,
    },
    /// Set and clear [`MOUNT_ATTR_RDONLY`] and [`MOUNT_ATTR_NOEXEC`] on
    /// the mount at `path`, and every mount below it if `recursive`.
    Attr {
        path: CString,
        set: u64,
        clear: u64,
        recursive: bool,
        optional: bool,
    },
    /// A file system without a device (tmpfs, proc) with these flags and
    /// `data`, the mount(8) options the file system reads.
    Fresh {
        fstype: CString,
        target: CString,
        flags: libc::c_ulong,
        data: CString,
    },
    /// An empty file to bind a device node onto.
    CreateFile {
        path: CString,
    },
    Mkdir {
        path: CString,
        mode: u32,
    },
    Symlink {
        target: CString,
        path: CString,
    },
    /// Move the mount at `from` to `to` (MS_MOVE).
    Move {
        from: CString,
        to: CString,
    },
    /// Detach the mount at `path` from this namespace, if there is one.
    Unmount {
        path: CString,
    },
}

/// The namespaces a service gets and what to do in them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamespacePlan {
    /// CLONE_NEW* flags for unshare(2); 0: none.
    pub unshare: i32,
    pub mounts: Vec<MountStep>,
    /// PrivateNetwork=: bring `lo` up in the new network namespace.
    pub loopback_up: bool,
}

impl std::fmt::Display for MountStep {
    /// Short, for the message of a failed start.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = |c: &CString| c.to_string_lossy().into_owned();
        match self {
            MountStep::Bind { source, target, .. } => {
                write!(f, "bind {} on {}", p(source), p(target))
            }
            MountStep::Attr {
                path, set, clear, ..
            } => write!(f, "set {set:#x}, clear {clear:#x} on {}", p(path)),
            MountStep::Fresh { fstype, target, .. } => {
                write!(f, "mount {} on {}", p(fstype), p(target))
            }
            MountStep::CreateFile { path } => write!(f, "create {}", p(path)),
            MountStep::Mkdir { path, .. } => write!(f, "mkdir {}", p(path)),
            MountStep::Symlink { path, .. } => write!(f, "symlink {}", p(path)),
            MountStep::Move { from, to } => write!(f, "move {} to {}", p(from), p(to)),
            MountStep::Unmount { path } => write!(f, "unmount {}", p(path)),
        }
    }
}

impl NamespacePlan {
    pub fn is_empty(&self) -> bool {
        self.unshare == 0
    }
}

/// struct mount_attr (linux/mount.h).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// mount_setattr(2)'s flags.
pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
const AT_RECURSIVE: libc::c_uint = 0x8000;
const AT_NO_AUTOMOUNT: libc::c_uint = 0x800;

/// Enters the namespaces and makes the mounts.
///
/// # Safety
/// Only in the child between clone and exec: system calls only, on the
/// plan the parent built.
/// On failure: the step, and the index of the mount step (-1: none).
pub(crate) unsafe fn enter(plan: &NamespacePlan) -> Result<(), (ChildStep, i32)> {
    // SAFETY: raw system calls on NUL-terminated strings the parent
    // prepared, and on stack values.
    unsafe {
        if libc::unshare(plan.unshare) < 0 {
            return Err((ChildStep::Namespace, -1));
        }
        if plan.unshare & libc::CLONE_NEWIPC != 0 {
            first_shm_id_out_of_reach();
        }
        if plan.unshare & libc::CLONE_NEWNS != 0
            && libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_SLAVE,
                std::ptr::null(),
            ) < 0
        {
            return Err((ChildStep::Namespace, -1));
        }
        for (i, step) in plan.mounts.iter().enumerate() {
            if !apply(step) {
                return Err((ChildStep::Namespace, i as i32));
            }
        }
        if plan.loopback_up && !loopback_up() {
            return Err((ChildStep::Network, -1));
        }
    }
    Ok(())
}

/// One step; false when it failed (a missing optional path is no failure).
unsafe fn apply(step: &MountStep) -> bool {
    // SAFETY: errno is this thread's.
    let missing = || unsafe { *libc::__errno_location() } == libc::ENOENT;
    // SAFETY: as in `enter`.
    unsafe {
        match step {
            MountStep::Bind {
                source,
                target,
                recursive,
                optional,
            } => {
                let flags = libc::MS_BIND | if *recursive { libc::MS_REC } else { 0 };
                let rc = libc::mount(
                    source.as_ptr(),
                    target.as_ptr(),
                    std::ptr::null(),
                    flags,
                    std::ptr::null(),
                );
                rc == 0 || (*optional && missing())
            }
            MountStep::Attr {
                path,
                set,
                clear,
                recursive,
                optional,
            } => {
                let mut attr = MountAttr {
                    attr_set: *set,
                    attr_clr: *clear,
                    propagation: 0,
                    userns_fd: 0,
                };
                // Never trigger an automount on the way.
                let flags = AT_NO_AUTOMOUNT | if *recursive { AT_RECURSIVE } else { 0 };
                let rc = libc::syscall(
                    libc::SYS_mount_setattr,
                    libc::AT_FDCWD,
                    path.as_ptr(),
                    flags,
                    &mut attr as *mut MountAttr,
                    std::mem::size_of::<MountAttr>(),
                );
                rc == 0 || (*optional && missing())
            }
            MountStep::Fresh {
                fstype,
                target,
                flags,
                data,
            } => {
                libc::mount(
                    fstype.as_ptr(),
                    target.as_ptr(),
                    fstype.as_ptr(),
                    *flags,
                    data.as_ptr().cast(),
                ) == 0
            }
            MountStep::CreateFile { path } => {
                let fd = libc::open(
                    path.as_ptr(),
                    libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                    0o644,
                );
                fd >= 0 && libc::close(fd) == 0
            }
            MountStep::Mkdir { path, mode } => {
                libc::mkdir(path.as_ptr(), *mode) == 0 || *libc::__errno_location() == libc::EEXIST
            }
            MountStep::Symlink { target, path } => {
                libc::symlink(target.as_ptr(), path.as_ptr()) == 0
            }
            MountStep::Unmount { path } => {
                libc::umount2(path.as_ptr(), libc::MNT_DETACH) == 0
                    || matches!(*libc::__errno_location(), libc::EINVAL | libc::ENOENT)
            }
            MountStep::Move { from, to } => {
                libc::mount(
                    from.as_ptr(),
                    to.as_ptr(),
                    std::ptr::null(),
                    libc::MS_MOVE,
                    std::ptr::null(),
                ) == 0
            }
        }
    }
}

/// [`loopback_up`] in this process's network namespace: true if `lo` is
/// up afterwards.
pub fn bring_loopback_up() -> bool {
    // SAFETY: loopback_up makes three system calls on a stack struct; it
    // is only unsafe for its async-signal-safe use in a forked child.
    unsafe { loopback_up() }
}

/// The id the first System V segment of a service's own IPC namespace
/// gets (instead of 0, 1, ...): IPC id = sequence << 15 | index, here
/// sequence 32768, index 0.
pub const FIRST_SHM_ID: i32 = 1 << 30;

/// Gives the first System V segment made in a new IPC namespace the id
/// [`FIRST_SHM_ID`] (kernel.shm_next_id, per namespace). CRIU (up to
/// 4.2) keys a process's shared memory by one number, the id of a System
/// V segment and the inode number of an anonymous shared mapping alike:
/// where they meet, its dump fails ("Can't open 0/map_files/..."), as
/// postgres's did when its segment's small id met its buffers' inode
/// number. Inode numbers of the kernel's shmem mount count up from 1:
/// they do not reach 2^30. Best effort: a kernel without the file
/// (CONFIG_CHECKPOINT_RESTORE off) has no CRIU to feed either.
unsafe fn first_shm_id_out_of_reach() {
    // SAFETY: open/write/close on a static path and a stack buffer.
    unsafe {
        let fd = libc::open(
            c"/proc/sys/kernel/shm_next_id".as_ptr(),
            libc::O_WRONLY | libc::O_CLOEXEC,
        );
        if fd < 0 {
            return;
        }
        let text = b"1073741824";
        const _: () = assert!(FIRST_SHM_ID == 1_073_741_824);
        libc::write(fd, text.as_ptr().cast(), text.len());
        libc::close(fd);
    }
}

/// `ip link set lo up`, with the SIOCSIFFLAGS ioctl.
pub(crate) unsafe fn loopback_up() -> bool {
    // SAFETY: socket/ioctl/close on a stack ifreq.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return false;
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        let ok = libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) == 0 && {
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            libc::ioctl(fd, libc::SIOCSIFFLAGS, &req) == 0
        };
        libc::close(fd);
        ok
    }
}
