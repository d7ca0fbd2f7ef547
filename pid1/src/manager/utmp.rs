//! The utmp and wtmp records PID 1 writes for a getty (UtmpIdentifier=):
//! INIT_PROCESS when it starts, DEAD_PROCESS when it ends, as systemd's
//! utmp-wtmp.c does; agetty and login then turn the record into theirs.
//! Only as a machine's PID 1: in a namespace the files are the host's.

use std::ffi::CString;

const WTMP: &str = "/var/log/wtmp";

extern "C" {
    /// glibc's (no binding in the libc crate): appends to a wtmp file.
    fn updwtmpx(file: *const libc::c_char, ut: *const libc::utmpx);
}

/// systemd's sanitize_id(): at most the last four characters.
fn short_id(id: &str) -> &str {
    let start = id.len().saturating_sub(4);
    id.get(start..).unwrap_or(id)
}

fn copy(dst: &mut [libc::c_char], src: &str) {
    for (d, s) in dst.iter_mut().zip(src.bytes()) {
        *d = s as libc::c_char;
    }
}

fn record(kind: libc::c_short, id: &str, pid: i32, line: Option<&str>) -> libc::utmpx {
    // SAFETY: utmpx is plain data, for which all-zero bytes are valid.
    let mut ut: libc::utmpx = unsafe { std::mem::zeroed() };
    ut.ut_type = kind;
    ut.ut_pid = pid;
    copy(&mut ut.ut_id, short_id(id));
    if let Some(line) = line {
        copy(&mut ut.ut_line, line.trim_start_matches("/dev/"));
    }
    let now = relive_sys::wall_usec();
    ut.ut_tv.tv_sec = (now / 1_000_000) as _;
    ut.ut_tv.tv_usec = (now % 1_000_000) as _;
    ut
}

fn write(ut: &libc::utmpx) {
    let wtmp = CString::new(WTMP).expect("no NUL");
    // SAFETY: glibc's utmpx functions on a record that outlives the calls;
    // only the loop's thread calls them.
    unsafe {
        libc::setutxent();
        if libc::pututxline(ut).is_null() {
            tracing::debug!("utmp: {}", std::io::Error::last_os_error());
        }
        libc::endutxent();
        updwtmpx(wtmp.as_ptr(), ut);
    }
}

/// A getty started on `line` (TTYPath=).
pub fn init_process(id: &str, pid: i32, line: &str) {
    write(&record(libc::INIT_PROCESS, id, pid, Some(line)));
}

/// It ended.
pub fn dead_process(id: &str, pid: i32, status: relive_sys::ExitStatus) {
    let mut ut = record(libc::DEAD_PROCESS, id, pid, None);
    match status {
        relive_sys::ExitStatus::Exited(code) => ut.ut_exit.e_exit = code as _,
        relive_sys::ExitStatus::Signaled(sig) => ut.ut_exit.e_termination = sig as _,
    }
    write(&ut);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_keep_their_last_four_characters() {
        assert_eq!(short_id("ttyS0"), "tyS0");
        assert_eq!(short_id("tty1"), "tty1");
        assert_eq!(short_id("1"), "1");
    }
}
