//! PrivateUsers=: a user namespace of the service's own, made in the
//! child between fork and exec, after the groups are set and before the
//! capability bounding set is dropped and the user switched (a new user
//! namespace starts with every capability and no secure bits).
//!
//! systemd makes it after the service's other namespaces, which stay
//! owned by the machine's user namespace. CRIU cannot checkpoint that:
//! it requires every namespace of the tree to belong to the tree's user
//! namespace ("One or more namespaces doesn't belong to the target user
//! namespace"). So the namespaces the service has of its own (mount,
//! UTS, IPC, network), set up first as for any service, are unshared
//! again together with the user namespace: copies owned by it, the
//! mounts locked as they were made (the service cannot unmount what
//! hides or protects a path), a fresh IPC namespace, and a network
//! namespace with only `lo` again for PrivateNetwork=.
//!
//! The maps map root and the service's user and group to themselves and
//! nothing else (everything else is "nobody" inside). Writing a map with
//! more than the writer's own ID needs CAP_SETUID in the parent user
//! namespace, which the child no longer has once it unshared: a helper
//! forked before the unshare, still in the machine's user namespace,
//! writes them (and denies setgroups(2) inside, as the groups are set
//! already).

use std::ffi::CString;

/// The ID maps, as /proc/PID/uid_map and gid_map take them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserNsMaps {
    uid_map: CString,
    gid_map: CString,
}

impl UserNsMaps {
    /// Root, and `uid`/`gid` (the service's), each mapped to itself.
    pub fn new(uid: u32, gid: u32) -> UserNsMaps {
        let map = |id: u32| {
            let text = if id == 0 {
                "0 0 1\n".to_owned()
            } else {
                format!("0 0 1\n{id} {id} 1\n")
            };
            CString::new(text).expect("digits and spaces only")
        };
        UserNsMaps {
            uid_map: map(uid),
            gid_map: map(gid),
        }
    }
}

/// The namespaces unshared again with the user namespace, of those a
/// service's `unshare` flags hold.
pub const RENEWED: i32 =
    libc::CLONE_NEWNS | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC | libc::CLONE_NEWNET;

/// Unshares a user namespace, with `renew` (of [`RENEWED`]) owned by it,
/// and has a helper write its maps; true once the maps are in place.
///
/// # Safety
/// Only in the child between fork and exec: system calls only, no
/// allocation.
pub(crate) unsafe fn enter(maps: &UserNsMaps, renew: i32) -> bool {
    let mut pipe = [-1; 2];
    // SAFETY: pipe2 fills the two-element array.
    if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return false;
    }
    // SAFETY: getpid takes nothing.
    let parent = unsafe { libc::getpid() };
    // SAFETY: clone without CLONE_VM and without a stack behaves like
    // fork (the raw call: glibc's fork would run its atfork handlers).
    let helper =
        unsafe { libc::syscall(libc::SYS_clone, libc::SIGCHLD as libc::c_ulong, 0, 0, 0, 0) };
    if helper == 0 {
        // SAFETY: the helper only makes system calls, then _exits.
        unsafe {
            libc::close(pipe[1]);
            let mut byte = 0u8;
            let ready = libc::read(pipe[0], (&mut byte as *mut u8).cast(), 1) == 1;
            let written = ready
                && write_proc(parent, b"setgroups\0", b"deny", true)
                && write_proc(parent, b"gid_map\0", maps.gid_map.as_bytes(), false)
                && write_proc(parent, b"uid_map\0", maps.uid_map.as_bytes(), false);
            libc::_exit(if written { 0 } else { 1 });
        }
    }
    // SAFETY: closing and writing our own descriptors; unshare and
    // waitpid take integers and a status the kernel fills.
    unsafe {
        libc::close(pipe[0]);
        if helper < 0 {
            libc::close(pipe[1]);
            return false;
        }
        let unshared = libc::unshare(libc::CLONE_NEWUSER | (renew & RENEWED)) == 0;
        // On failure the closed pipe tells the helper to give up.
        if unshared {
            libc::write(pipe[1], b"u".as_ptr().cast(), 1);
        }
        libc::close(pipe[1]);
        let mut status = 0;
        while libc::waitpid(helper as libc::pid_t, &mut status, 0) < 0
            && *libc::__errno_location() == libc::EINTR
        {}
        unshared && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
    }
}

/// Writes `text` to /proc/`pid`/`file` (`file` NUL-terminated); a
/// missing file is fine when `optional` (setgroups: kernels before 3.19).
///
/// # Safety
/// System calls only, on a stack buffer.
unsafe fn write_proc(pid: libc::pid_t, file: &[u8], text: &[u8], optional: bool) -> bool {
    let mut path = [0u8; 48];
    let mut len = 0;
    let (number, number_len) = crate::spawn::decimal(pid as u32);
    for part in [&b"/proc/"[..], &number[..number_len], b"/"] {
        path[len..len + part.len()].copy_from_slice(part);
        len += part.len();
    }
    path[len..len + file.len()].copy_from_slice(file);
    // SAFETY: `path` is NUL-terminated (`file` ends with NUL); open,
    // write and close take it and our own buffer.
    unsafe {
        let fd = libc::open(path.as_ptr().cast(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return optional && *libc::__errno_location() == libc::ENOENT;
        }
        let ok = libc::write(fd, text.as_ptr().cast(), text.len()) == text.len() as isize;
        libc::close(fd);
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_hold_root_and_the_service_s_ids() {
        let maps = UserNsMaps::new(105, 110);
        assert_eq!(maps.uid_map.as_bytes(), b"0 0 1\n105 105 1\n");
        assert_eq!(maps.gid_map.as_bytes(), b"0 0 1\n110 110 1\n");
        assert_eq!(UserNsMaps::new(0, 0).uid_map.as_bytes(), b"0 0 1\n");
    }
}
