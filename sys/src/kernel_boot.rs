//! Where the new kernel's boot went before relive started: its clock
//! (CLOCK_BOOTTIME) now, and the times of its log's markers (the
//! initramfs unpacked, /init run, the root mounted) from /dev/kmsg. The
//! kexec's floor is mostly this boot; these say which part of it.

use relive_api::report::KernelBoot;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;

/// The kernel's markers and relive's start, now; None without a
/// CLOCK_BOOTTIME. Markers the log no longer holds are None.
pub fn measure() -> Option<KernelBoot> {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME).ok()?;
    let relive_started_ms = now.tv_sec() as f64 * 1000.0 + now.tv_nsec() as f64 / 1e6;
    let log = kernel_log();
    Some(markers(
        log.iter().map(|(us, m)| (*us, m.as_str())),
        relive_started_ms,
    ))
}

/// The first time (ms) of each marker in `log` (µs, message).
fn markers<'a>(
    log: impl Iterator<Item = (u64, &'a str)> + Clone,
    relive_started_ms: f64,
) -> KernelBoot {
    let first = |found: &dyn Fn(&str) -> bool| {
        log.clone()
            .find(|(_, message)| found(message))
            .map(|(usec, _)| usec as f64 / 1000.0)
    };
    KernelBoot {
        initramfs_unpacked_ms: first(&|m| m.starts_with("Freeing initrd memory")),
        init_started_ms: first(&|m| m.starts_with("Run ") && m.ends_with(" as init process")),
        // ext4's and xfs's words for a mount done.
        root_mounted_ms: first(&|m| {
            m.contains("mounted filesystem") || m.contains("Ending clean mount")
        }),
        relive_started_ms,
    }
}

/// The kernel's own records in /dev/kmsg (facility 0), as (µs since its
/// boot, message); empty if it cannot be read. One read() is one record
/// ("prio,seq,usec,flags;message"); a record the ring buffer dropped
/// meanwhile (EPIPE) is skipped.
fn kernel_log() -> Vec<(u64, String)> {
    let Ok(mut kmsg) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/dev/kmsg")
    else {
        return Vec::new();
    };
    let mut records = Vec::new();
    let mut buffer = vec![0u8; 8192];
    loop {
        match kmsg.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => records.extend(record(&String::from_utf8_lossy(&buffer[..n]))),
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
            Err(_) => break,
        }
    }
    records
}

/// A kernel record's time and message; None for another facility's.
fn record(text: &str) -> Option<(u64, String)> {
    let (header, rest) = text.split_once(';')?;
    let mut fields = header.split(',');
    let prio: u32 = fields.next()?.parse().ok()?;
    let _sequence = fields.next()?;
    let usec: u64 = fields.next()?.parse().ok()?;
    // Continuation lines (" KEY=value") follow the message's own line.
    let message = rest.lines().next().unwrap_or_default();
    (prio >> 3 == 0).then(|| (usec, message.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_s_markers_are_found_in_its_log() {
        let log: Vec<(u64, String)> = [
            "6,1,120000,-;Linux version 6.12.117",
            "5,200,1900000,-;Trying to unpack rootfs image as initramfs...",
            "6,210,2050000,-;Freeing initrd memory: 39544K",
            "6,300,2400000,-;Run /init as init process\n SUBSYSTEM=x",
            "30,301,2500000,-;systemd-udevd[90]: starting version 252",
            "6,400,4800000,-;EXT4-fs (vda): mounted filesystem r/w with ordered data mode.",
            "6,500,9000000,-;EXT4-fs (vdb): mounted filesystem r/w",
        ]
        .iter()
        .filter_map(|r| record(r))
        .collect();
        let boot = markers(log.iter().map(|(us, m)| (*us, m.as_str())), 6200.0);
        assert_eq!(
            boot,
            KernelBoot {
                initramfs_unpacked_ms: Some(2050.0),
                init_started_ms: Some(2400.0),
                root_mounted_ms: Some(4800.0),
                relive_started_ms: 6200.0,
            }
        );
        assert_eq!(
            boot.to_string(),
            "initramfs unpacked at 2.05 s, /init at 2.40 s, root mounted at 4.80 s, relive at 6.20 s of the new kernel's clock"
        );
    }

    #[test]
    fn other_facilities_are_not_the_kernel_s() {
        assert_eq!(record("30,301,2500000,-;Run /init as init process"), None);
    }

    #[test]
    fn this_machine_s_boot_can_be_measured() {
        let boot = measure().unwrap();
        assert!(boot.relive_started_ms > 0.0);
    }
}
