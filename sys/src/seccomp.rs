//! seccomp filters for services (SystemCallFilter= and the settings
//! systemd enforces with seccomp: RestrictAddressFamilies=,
//! RestrictNamespaces=, MemoryDenyWriteExecute=, ...).
//!
//! Filters are compiled in PID 1 with libseccomp, the library systemd and
//! the container runtimes use (it knows every architecture's system call
//! numbers and writes the BPF), and handed to the child as plain BPF
//! programs: the child only calls seccomp(2), the last thing before the
//! exec. One [`Filter`] per setting, as systemd installs them: the kernel
//! runs them all and the strictest answer wins.

use std::io::Read;

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};

/// What a filter does with a system call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Allow,
    /// SIGSYS to the whole process.
    Kill,
    Errno(i32),
}

/// A condition on an argument of the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg {
    Eq(u32, u64),
    Ne(u32, u64),
    Ge(u32, u64),
    /// `arg & mask == value`.
    Masked(u32, u64, u64),
}

/// One rule: `call` (by name), when all `args` hold, gets `action`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub call: String,
    pub action: Action,
    pub args: Vec<Arg>,
}

impl Rule {
    pub fn new(call: &str, action: Action) -> Rule {
        Rule {
            call: call.to_string(),
            action,
            args: Vec::new(),
        }
    }

    pub fn when(call: &str, action: Action, args: &[Arg]) -> Rule {
        Rule {
            call: call.to_string(),
            action,
            args: args.to_vec(),
        }
    }
}

/// One filter: calls no rule names get `default`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// What the filter is for (`SystemCallFilter=`), for errors.
    pub setting: &'static str,
    pub default: Action,
    pub rules: Vec<Rule>,
}

/// The architectures the filters accept calls of; calls of any other
/// are killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    X8664,
    X86,
    X32,
}

/// A compiled filter: `struct sock_filter` instructions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program(pub Vec<libc::sock_filter>);

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("{setting}: libseccomp: {source}")]
    Library {
        setting: &'static str,
        source: libseccomp::error::SeccompError,
    },
    #[error("{setting}: reading the compiled filter: {source}")]
    Export {
        setting: &'static str,
        source: std::io::Error,
    },
}

fn action(a: Action) -> ScmpAction {
    match a {
        Action::Allow => ScmpAction::Allow,
        Action::Kill => ScmpAction::KillProcess,
        Action::Errno(n) => ScmpAction::Errno(n),
    }
}

fn compare(a: Arg) -> ScmpArgCompare {
    match a {
        Arg::Eq(i, v) => ScmpArgCompare::new(i, ScmpCompareOp::Equal, v),
        Arg::Ne(i, v) => ScmpArgCompare::new(i, ScmpCompareOp::NotEqual, v),
        Arg::Ge(i, v) => ScmpArgCompare::new(i, ScmpCompareOp::GreaterEqual, v),
        Arg::Masked(i, mask, v) => ScmpArgCompare::new(i, ScmpCompareOp::MaskedEqual(mask), v),
    }
}

/// Compiles `filter` for the machine's own architecture and `extra`.
/// Names the architecture does not have are skipped, as systemd skips
/// them: groups list the calls of every architecture.
pub fn compile(filter: &Filter, extra: &[Arch]) -> Result<Program, SeccompError> {
    let setting = filter.setting;
    let lib = |source| SeccompError::Library { setting, source };
    let mut ctx = ScmpFilterContext::new(action(filter.default)).map_err(lib)?;
    ctx.set_act_badarch(ScmpAction::KillProcess).map_err(lib)?;
    // The child sets no_new_privs itself when it must; libseccomp would
    // set it for every filter.
    ctx.set_ctl_nnp(false).map_err(lib)?;
    for arch in extra {
        let arch = match arch {
            Arch::X8664 => ScmpArch::X8664,
            Arch::X86 => ScmpArch::X86,
            Arch::X32 => ScmpArch::X32,
        };
        if arch != ScmpArch::native() {
            ctx.add_arch(arch).map_err(lib)?;
        }
    }
    for rule in &filter.rules {
        let Ok(call) = ScmpSyscall::from_name(&rule.call) else {
            continue;
        };
        if rule.action == filter.default {
            continue;
        }
        let args: Vec<ScmpArgCompare> = rule.args.iter().map(|a| compare(*a)).collect();
        let added = if args.is_empty() {
            ctx.add_rule(action(rule.action), call)
        } else {
            ctx.add_rule_conditional(action(rule.action), call, &args)
        };
        // A call some added architecture multiplexes (socket() on x86 goes
        // through socketcall) cannot take argument rules there: libseccomp
        // refuses, and the rule holds on the native architecture only.
        if let Err(e) = added {
            if args.is_empty() {
                return Err(lib(e));
            }
        }
    }
    let (mut reader, writer) =
        std::io::pipe().map_err(|source| SeccompError::Export { setting, source })?;
    // A seccomp program has at most 4096 instructions (32 KiB): it fits
    // in a pipe's buffer, so the write cannot block.
    ctx.export_bpf(&writer).map_err(lib)?;
    drop(writer);
    let mut bytes = Vec::new();
    reader
        .read_to_end(&mut bytes)
        .map_err(|source| SeccompError::Export { setting, source })?;
    let size = std::mem::size_of::<libc::sock_filter>();
    let program = bytes
        .chunks_exact(size)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    Ok(Program(program))
}

/// Installs the programs, in order.
///
/// # Safety
/// Only in the child between clone and exec: one system call per program.
pub(crate) unsafe fn install(programs: &[Program]) -> bool {
    for p in programs {
        let prog = libc::sock_fprog {
            len: p.0.len() as u16,
            filter: p.0.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: seccomp(2) reads the program the parent compiled.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                &prog as *const libc::sock_fprog,
            )
        };
        if rc < 0 {
            return false;
        }
    }
    true
}
