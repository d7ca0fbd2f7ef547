//! Scheduling and I/O priority: background priority for the upgrade's
//! helper processes, and the I/O priorities a restore sets again.

use std::io;

/// `ioprio_set(2)`: IOPRIO_WHO_PROCESS, and the idle class in the top
/// three bits of the 16-bit priority (include/uapi/linux/ioprio.h).
const IOPRIO_WHO_PROCESS: libc::c_int = 1;
const IOPRIO_CLASS_IDLE: libc::c_int = 3;
const IOPRIO_CLASS_SHIFT: libc::c_int = 13;

/// Puts `pid` at SCHED_IDLE and in the idle I/O class: it gets the CPU and
/// the disk only when nothing else wants them. Threads and children it
/// creates afterwards inherit both.
pub fn make_idle(pid: i32) -> io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid sched_param for the duration of the call;
    // the kernel only reads it.
    if unsafe { libc::sched_setscheduler(pid, libc::SCHED_IDLE, &param) } != 0 {
        return Err(io::Error::last_os_error());
    }
    ioprio_set(pid, IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT)
}

/// Puts `pid` in the idle I/O class only: it gets the disk when nothing
/// else wants it, and the CPU as its cgroup's weight says.
pub fn make_io_idle(pid: i32) -> io::Result<()> {
    ioprio_set(pid, IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT)
}

/// Sets the calling thread's nice value. Linux keeps it per thread, and
/// what the thread creates from now on (threads, processes) starts with
/// it.
pub fn set_thread_nice(nice: i32) -> io::Result<()> {
    // SAFETY: plain syscalls with integer arguments; no memory is passed.
    let tid = unsafe { libc::gettid() };
    // SAFETY: as above; `tid` is the caller's own thread.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The calling thread's nice value.
pub fn thread_nice() -> io::Result<i32> {
    // SAFETY: plain syscalls with integer arguments; no memory is passed.
    let tid = unsafe { libc::gettid() };
    // getpriority returns -1 both for nice -1 and for an error: errno
    // tells them apart.
    nix::errno::Errno::clear();
    // SAFETY: as above; `tid` is the caller's own thread.
    let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t) };
    match nix::errno::Errno::last_raw() {
        0 => Ok(nice),
        code => Err(io::Error::from_raw_os_error(code)),
    }
}

/// ioprio_set(2) on one thread (0: the caller). Async-signal-safe: a
/// spawned child calls it between fork and exec.
pub(crate) fn ioprio_set(tid: i32, ioprio: i32) -> io::Result<()> {
    // SAFETY: a plain syscall with integer arguments; no memory is passed.
    if unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, tid, ioprio) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A process's I/O priority (ioprio_get(2)): class << 13 | level; 0 is
/// "none", the kernel's default.
pub fn ioprio_of(pid: i32) -> io::Result<i32> {
    // SAFETY: a plain syscall with integer arguments; no memory is passed.
    let value = unsafe { libc::syscall(libc::SYS_ioprio_get, IOPRIO_WHO_PROCESS, pid) };
    if value < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(value as i32)
}

/// Sets the I/O priority of every thread of `pid` (ioprio_set(2) acts on
/// one thread).
pub fn set_ioprio_of_all_threads(pid: i32, ioprio: i32) -> io::Result<()> {
    for entry in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let Some(tid) = entry?
            .file_name()
            .to_str()
            .and_then(|t| t.parse::<i32>().ok())
        else {
            continue;
        };
        ioprio_set(tid, ioprio)?;
    }
    Ok(())
}

/// Whether a process has no_new_privs set (/proc/PID/status).
pub fn no_new_privs_of(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|status| {
        status.lines().any(|l| {
            l.strip_prefix("NoNewPrivs:")
                .is_some_and(|v| v.trim() == "1")
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_io_priority_set_on_every_thread_reads_back() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let best_effort_6 = (2 << 13) | 6;
        set_ioprio_of_all_threads(pid, best_effort_6).unwrap();
        assert_eq!(ioprio_of(pid).unwrap(), best_effort_6);
        assert!(!no_new_privs_of(pid));
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn a_child_becomes_idle() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let result = make_idle(pid);
        // SAFETY: a plain query of another process's policy.
        let policy = unsafe { libc::sched_getscheduler(pid) };
        child.kill().unwrap();
        child.wait().unwrap();
        result.unwrap();
        assert_eq!(policy, libc::SCHED_IDLE);
    }

    #[test]
    fn a_thread_s_nice_value_is_its_own_and_its_children_s() {
        let before = thread_nice().unwrap();
        let lower = (before + 3).min(19);
        std::thread::spawn(move || {
            set_thread_nice(lower).unwrap();
            assert_eq!(thread_nice().unwrap(), lower);
            let inherited = std::thread::spawn(thread_nice).join().unwrap().unwrap();
            assert_eq!(inherited, lower);
        })
        .join()
        .unwrap();
        // This thread was not touched.
        assert_eq!(thread_nice().unwrap(), before);
    }
}
