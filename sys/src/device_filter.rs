//! DeviceAllow=/DevicePolicy= on cgroup v2: a BPF_PROG_TYPE_CGROUP_DEVICE
//! program attached to the service's cgroup, which the kernel runs on
//! every open and mknod of a device node by its processes (a denied open
//! fails with EPERM). As systemd does (bpf-devices.c), the program is
//! assembled here from the rules, a few instructions per rule: loaders
//! such as aya or libbpf take compiled ELF objects, which would need an
//! eBPF toolchain at build time for what is a table of comparisons.

use relive_units::devices::{DeviceAllow, DeviceSpec};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// One rule of the program: a device type, numbers (None: any) and the
/// accesses it allows (`ACCESS_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub kind: Option<Kind>,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: u32,
}

/// `BPF_DEVCG_DEV_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Block = 1,
    Char = 2,
}

/// `BPF_DEVCG_ACC_*`.
pub const ACCESS_MKNOD: u32 = 1;
pub const ACCESS_READ: u32 = 2;
pub const ACCESS_WRITE: u32 = 4;
const ACCESS_ALL: u32 = ACCESS_MKNOD | ACCESS_READ | ACCESS_WRITE;

/// The rules for DeviceAllow= entries, resolved on this machine: a node
/// by its type and numbers, `char-NAME` by the majors /proc/devices
/// lists under matching names. What matches nothing is returned apart,
/// for a warning (systemd ignores such entries too).
pub fn resolve(entries: &[DeviceAllow]) -> (Vec<Rule>, Vec<String>) {
    let devices = procfs::Current::current().ok();
    let mut rules = Vec::new();
    let mut unmatched = Vec::new();
    for entry in entries {
        let bit = |on: bool, bit: u32| if on { bit } else { 0 };
        let access = bit(entry.read, ACCESS_READ)
            | bit(entry.write, ACCESS_WRITE)
            | bit(entry.mknod, ACCESS_MKNOD);
        let before = rules.len();
        match &entry.spec {
            DeviceSpec::Node(path) => {
                if let Some((kind, major, minor)) = node(Path::new(path)) {
                    rules.push(Rule {
                        kind: Some(kind),
                        major: Some(major),
                        minor: Some(minor),
                        access,
                    });
                }
            }
            DeviceSpec::Class { block, pattern } => {
                let Ok(glob) = glob::Pattern::new(pattern) else {
                    unmatched.push(pattern.clone());
                    continue;
                };
                let table: Option<&procfs::Devices> = devices.as_ref();
                let majors: Vec<u32> = match (table, block) {
                    (None, _) => Vec::new(),
                    (Some(d), false) => d
                        .char_devices
                        .iter()
                        .filter(|e| glob.matches(&e.name))
                        .map(|e| e.major)
                        .collect(),
                    (Some(d), true) => d
                        .block_devices
                        .iter()
                        .filter(|e| glob.matches(&e.name))
                        .filter_map(|e| u32::try_from(e.major).ok())
                        .collect(),
                };
                let kind = if *block { Kind::Block } else { Kind::Char };
                rules.extend(majors.into_iter().map(|major| Rule {
                    kind: Some(kind),
                    major: Some(major),
                    minor: None,
                    access,
                }));
            }
        }
        if rules.len() == before {
            unmatched.push(match &entry.spec {
                DeviceSpec::Node(path) => path.clone(),
                DeviceSpec::Class { block, pattern } => {
                    format!("{}-{pattern}", if *block { "block" } else { "char" })
                }
            });
        }
    }
    (rules, unmatched)
}

/// A device node's type and numbers; None for anything else.
fn node(path: &Path) -> Option<(Kind, u32, u32)> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = std::fs::metadata(path).ok()?;
    let kind = if meta.file_type().is_char_device() {
        Kind::Char
    } else if meta.file_type().is_block_device() {
        Kind::Block
    } else {
        return None;
    };
    let rdev = meta.rdev();
    Some((kind, libc::major(rdev), libc::minor(rdev)))
}

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    code: u8,
    /// dst_reg in the low nibble, src_reg in the high one.
    regs: u8,
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst | (src << 4),
        off,
        imm,
    }
}

// Opcodes (linux/bpf.h, bpf_common.h).
const LDX_MEM_W: u8 = 0x61; // dst = *(u32 *)(src + off)
const ALU64_MOV_X: u8 = 0xbf; // dst = src
const ALU64_MOV_K: u8 = 0xb7; // dst = imm
const ALU64_AND_K: u8 = 0x57; // dst &= imm
const ALU64_RSH_K: u8 = 0x77; // dst >>= imm
const JMP_JNE_K: u8 = 0x55; // if dst != imm goto pc + off
const JMP_EXIT: u8 = 0x95;

/// The program: r2 = type, r3 = access asked, r4 = major, r5 = minor
/// (from `struct bpf_cgroup_dev_ctx`); each rule is a block whose tests
/// jump to the next block on a mismatch and which returns 1 (allow) at
/// its end; after the last block, 0 (deny).
pub fn program(rules: &[Rule]) -> Vec<Insn> {
    let mut out = vec![
        insn(LDX_MEM_W, 2, 1, 0, 0),
        insn(ALU64_MOV_X, 3, 2, 0, 0),
        insn(ALU64_AND_K, 2, 0, 0, 0xffff),
        insn(ALU64_RSH_K, 3, 0, 0, 16),
        insn(LDX_MEM_W, 4, 1, 4, 0),
        insn(LDX_MEM_W, 5, 1, 8, 0),
    ];
    for rule in rules {
        // Each test: (instructions before the jump, register, value).
        let mut block: Vec<Insn> = Vec::new();
        let mut jumps = Vec::new();
        if let Some(kind) = rule.kind {
            jumps.push(block.len());
            block.push(insn(JMP_JNE_K, 2, 0, 0, kind as i32));
        }
        if rule.access & ACCESS_ALL != ACCESS_ALL {
            // Allowed only if nothing outside the rule's access is asked.
            block.push(insn(ALU64_MOV_X, 6, 3, 0, 0));
            block.push(insn(
                ALU64_AND_K,
                6,
                0,
                0,
                (!rule.access & ACCESS_ALL) as i32,
            ));
            jumps.push(block.len());
            block.push(insn(JMP_JNE_K, 6, 0, 0, 0));
        }
        if let Some(major) = rule.major {
            jumps.push(block.len());
            block.push(insn(JMP_JNE_K, 4, 0, 0, major as i32));
        }
        if let Some(minor) = rule.minor {
            jumps.push(block.len());
            block.push(insn(JMP_JNE_K, 5, 0, 0, minor as i32));
        }
        block.push(insn(ALU64_MOV_K, 0, 0, 0, 1));
        block.push(insn(JMP_EXIT, 0, 0, 0, 0));
        let len = block.len();
        for at in jumps {
            // To the first instruction after this block.
            block[at].off = (len - at - 1) as i16;
        }
        out.extend(block);
    }
    out.push(insn(ALU64_MOV_K, 0, 0, 0, 0));
    out.push(insn(JMP_EXIT, 0, 0, 0, 0));
    out
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;

/// The head of `union bpf_attr` for BPF_PROG_LOAD (the kernel takes a
/// shorter attr and reads the rest as zero).
#[repr(C)]
#[derive(Default)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `union bpf_attr` for BPF_PROG_ATTACH.
#[repr(C)]
#[derive(Default)]
struct ProgAttach {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

/// BPF_PROG_LOAD without a log; the kernel may answer EAGAIN when it
/// is short of memory for the verifier: tried a few times, as libbpf does.
fn load(insns: &[Insn]) -> io::Result<libc::c_long> {
    let mut attempts = 0;
    loop {
        match load_logged(insns, &mut []) {
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) && attempts < 5 => attempts += 1,
            result => return result,
        }
    }
}

/// BPF_PROG_LOAD, with the verifier's log in `log` when it is not empty.
fn load_logged(insns: &[Insn], log: &mut [u8]) -> io::Result<libc::c_long> {
    let license = c"GPL";
    let mut attr = ProgLoad {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: u32::from(!log.is_empty()),
        log_size: log.len() as u32,
        log_buf: if log.is_empty() {
            0
        } else {
            log.as_mut_ptr() as u64
        },
        expected_attach_type: BPF_CGROUP_DEVICE,
        ..ProgLoad::default()
    };
    attr.prog_name[..13].copy_from_slice(b"relive_device");
    bpf(BPF_PROG_LOAD, &mut attr)
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, #[repr(C)] prefix of union bpf_attr for
    // `cmd`, and its size is passed with it; every pointer inside it
    // points at memory the caller keeps alive for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>(),
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Loads the program for `rules` and attaches it to the cgroup directory
/// `cgroup`, replacing one attached before (a restart after the unit's
/// DeviceAllow= changed). The attachment keeps the program alive.
pub fn attach(cgroup: &Path, rules: &[Rule]) -> io::Result<()> {
    let insns = program(rules);
    let fd = load(&insns).or_else(|e| {
        // Again with the verifier's log, to say why (a log that does not
        // fit fails the load by itself: only when needed).
        let mut log = vec![0u8; 1 << 20];
        match load_logged(&insns, &mut log) {
            Ok(fd) => Ok(fd),
            Err(_) => {
                let end = log.iter().position(|&b| b == 0).unwrap_or(0);
                let verifier = String::from_utf8_lossy(&log[..end]);
                let last = verifier.lines().last().unwrap_or_default().to_owned();
                Err(io::Error::new(
                    e.kind(),
                    format!("loading the device program: {e} (verifier: {last})"),
                ))
            }
        }
    })?;
    // SAFETY: BPF_PROG_LOAD returned a new file descriptor we now own.
    let prog = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let dir = std::fs::File::open(cgroup)?;
    let mut attach = ProgAttach {
        target_fd: dir.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        // No flags: one program, which the next attach replaces.
        attach_flags: 0,
        replace_bpf_fd: 0,
    };
    bpf(BPF_PROG_ATTACH, &mut attach)
        .map(drop)
        .map_err(|e| io::Error::new(e.kind(), format!("attaching the device program: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rule_is_a_block_jumping_to_the_next() {
        let rules = [
            Rule {
                kind: Some(Kind::Char),
                major: Some(1),
                minor: Some(3),
                access: ACCESS_READ | ACCESS_WRITE,
            },
            Rule {
                kind: Some(Kind::Char),
                major: Some(136),
                minor: None,
                access: ACCESS_ALL,
            },
        ];
        let p = program(&rules);
        // 6 to load the context; 8 and 4 for the rules; 2 to deny.
        assert_eq!(p.len(), 6 + 8 + 4 + 2);
        // The first rule's tests all jump to the second rule's start (14).
        let first = &p[6..14];
        for (i, ins) in first.iter().enumerate() {
            if ins.code == JMP_JNE_K {
                assert_eq!(6 + i + 1 + ins.off as usize, 14, "{ins:?}");
            }
        }
        // The mask of what the rule does not allow: mknod.
        assert_eq!(first[2].imm, ACCESS_MKNOD as i32);
        assert_eq!(p[p.len() - 2], insn(ALU64_MOV_K, 0, 0, 0, 0));
        assert_eq!(p[p.len() - 1].code, JMP_EXIT);
    }

    #[test]
    fn nodes_and_classes_resolve_on_this_machine() {
        let entries = [
            DeviceAllow::parse("/dev/null rw").unwrap(),
            DeviceAllow::parse("char-mem r").unwrap(),
            DeviceAllow::parse("/dev/no-such-node").unwrap(),
            DeviceAllow::parse("block-no-such-driver").unwrap(),
        ];
        let (rules, unmatched) = resolve(&entries);
        assert_eq!(
            rules[0],
            Rule {
                kind: Some(Kind::Char),
                major: Some(1),
                minor: Some(3),
                access: ACCESS_READ | ACCESS_WRITE
            }
        );
        // /dev/mem, /dev/null... are major 1, named "mem".
        assert_eq!(rules[1].major, Some(1));
        assert_eq!(rules[1].minor, None);
        assert_eq!(unmatched, ["/dev/no-such-node", "block-no-such-driver"]);
    }
}
