//! A service's terminal (StandardInput=tty, TTYPath=), set up in the
//! child between clone and exec: only system calls on values the parent
//! prepared, no allocation (see `spawn`).

use std::ffi::CString;
use std::os::fd::RawFd;

/// What the parent asks of the child's terminal.
#[derive(Debug, Clone)]
pub struct TtyRequest {
    /// TTYPath=.
    pub path: CString,
    /// Make it the controlling terminal (StandardInput=tty*): `force`
    /// takes it from a session that holds it (tty-force).
    pub controlling: bool,
    pub force: bool,
    /// TTYReset=, TTYVHangup=, TTYVTDisallocate=.
    pub reset: bool,
    pub vhangup: bool,
    pub disallocate: bool,
}

/// Resets, hangs up and clears the terminal as asked, then opens it (as
/// the controlling terminal if asked). Returns the descriptor, or -1 with
/// errno set.
///
/// # Safety
/// Only in the child between clone and exec (it changes the process's
/// session's terminal).
pub unsafe fn open_in_child(t: &TtyRequest) -> RawFd {
    if t.reset || t.vhangup || t.disallocate {
        // SAFETY: open(2) of a NUL-terminated path the parent made.
        let fd = unsafe {
            libc::open(
                t.path.as_ptr(),
                libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC | libc::O_NONBLOCK,
            )
        };
        if fd >= 0 {
            if t.reset {
                reset(fd);
            }
            if t.disallocate {
                // Clear the screen and its scrollback (what systemd falls
                // back to when the console cannot be deallocated).
                let clear = b"\x1b[r\x1b[H\x1b[3J\x1bc";
                // SAFETY: write(2) of a static buffer.
                unsafe { libc::write(fd, clear.as_ptr().cast(), clear.len()) };
            }
            if t.vhangup {
                // SAFETY: an ioctl without an argument on an open tty.
                unsafe { libc::ioctl(fd, libc::TIOCVHANGUP, 0) };
            }
            // SAFETY: fd is ours.
            unsafe { libc::close(fd) };
        }
    }
    // SAFETY: as above.
    let fd = unsafe {
        libc::open(
            t.path.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return -1;
    }
    // SAFETY: TIOCSCTTY takes an int flag; this child leads its own
    // session (setsid ran before).
    if t.controlling && unsafe { libc::ioctl(fd, libc::TIOCSCTTY, t.force as libc::c_int) } < 0 {
        return -1;
    }
    fd
}

/// Sane settings, as systemd's terminal_reset_ioctl() makes them: cooked
/// mode, echo, the usual control characters, 8-bit UTF-8 input.
fn reset(fd: RawFd) {
    // SAFETY: termios is plain data; tcgetattr/tcsetattr/tcflush are
    // ioctls on an open descriptor.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(fd, &mut t) < 0 {
            return;
        }
        t.c_iflag &=
            !(libc::IGNBRK | libc::BRKINT | libc::ISTRIP | libc::INLCR | libc::IGNCR | libc::IUCLC);
        t.c_iflag |= libc::ICRNL | libc::IMAXBEL | libc::IUTF8;
        t.c_oflag |= libc::ONLCR | libc::OPOST;
        t.c_cflag |= libc::CREAD;
        t.c_lflag = libc::ISIG
            | libc::ICANON
            | libc::IEXTEN
            | libc::ECHO
            | libc::ECHOE
            | libc::ECHOK
            | libc::ECHOCTL
            | libc::ECHOKE;
        let cc = [
            (libc::VINTR, 0o003),
            (libc::VQUIT, 0o034),
            (libc::VERASE, 0o177),
            (libc::VKILL, 0o025),
            (libc::VEOF, 0o004),
            (libc::VSTART, 0o021),
            (libc::VSTOP, 0o023),
            (libc::VSUSP, 0o032),
            (libc::VLNEXT, 0o026),
            (libc::VWERASE, 0o027),
            (libc::VREPRINT, 0o022),
            (libc::VEOL, 0),
            (libc::VEOL2, 0),
            (libc::VTIME, 0),
            (libc::VMIN, 1),
        ];
        for (i, v) in cc {
            t.c_cc[i] = v;
        }
        libc::tcsetattr(fd, libc::TCSANOW, &t);
        libc::tcflush(fd, libc::TCIOFLUSH);
    }
}

/// systemd's default $TERM for a terminal: `linux` on a virtual console,
/// `vt220` elsewhere (a serial line); /dev/console is what it points at.
pub fn default_term(path: &std::path::Path) -> &'static str {
    let name = if path == std::path::Path::new("/dev/console") {
        std::fs::read_to_string("/sys/class/tty/console/active")
            .ok()
            .and_then(|a| a.split_ascii_whitespace().last().map(str::to_owned))
            .unwrap_or_default()
    } else {
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let virtual_console = name
        .strip_prefix("tty")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    if virtual_console {
        "linux"
    } else {
        "vt220"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn serial_lines_are_vt220_virtual_consoles_linux() {
        assert_eq!(default_term(Path::new("/dev/ttyS0")), "vt220");
        assert_eq!(default_term(Path::new("/dev/tty1")), "linux");
        assert_eq!(default_term(Path::new("/dev/pts/3")), "vt220");
    }
}
