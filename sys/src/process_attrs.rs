//! Process attributes a child sets between fork and exec (systemd.exec(5):
//! Limit*=, OOMScoreAdjust=, Nice=, IOScheduling*=, CPUScheduling*=,
//! NoNewPrivileges=). A step that fails fails the exec, with systemd's exit
//! status for it, as systemd does: a service never runs with less than it
//! asked for.

use crate::spawn::ChildStep;

/// What to set; the default sets nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessSettings {
    /// (setrlimit resource, soft, hard).
    pub rlimits: Vec<(u32, u64, u64)>,
    pub nice: Option<i32>,
    pub oom_score_adj: Option<i32>,
    /// ioprio_set(2)'s value: class << 13 | level.
    pub ioprio: Option<i32>,
    /// sched_setscheduler(2)'s (policy, priority).
    pub scheduler: Option<(i32, i32)>,
    /// PR_SET_NO_NEW_PRIVS, set last before the exec.
    pub no_new_privs: bool,
    /// PR_SET_SECUREBITS after the user switch (0: left as they are).
    pub secure_bits: u32,
}

/// The attributes that may need privileges (raising a limit, a negative
/// nice level or OOM score, a real-time class): before the user switch.
/// `oom_text` is `oom_score_adj` in decimal, formatted by the parent.
///
/// # Safety
/// Only in the child between fork and exec: async-signal-safe calls only.
pub(crate) unsafe fn apply_privileged(
    s: &ProcessSettings,
    oom_text: Option<&[u8]>,
) -> Result<(), ChildStep> {
    for &(resource, soft, hard) in &s.rlimits {
        let limit = libc::rlimit {
            rlim_cur: soft,
            rlim_max: hard,
        };
        // SAFETY: `limit` is a valid rlimit the kernel only reads.
        if unsafe { libc::setrlimit(resource, &limit) } < 0 {
            return Err(ChildStep::Limits);
        }
    }
    if let Some(text) = oom_text {
        // SAFETY: open/write/close on a static path and the parent's bytes.
        let written = unsafe {
            let fd = libc::open(c"/proc/self/oom_score_adj".as_ptr(), libc::O_WRONLY);
            let n = if fd < 0 {
                -1
            } else {
                libc::write(fd, text.as_ptr().cast(), text.len())
            };
            if fd >= 0 {
                libc::close(fd);
            }
            n
        };
        if written != text.len() as isize {
            return Err(ChildStep::OomAdjust);
        }
    }
    if let Some(nice) = s.nice {
        // SAFETY: a plain system call with integer arguments.
        if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) } < 0 {
            return Err(ChildStep::Nice);
        }
    }
    if let Some(ioprio) = s.ioprio {
        crate::sched::ioprio_set(0, ioprio).map_err(|_| ChildStep::IoPriority)?;
    }
    if let Some((policy, priority)) = s.scheduler {
        let param = libc::sched_param {
            sched_priority: priority,
        };
        // SAFETY: `param` is valid for the call; the kernel only reads it.
        if unsafe { libc::sched_setscheduler(0, policy, &param) } < 0 {
            return Err(ChildStep::SetScheduler);
        }
    }
    Ok(())
}

/// SecureBits= and NoNewPrivileges=: after the user switch, just before
/// the exec. Setting secure bits needs CAP_SETPCAP: a service of another
/// user kept its permitted capabilities through the switch (keep-caps,
/// see spawn) and raises that one into its effective set for the call,
/// as systemd does; the exec recomputes the sets anyway.
///
/// # Safety
/// Only in the child between fork and exec.
pub(crate) unsafe fn apply_last(s: &ProcessSettings) -> Result<(), ChildStep> {
    // SAFETY: prctl with integer arguments.
    let current = unsafe { libc::prctl(libc::PR_GET_SECUREBITS, 0, 0, 0, 0) };
    if s.secure_bits != 0 && current != s.secure_bits as i32 {
        if !crate::spawn::gain_cap_setpcap() {
            return Err(ChildStep::Capabilities);
        }
        // SAFETY: prctl with integer arguments.
        if unsafe {
            libc::prctl(
                libc::PR_SET_SECUREBITS,
                s.secure_bits as libc::c_ulong,
                0,
                0,
                0,
            )
        } < 0
        {
            return Err(ChildStep::SecureBits);
        }
    }
    // SAFETY: prctl with integer arguments.
    if s.no_new_privs && unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } < 0 {
        return Err(ChildStep::NoNewPrivileges);
    }
    Ok(())
}
