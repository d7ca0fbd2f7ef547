//! Background priority for the upgrade's helper processes.

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
    // SAFETY: a plain syscall with integer arguments; no memory is passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_ioprio_set,
            IOPRIO_WHO_PROCESS,
            pid,
            IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT,
        )
    };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
