//! One clock for the services across live upgrades.
//!
//! CRIU restores each process tree into a time namespace of its own whose
//! CLOCK_MONOTONIC and CLOCK_BOOTTIME continue from the values it dumped:
//! each unit hides its own stoppage, so after an upgrade the units'
//! clocks differ by the differences between their stoppages, and the gap
//! grows at every upgrade. Instead, the first upgrade makes one time
//! namespace for the whole system in the new kernel (pinned at [`PATH`]),
//! every restore joins it, and every process relive starts afterwards
//! enters it: all services read one monotonic clock. Its offsets follow
//! one rule, as for a suspend: CLOCK_MONOTONIC continues from the value
//! it had at the kexec (the new kernel's boot does not count), while
//! CLOCK_BOOTTIME also counts the time the kexec and the boot took
//! (measured with the wall clock). A unit frozen before the kexec sees
//! the time it waited frozen pass, as if it had not been scheduled.
//! Only relive itself (PID 1) stays in the kernel's own clock.

use serde::{Deserialize, Serialize};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

/// Where the system's time namespace is pinned (a bind mount of it).
pub const PATH: &str = "/run/relive/timens";

pub use relive_api::report::ClockOffsets;

/// The kernel's CLOCK_MONOTONIC and CLOCK_BOOTTIME now, as PID 1 reads
/// them (the initial time namespace).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clocks {
    pub monotonic_ns: i64,
    pub boottime_ns: i64,
}

impl Clocks {
    pub fn now() -> Clocks {
        let read = |clock| {
            nix::time::clock_gettime(clock)
                .map(|t| t.tv_sec() * 1_000_000_000 + t.tv_nsec())
                .unwrap_or(0)
        };
        Clocks {
            monotonic_ns: read(nix::time::ClockId::CLOCK_MONOTONIC),
            boottime_ns: read(nix::time::ClockId::CLOCK_BOOTTIME),
        }
    }
}

/// The services' clocks at the kexec: the kernel's and the offsets the
/// services read them with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockAtKexec {
    pub kernel: Clocks,
    pub offsets: ClockOffsets,
    /// The wall clock then (microseconds since the epoch).
    pub wall_usec: u64,
}

impl ClockAtKexec {
    /// Now, with the offsets the services have (see [`current_offsets`]).
    pub fn now(wall_usec: u64) -> ClockAtKexec {
        ClockAtKexec {
            kernel: Clocks::now(),
            offsets: current_offsets(),
            wall_usec,
        }
    }

    /// The offsets in the new kernel (whose clocks read `kernel` at wall
    /// time `wall_usec`) that continue the services' clocks by the rule
    /// in this module's documentation.
    pub fn continued(&self, kernel: Clocks, wall_usec: u64) -> ClockOffsets {
        let boot_ns = (wall_usec.saturating_sub(self.wall_usec) as i64).saturating_mul(1000);
        ClockOffsets {
            monotonic_ns: self.kernel.monotonic_ns + self.offsets.monotonic_ns
                - kernel.monotonic_ns,
            boottime_ns: self.kernel.boottime_ns + self.offsets.boottime_ns + boot_ns
                - kernel.boottime_ns,
        }
    }
}

/// The offsets the system's time namespace has, zero when there is none
/// (before the first upgrade, services read the kernel's clocks).
pub fn current_offsets() -> ClockOffsets {
    std::fs::read_to_string(format!("{PATH}.json"))
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default()
}

/// The offsets process `pid` reads its clocks with.
pub fn offsets_of(pid: u32) -> io::Result<ClockOffsets> {
    parse_offsets(&std::fs::read_to_string(format!(
        "/proc/{pid}/timens_offsets"
    ))?)
}

/// /proc/PID/timens_offsets: `monotonic SECS NSECS`, `boottime SECS NSECS`.
fn parse_offsets(text: &str) -> io::Result<ClockOffsets> {
    let mut offsets = ClockOffsets::default();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let [clock, secs, nsecs] = words[..] else {
            continue;
        };
        let bad = || {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("timens_offsets: {line}"),
            )
        };
        let ns = secs.parse::<i64>().map_err(|_| bad())? * 1_000_000_000
            + nsecs.parse::<i64>().map_err(|_| bad())?;
        match clock {
            "monotonic" | "1" => offsets.monotonic_ns = ns,
            "boottime" | "7" => offsets.boottime_ns = ns,
            _ => {}
        }
    }
    Ok(offsets)
}

/// A new time namespace with `offsets`, entered by nobody yet.
pub fn create(offsets: ClockOffsets) -> io::Result<OwnedFd> {
    // unshare(CLONE_NEWTIME) gives the calling thread's future children
    // the new namespace: a thread of its own, which ends right after.
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("relive-timens".into())
            .spawn_scoped(scope, || create_on_this_thread(offsets))?
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the time namespace's thread panicked")))
    })
}

fn create_on_this_thread(offsets: ClockOffsets) -> io::Result<OwnedFd> {
    nix::sched::unshare(nix::sched::CloneFlags::from_bits_retain(
        libc::CLONE_NEWTIME,
    ))?;
    let split = |ns: i64| (ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000));
    let (ms, mn) = split(offsets.monotonic_ns);
    let (bs, bn) = split(offsets.boottime_ns);
    // Clock ids: CLOCK_MONOTONIC 1, CLOCK_BOOTTIME 7; one write each.
    // This thread's (the file is in /proc/TID, not under task/).
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/{}/timens_offsets", nix::unistd::gettid()))?;
    file.write_all(format!("1 {ms} {mn}").as_bytes())?;
    file.write_all(format!("7 {bs} {bn}").as_bytes())?;
    let ns = std::fs::File::open("/proc/thread-self/ns/time_for_children")?;
    Ok(OwnedFd::from(ns))
}

/// Pins `ns` at [`PATH`] (a bind mount, as `ip netns` pins network
/// namespaces) with its offsets beside it, for the restores (CRIU joins it
/// by path) and for relive after a re-exec.
pub fn pin(ns: BorrowedFd<'_>, offsets: ClockOffsets) -> io::Result<()> {
    let path = Path::new(PATH);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::File::create(path)?;
    nix::mount::mount(
        Some(format!("/proc/self/fd/{}", ns.as_raw_fd()).as_str()),
        path,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )?;
    let json = serde_json::to_string(&offsets).map_err(io::Error::other)?;
    std::fs::write(format!("{PATH}.json"), json)
}

/// The system's time namespace, if an upgrade made one.
pub fn open_pinned() -> Option<OwnedFd> {
    let fd = OwnedFd::from(std::fs::File::open(PATH).ok()?);
    // Only a namespace: a plain file there (the mount gone) is not one.
    is_time_namespace(fd.as_raw_fd()).then_some(fd)
}

fn is_time_namespace(fd: i32) -> bool {
    // NS_GET_NSTYPE (_IO(0xb7, 0x3)) says which kind of namespace.
    const NS_GET_NSTYPE: libc::c_ulong = 0xb703;
    // SAFETY: NS_GET_NSTYPE takes no argument and returns the type.
    let kind = unsafe { libc::ioctl(fd, NS_GET_NSTYPE as _) };
    kind == libc::CLONE_NEWTIME
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_as_the_kernel_prints_them() {
        let text = "monotonic      12 500000000\nboottime     -3 0\n";
        assert_eq!(
            parse_offsets(text).unwrap(),
            ClockOffsets {
                monotonic_ns: 12_500_000_000,
                boottime_ns: -3_000_000_000
            }
        );
    }

    #[test]
    fn the_clock_continues_from_the_kexec_and_boottime_counts_the_boot() {
        let at_kexec = ClockAtKexec {
            kernel: Clocks {
                monotonic_ns: 500_000_000_000,
                boottime_ns: 510_000_000_000,
            },
            offsets: ClockOffsets {
                monotonic_ns: 100_000_000_000,
                boottime_ns: 100_000_000_000,
            },
            wall_usec: 1_000_000_000,
        };
        // The new kernel, 12 s of wall time later, has run 10 s.
        let new_kernel = Clocks {
            monotonic_ns: 10_000_000_000,
            boottime_ns: 10_000_000_000,
        };
        let offsets = at_kexec.continued(new_kernel, 1_012_000_000);
        // Services read 600 s (as at the kexec) on CLOCK_MONOTONIC ...
        assert_eq!(
            new_kernel.monotonic_ns + offsets.monotonic_ns,
            600_000_000_000
        );
        // ... and 610 s + the 12 s the kexec and boot took on BOOTTIME.
        assert_eq!(
            new_kernel.boottime_ns + offsets.boottime_ns,
            622_000_000_000
        );
    }

    #[test]
    fn a_namespace_made_here_has_the_offsets_asked_for() {
        let wanted = ClockOffsets {
            monotonic_ns: 3_600_000_000_000,
            boottime_ns: 7_200_000_000_000,
        };
        let ns = match create(wanted) {
            Ok(ns) => ns,
            // Not root, or a kernel without time namespaces: nothing to see.
            Err(e) => {
                eprintln!("skipped: {e}");
                return;
            }
        };
        assert!(is_time_namespace(ns.as_raw_fd()));
        // A child that enters it reads its clocks with those offsets.
        let mut child = std::process::Command::new("cat");
        child.arg("/proc/self/timens_offsets");
        let raw = ns.as_raw_fd();
        // SAFETY: the closure runs in the child between fork and exec and
        // only calls setns(2).
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut child, move || {
                if libc::setns(raw, libc::CLONE_NEWTIME) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let out = child.output().unwrap();
        assert_eq!(
            parse_offsets(&String::from_utf8_lossy(&out.stdout)).unwrap(),
            wanted
        );
    }
}
